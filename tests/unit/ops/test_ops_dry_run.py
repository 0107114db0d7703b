"""--dry-run on apply, config rollback, backup restore and recover: each says what it would do,
the same as the real command then does, and changes nothing (no file, no systemd call)."""
from __future__ import annotations

import json
import pathlib

from unified_ctl import backup, changes
from unified_core import paths
from unified_core.catalog import load_catalog

from .test_ops_backup import make_db, state  # noqa: F401  (fixture)
from .test_ops_config import STT_ENV, apply_ok, ctl, edit, fake, generating, start_core  # noqa: F401  (fixtures)


def tree(root: pathlib.Path) -> dict:
    """Every file and directory under root, with contents: what "changes nothing" compares."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def dry(root, sd, *args) -> tuple[dict, str]:
    """Run a --dry-run command; assert it changed nothing; return its JSON and its text."""
    before = tree(root)
    sd.calls.clear()
    res = ctl(*args, "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    text = ctl(*args, "--dry-run")
    assert text.exit_code == 0, text.output
    assert tree(root) == before and sd.calls == []
    return json.loads(res.output), text.output


# -- apply ----------------------------------------------------------------------------------
def test_apply_dry_run_names_the_agents_apply_would_leave_stale_and_changes_nothing(generating, ops_env,
                                                                                   monkeypatch):
    monkeypatch.setattr(changes.os, "cpu_count", lambda: 2)  # as the generating fixture renders
    sd = generating
    apply_ok()
    start_core(sd)
    edit(pathlib.Path(paths.catalog_file()), STT_ENV, STT_ENV.replace("}", ", STT_BEAM: '5'}"))
    d, text = dry(ops_env, sd, "apply")
    assert d["changed"] is True and d["stale"] == {"STTService": "its unit changed"}
    assert "STTService: would stay on the old settings (its unit changed)" in text
    assert "nothing changed (--dry-run)" in text
    real = json.loads(ctl("apply", "--json").output)
    assert real["stale"] == d["stale"]


def test_apply_dry_run_of_the_live_catalog_says_so(generating, ops_env, monkeypatch):
    monkeypatch.setattr(changes.os, "cpu_count", lambda: 2)
    apply_ok()
    d, text = dry(ops_env, generating, "apply")
    assert d["changed"] is False and d["stale"] == {}
    assert "it is the live catalog already" in text


def test_apply_dry_run_refuses_another_file_as_apply_does(fake, ops_env, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(pathlib.Path(paths.catalog_file()).read_text())
    from click.testing import CliRunner
    from unified_ctl import cli as cli_mod

    res = CliRunner().invoke(cli_mod.cli, ["-c", str(other), "apply", "--dry-run"])
    assert res.exit_code == 1 and "is another file" in res.output


# -- config rollback --------------------------------------------------------------------------
def test_rollback_dry_run_says_what_rollback_then_does(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    edit(main, "port: 5574", "port: 5591")  # SessionMemoryAgent's agent port
    apply_ok()
    start_core(fake)
    d, text = dry(ops_env, fake, "config", "rollback")
    assert d["to"]["id"] == 1 and d["restart"] == {"SessionMemoryAgent": "its ports changed"}
    assert d["start"] == [] and d["stop"] == [] and d["removed_dropins"] == []
    assert "would roll back to catalog 1" in text and "restart SessionMemoryAgent (its ports changed)" in text
    real = json.loads(ctl("config", "rollback", "--no-wait", "--json").output)
    assert real["to"]["id"] == 1 and real["restarted"] == list(d["restart"])


def test_rollback_dry_run_lists_the_agents_that_would_stop_and_the_dropins_removed(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    edit(main, "groups: [infrastructure_registry, coordination_resource, memory_foundation, speech_io]",
         "groups: [infrastructure_registry, coordination_resource, memory_foundation, speech_io]\n"
         "    agents: [TutorAgent]")
    (ops_env / "etc" / "conf.d" / "50-local.yaml").write_text("settings:\n  log_level: WARNING\n")
    apply_ok()
    start_core(fake)
    bigger = set(fake.catalog.profiles["core"].agents)
    d, _ = dry(ops_env, fake, "config", "rollback")
    core = set(load_catalog(str(ops_env / "etc" / ".history" / "000001" / "unified.yaml"), env={})
               .profiles["core"].agents)
    assert sorted(d["stop"]) == sorted(bigger - core) and "TutorAgent" in d["stop"]
    assert d["removed_dropins"] == ["conf.d/50-local.yaml"]
    real = json.loads(ctl("config", "rollback", "--no-wait", "--json").output)
    assert sorted(real["stopped"]) == sorted(d["stop"]) and real["removed_dropins"] == d["removed_dropins"]


def test_rollback_dry_run_refuses_unapplied_edits_as_rollback_does_and_force_only_names_them(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    edit(main, "log_level: INFO", "log_level: DEBUG")
    apply_ok()
    edit(main, "log_level: DEBUG", "log_level: ERROR")  # edited, never applied
    res = ctl("config", "rollback", "--dry-run")
    assert res.exit_code == 1 and "never made live" in res.output
    d, _ = dry(ops_env, fake, "config", "rollback", "--force")
    assert [pathlib.Path(p).name.split(".unapplied-")[0] for p in d["set_aside"]] == ["unified.yaml"]
    assert not list((ops_env / "etc").glob("*.unapplied-*")) and "log_level: ERROR" in main.read_text()


# -- backup restore ---------------------------------------------------------------------------
def test_restore_dry_run_verifies_and_lists_what_it_would_install_and_remove(state, ops_env, fake):
    make_db(str(state / "twin.db"), 5)
    m = backup.create()
    (state / "twin.db").unlink()
    (state / "later.json").write_text("{}")
    (ops_env / "etc" / "conf.d" / "90-after.yaml").write_text("settings:\n  log_level: DEBUG\n")
    d, text = dry(ops_env, fake, "backup", "restore", m["path"])  # no --yes: nothing to confirm
    assert d["removed_dropins"] == ["conf.d/90-after.yaml"]
    assert str(state / "twin.db") in d["install"]["state"] and paths.catalog_file() in d["install"]["config"]
    assert d["kept_not_in_archive"] == [str(state / "later.json")]
    assert d["follow"]["profile"] == "core"
    assert "would remove drop-ins the archive does not have: conf.d/90-after.yaml" in text
    assert not (state / "twin.db").exists()


def test_restore_dry_run_of_a_corrupt_archive_fails_as_restore_does(state, ops_env, fake):
    m = backup.create()
    data = bytearray(pathlib.Path(m["path"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    pathlib.Path(m["path"]).write_bytes(bytes(data))
    res = ctl("backup", "restore", "--dry-run", m["path"])
    assert res.exit_code == 1 and "corrupt" in res.output


# -- recover ----------------------------------------------------------------------------------
def test_recover_dry_run_lists_what_it_would_stop_delete_and_start(state, ops_env, fake):
    start_core(fake)
    d, text = dry(ops_env, fake, "recover")
    cat = load_catalog(paths.catalog_file(), env={})
    assert "unified-agent@ServiceRegistry.service" in d["stop"] and "unified-profile-core.target" in d["stop"]
    assert d["delete"] == sorted(p.name for p in state.iterdir()) and d["clear"] is True
    assert d["profile"] == "core" and d["start"] == list(cat.profiles["core"].agents)
    assert f"DELETE everything in {state}: 2 entries" in text and "LOG_LEVEL=DEBUG" in text
    kept, _ = dry(ops_env, fake, "recover", "--keep-state", "--profile", "vision")
    assert kept["delete"] == [] and kept["clear"] is False and kept["profile"] == "vision"


def test_recover_json_without_dry_run_is_a_usage_error(fake):
    res = ctl("recover", "--json", "--yes")
    assert res.exit_code == 2 and "--json goes with --dry-run" in res.output
