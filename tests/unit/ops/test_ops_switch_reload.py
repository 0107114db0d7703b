"""A switch runs systemctl daemon-reload only when the units the generator would render
differ from the ones systemd has loaded (generator.render_key / units_current)."""
from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from unified_ctl import generator, operations, ports
from unified_core import paths, runtime

from .test_ops_config import STT_ENV, ctl, edit, fake, start_core  # noqa: F401  (fake: a fixture)


@pytest.fixture()
def rendered(fake, monkeypatch):  # noqa: F811
    """daemon-reload runs the real generator (as systemd does); it rendered once at boot."""
    monkeypatch.setattr(ports, "live_listeners", lambda: [])
    real = fake.daemon_reload

    def reload():
        real()
        shutil.rmtree(paths.generator_dir(), ignore_errors=True)  # systemd empties it first
        generator.generate(paths.generator_dir())
    monkeypatch.setattr(fake, "daemon_reload", reload)
    generator.generate(paths.generator_dir())
    start_core(fake)
    return fake


def reloads(sd) -> int:
    return sum(1 for c in sd.calls if c == ("daemon-reload",))


def switch(*args, env=None) -> dict:
    res = ctl("profile", "switch", *args, "--no-wait", "--json", env=env)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_a_switch_to_the_profile_the_units_were_rendered_for_does_not_reload(rendered):
    assert switch("core")["reloaded"] is False
    assert reloads(rendered) == 0
    assert ("start", ("unified-profile-core.target", "unified.target")) in rendered.calls


def test_a_switch_after_a_catalog_edit_reloads_once_then_not_again(rendered):
    edit(pathlib.Path(paths.catalog_file()), STT_ENV, STT_ENV.replace("}", ", STT_BEAM: '5'}"))
    assert switch("core")["reloaded"] is True
    assert reloads(rendered) == 1
    assert "STT_BEAM=5" in (pathlib.Path(paths.generator_dir()) / "unified-agent@STTService.service.d"
                            / "50-catalog.conf").read_text()
    assert switch("core")["reloaded"] is False
    assert reloads(rendered) == 1


def test_a_new_drop_in_counts_as_a_catalog_change(rendered):
    (pathlib.Path(paths.etc_dir()) / "conf.d" / "50-beam.yaml").write_text(
        "agents:\n  STTService:\n    environment: {STT_BEAM: '7'}\n")
    assert switch("core")["reloaded"] is True


def test_a_switch_to_another_profile_reloads(rendered):
    # the selected profile sets the slice's limits and which target unified.target wants
    assert switch("learning")["reloaded"] is True
    assert switch("learning")["reloaded"] is False
    assert switch("core")["reloaded"] is True


def test_a_switch_that_sets_an_override_reloads_and_restarts_the_running_agents(rendered):
    data = switch("core", env={"LOG_LEVEL": "DEBUG"})
    assert data["reloaded"] is True and runtime.overrides_in_force() == {"LOG_LEVEL": "DEBUG"}
    assert any(c[0] == "try-restart" for c in rendered.calls)
    assert switch("core", env={"LOG_LEVEL": "DEBUG"})["reloaded"] is False  # the same again: nothing new


def test_units_rendered_from_the_last_good_catalog_are_never_current(rendered):
    edit(pathlib.Path(paths.catalog_file()), "  STTService:\n", "  STTService:\n    no_such_key: 1\n")
    status = generator.generate(paths.generator_dir())
    assert status["last_good"] and status["render_key"] is None
    assert not generator.units_current("core")


def test_a_switch_right_after_the_generator_ran_elsewhere_is_not_fooled(rendered, tmp_path):
    # the generator rendered another catalog file (a trial, a test run): the key names the file
    other = tmp_path / "other.yaml"
    other.write_text(pathlib.Path(paths.catalog_file()).read_text())
    generator.generate(str(tmp_path / "gen"), catalog_file=str(other))
    assert not generator.units_current("core")


def test_the_library_switch_reports_what_it_did_as_fields(rendered):
    cat = rendered.catalog
    r = operations.switch(rendered, cat, "core", env={}, wait=False)
    assert r.reloaded is False and r.wait is None and r.ok
    assert set(r.plan.keep_agents) == set(cat.profiles["core"].agents) and r.plan.start_agents == ()
    assert r.launch.overrides == () and not r.launch.changed and r.env_restarted == ()


def test_creating_or_removing_the_token_file_counts_as_a_change(rendered):
    # the token's drop-in exists only while the file does (a start fails without its file)
    token = pathlib.Path(paths.token_file())
    token.write_text("a-token-of-sixteen-or-more\n")
    assert switch("core")["reloaded"] is True
    drop_in = pathlib.Path(paths.generator_dir()) / "unified-agent@.service.d" / "20-token.conf"
    assert f"StandardInput=file:{token}\n" in drop_in.read_text()
    token.unlink()
    assert switch("core")["reloaded"] is True
    assert not drop_in.exists()


def test_with_the_token_file_nothing_looks_stale_after_a_render(rendered):
    # changes.rendered() must render what the generator renders (the token's drop-in too),
    # or an apply right after a reload called every agent stale ("the global settings changed")
    pathlib.Path(paths.token_file()).write_text("a-token-of-sixteen-or-more\n")
    switch("core")                                   # reloads: the generator renders the drop-in
    res = ctl("apply", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["stale"] == {}
