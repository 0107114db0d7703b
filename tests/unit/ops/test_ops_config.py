"""Catalog history, rollback and staged rollout (trial → promote | abort), driven through the
CLI against a recording fake of systemd and a private /etc/unified."""
from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from unified_ctl import cli as cli_mod
from unified_ctl import config_history as history
from unified_ctl import changes, generator
from unified_core import paths, profiles
from unified_core.catalog import load_catalog

from ..fakes import FakeSystemd


@pytest.fixture()
def fake(ops_env, monkeypatch):
    cat = load_catalog(paths.catalog_file(), env={})
    sd = FakeSystemd(cat)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: sd))
    return sd


def ctl(*args, env=None):
    """unified-ctl ARGS; the installed catalog is the private one (-c), unless the test
    names another through $CONFIG as an operator would."""
    pre = [] if env and "CONFIG" in env else ["-c", paths.catalog_file()]
    return CliRunner().invoke(cli_mod.cli, pre + list(args), env=env, catch_exceptions=False)


# STTService's environment line in the shipped catalog (its Wyoming port): the tests that change
# an agent's settings add a variable to it (a second `environment:` key would be a duplicate)
STT_ENV = "    environment: {WYOMING_PORT: 10310}\n"


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def apply_ok():
    res = ctl("apply", "--json")
    assert res.exit_code == 0, res.output


def start_core(sd):
    sd.catalog = load_catalog(paths.catalog_file(), env={})  # what the generator renders now
    sd.start([sd.catalog.profiles["core"].target])
    sd.calls.clear()


def test_history_keeps_each_different_catalog_once(ops_env):
    files = history.catalog_files(paths.catalog_file())
    first = history.record(files, "apply")
    assert first.id == 1
    assert history.record(files, "daemon-reload") is None  # same content: nothing new
    edit(ops_env / "etc" / "unified.yaml", "log_level: INFO", "log_level: DEBUG")
    second = history.record(files, "apply")
    assert second.id == 2 and second.digest != first.digest
    assert [e.reason for e in history.entries()] == ["apply", "apply"]


def test_history_prunes_the_oldest_beyond_keep(ops_env):
    main = ops_env / "etc" / "unified.yaml"
    for i in range(5):
        main.write_text(main.read_text() + f"\n# edit {i}\n")
        history.record(history.catalog_files(str(main)), "apply", keep=3)
    assert [e.id for e in history.entries()] == [3, 4, 5]


def test_a_drop_in_is_part_of_the_catalog_kept(ops_env):
    drop = ops_env / "etc" / "conf.d" / "50-local.yaml"
    drop.write_text("settings:\n  log_level: WARNING\n")
    e = history.record(history.catalog_files(paths.catalog_file()), "apply")
    assert e.files == ("conf.d/50-local.yaml", "unified.yaml")
    assert (ops_env / "etc" / ".history" / "000001" / "conf.d" / "50-local.yaml").read_text() == drop.read_text()


def test_every_apply_keeps_the_previous_catalog(fake, ops_env):
    apply_ok()
    edit(ops_env / "etc" / "unified.yaml", "log_level: INFO", "log_level: DEBUG")
    apply_ok()
    entries = history.entries()
    assert [e.reason for e in entries] == ["apply", "apply"]
    assert "log_level: INFO" in (ops_env / "etc" / ".history" / "000001" / "unified.yaml").read_text()


def test_rollback_restores_the_previous_catalog_and_restarts_what_changed(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    before = main.read_text()
    apply_ok()
    edit(main, "port: 5574", "port: 5591")  # SessionMemoryAgent's agent port
    apply_ok()
    start_core(fake)
    res = ctl("config", "rollback", "--no-wait", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert main.read_text() == before
    assert data["to"]["id"] == 1 and data["sockets_restarted"] == ["SessionMemoryAgent"]
    assert ("daemon-reload",) in fake.calls
    stop = [c for c in fake.calls if c[0] == "stop"]
    assert ("stop", ("unified-agent@SessionMemoryAgent.socket", "unified-agent@SessionMemoryAgent.service")) in stop
    restarts = [c for c in fake.calls if c[0] == "restart"]
    assert restarts == []  # nothing else changed: no other agent is touched
    assert history.newest().reason == "rollback to 1"


def test_a_second_rollback_returns_to_the_catalog_rolled_back_from(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    edit(main, "log_level: INFO", "log_level: DEBUG")
    apply_ok()
    assert ctl("config", "rollback", "--no-wait").exit_code == 0
    assert "log_level: INFO" in main.read_text()
    assert ctl("config", "rollback", "--no-wait").exit_code == 0
    assert "log_level: DEBUG" in main.read_text()


def test_a_setting_every_agent_gets_restarts_every_running_agent(fake, ops_env):
    apply_ok()
    edit(ops_env / "etc" / "unified.yaml", "log_level: INFO", "log_level: DEBUG")
    apply_ok()
    start_core(fake)
    res = ctl("config", "rollback", "--no-wait", "--json")
    data = json.loads(res.output)
    cat = load_catalog(paths.catalog_file(), env={})
    assert sorted(data["restarted"]) == sorted(cat.profiles["core"].agents)


def test_rollback_follows_profile_membership(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    # the new catalog adds TutorAgent to core: rolling back must stop it again
    edit(main, "groups: [infrastructure_registry, coordination_resource, memory_foundation, speech_io]",
         "groups: [infrastructure_registry, coordination_resource, memory_foundation, speech_io]\n"
         "    agents: [TutorAgent]")
    apply_ok()
    start_core(fake)
    bigger = set(fake.catalog.profiles["core"].agents)
    assert fake.is_active("unified-agent@TutorAgent.socket")
    res = ctl("config", "rollback", "--no-wait", "--json")
    core = set(load_catalog(paths.catalog_file(), env={}).profiles["core"].agents)
    assert "TutorAgent" in bigger - core  # (with the dependencies it pulled in)
    assert sorted(json.loads(res.output)["stopped"]) == sorted(bigger - core)
    stops = [u for c in fake.calls if c[0] == "stop" for u in c[1]]
    assert "unified-agent@TutorAgent.socket" in stops and "unified-agent@TutorAgent.service" in stops


def test_rollback_without_history_says_why(fake, ops_env):
    res = ctl("config", "rollback")
    assert res.exit_code == 1 and "no catalog history yet" in res.output


def test_rollback_refuses_to_overwrite_unapplied_edits_unless_forced(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    edit(main, "log_level: INFO", "log_level: DEBUG")
    apply_ok()
    edit(main, "log_level: DEBUG", "log_level: ERROR")  # edited, never applied
    res = ctl("config", "rollback", "--no-wait")
    assert res.exit_code == 1 and "never made live" in res.output
    assert "log_level: ERROR" in main.read_text()
    res = ctl("config", "rollback", "--no-wait", "--force")
    assert res.exit_code == 0, res.output
    aside = list((ops_env / "etc").glob("unified.yaml.unapplied-*"))
    assert len(aside) == 1 and "log_level: ERROR" in aside[0].read_text()
    assert "log_level: INFO" in main.read_text()


def test_history_lists_entries_and_marks_the_live_one(fake, ops_env):
    apply_ok()
    edit(ops_env / "etc" / "unified.yaml", "log_level: INFO", "log_level: DEBUG")
    apply_ok()
    out = ctl("config", "history").output.splitlines()
    assert len(out) == 2 and out[1].endswith("live") and not out[0].endswith("live")


# -- staged rollout --------------------------------------------------------------------
def new_catalog(ops_env, old="log_level: INFO", new="log_level: DEBUG"):
    path = ops_env / "new_config.yaml"
    path.write_text((ops_env / "etc" / "unified.yaml").read_text().replace(old, new, 1))
    return path


def test_config_switch_tries_the_catalog_without_making_it_permanent(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    before = main.read_text()
    apply_ok()
    start_core(fake)
    new = new_catalog(ops_env)
    res = ctl("profile", "switch", "core", "--no-wait", env={"CONFIG": str(new)})
    assert res.exit_code == 0, res.output
    assert main.read_text() == before  # the permanent catalog is untouched
    assert history.trial_catalog() is not None
    assert "config promote" in res.output
    # the generator renders the trial; a reboot (empty /run) renders the permanent one
    out = ops_env / "gen"
    status = generator.generate(str(out))
    assert status["trial"] and "LOG_LEVEL=DEBUG" in (out / "unified-agent@.service.d" / "10-settings.conf").read_text()
    assert len(history.entries()) == 1  # a trial is never recorded as live history
    # every running agent restarted once: its settings changed
    restarted = [c for c in fake.calls if c[0] == "restart"]
    assert restarted and len(restarted[0][1]) == 16


def test_a_plain_switch_during_a_trial_keeps_trying_it(fake, ops_env):
    apply_ok()
    new = new_catalog(ops_env, "port: 7108", "port: 7109")  # TutorAgent
    assert ctl("profile", "switch", "core", "--no-wait", env={"CONFIG": str(new)}).exit_code == 0
    res = ctl("profile", "switch", "tutoring", "--no-wait", "--json")
    assert res.exit_code == 0, res.output
    assert history.trial_catalog() is not None
    tutor = load_catalog(history.trial_catalog(), env={}).agents["TutorAgent"]
    assert tutor.port == 7109


def test_promote_makes_the_trial_permanent_and_keeps_it_in_history(fake, ops_env):
    apply_ok()
    new = new_catalog(ops_env)
    ctl("profile", "switch", "core", "--no-wait", env={"CONFIG": str(new)})
    res = ctl("config", "promote", "--no-wait", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert (ops_env / "etc" / "unified.yaml").read_text() == new.read_text()
    assert history.trial_catalog() is None
    assert history.newest().reason == "promote"
    assert data["source"] == str(new)


def test_abort_returns_to_the_permanent_catalog(fake, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    before = main.read_text()
    apply_ok()
    start_core(fake)
    ctl("profile", "switch", "core", "--no-wait", env={"CONFIG": str(new_catalog(ops_env))})
    fake.calls.clear()
    res = ctl("config", "abort", "--no-wait", "--json")
    data = json.loads(res.output)
    assert history.trial_catalog() is None and main.read_text() == before
    assert len(data["restarted"]) == 16  # back to the permanent settings
    status = generator.generate(str(ops_env / "gen"))
    assert not status["trial"]


def test_validate_with_config_is_a_pure_check(fake, ops_env):
    new = new_catalog(ops_env)
    res = CliRunner().invoke(cli_mod.cli, ["-c", str(new), "validate"])
    assert res.exit_code == 0 and str(new) in res.output
    res = ctl("validate", env={"CONFIG": str(new)})  # $CONFIG: not validate's, the live one is read
    assert res.exit_code == 0 and str(new) not in res.output and paths.catalog_file() in res.output
    assert history.trial_catalog() is None and fake.calls == []


@pytest.mark.parametrize("args", [("profile", "switch", "core", "--no-wait"), ("recover", "--yes", "--keep-state")])
def test_the_config_option_never_starts_a_trial(fake, ops_env, args):
    apply_ok()
    new = new_catalog(ops_env)
    fake.calls.clear()
    res = CliRunner().invoke(cli_mod.cli, ["-c", str(new), *args])
    assert res.exit_code == 1
    assert f"CONFIG={new} unified-ctl profile switch core" in res.output   # how to, instead
    assert history.trial_catalog() is None and fake.calls == []


def test_an_invalid_trial_catalog_touches_nothing(fake, ops_env):
    apply_ok()
    bad = new_catalog(ops_env, "port: 7108", "port: seventy")
    fake.calls.clear()
    res = ctl("profile", "switch", "core", env={"CONFIG": str(bad)})
    assert res.exit_code == 1 and "seventy" in res.output
    assert history.trial_catalog() is None and fake.calls == []


def test_a_broken_trial_renders_the_last_good_catalog(ops_env):
    cat = load_catalog(paths.catalog_file(), env={})
    generator.save_last_good(cat, reason="apply")
    bad = ops_env / "bad.yaml"
    bad.write_text("version: 1\nagents: [oops\n")
    history.start_trial({"unified.yaml": str(bad)}, str(bad))
    status = generator.generate(str(ops_env / "gen"))
    assert status["rendered"] and status["last_good"]
    assert len(history.entries()) == 1


def test_promote_without_a_trial_says_how_to_start_one(fake, ops_env):
    res = ctl("config", "promote")
    assert res.exit_code == 1 and "CONFIG=FILE unified-ctl profile switch" in res.output


def test_between_compares_what_systemd_reads_not_comments(ops_env):
    a = load_catalog(paths.catalog_file(), env={})
    other = ops_env / "elsewhere" / "unified.yaml"
    other.parent.mkdir()
    other.write_text((ops_env / "etc" / "unified.yaml").read_text())
    b = load_catalog(str(other), env={})
    # only UNIFIED_CATALOG (the path) differs: every service, no socket
    assert changes.between(a, b) == {n: "the global settings changed" for n in a.agents}
    assert changes.between(a, a) == {}
    assert profiles.current_profile(a) == "core"


def test_between_names_the_agents_that_read_a_section_only_at_start(ops_env):
    a = load_catalog(paths.catalog_file(), env={})
    edit(ops_env / "etc" / "unified.yaml", "vram_budget_percentage: 80", "vram_budget_percentage: 70")
    b = load_catalog(paths.catalog_file(), env={})
    assert changes.between(a, b) == {"ModelManagerSuite": "it reads models and routing only at start"}


def test_rollback_of_a_models_change_restarts_the_model_manager_and_nothing_else(fake, ops_env):
    apply_ok()
    edit(ops_env / "etc" / "unified.yaml", "vram_budget_percentage: 80", "vram_budget_percentage: 70")
    apply_ok()
    start_core(fake)
    res = ctl("config", "rollback", "--no-wait", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["restarted"] == ["ModelManagerSuite"]
    assert data["why_restarted"] == {"ModelManagerSuite": "it reads models and routing only at start"}
    assert [c for c in fake.calls if c[0] == "restart"] == [("restart", ("unified-agent@ModelManagerSuite.service",))]


# ------------------------------------------------------------------ apply: who is stale
@pytest.fixture()
def generating(fake, ops_env, monkeypatch):
    """daemon-reload runs the real generator into the private generator dir, as systemd does."""
    real = fake.daemon_reload

    def reload():
        real()
        generator.generate(paths.generator_dir(), ncpu=2)
    monkeypatch.setattr(fake, "daemon_reload", reload)
    generator.generate(paths.generator_dir(), ncpu=2)   # what systemd rendered at boot
    return fake


def test_apply_names_running_agents_whose_settings_changed_and_restarts_them_on_request(generating):
    import pathlib

    sd = generating
    start_core(sd)
    main = pathlib.Path(paths.catalog_file())
    edit(main, STT_ENV, STT_ENV.replace("}", ", STT_BEAM: '5'}"))
    res = ctl("apply")
    assert res.exit_code == 0, res.output
    assert "  STTService: still on the old settings (its unit changed)" in res.output
    assert "unified-ctl apply --restart" in res.output
    assert not [c for c in sd.calls if c[0] in ("restart", "try_restart")]
    # nothing new, but STTService has not restarted since: still stale, then restarted
    data = json.loads(ctl("apply", "--restart", "--json").output)
    assert data["stale"] == {"STTService": "its unit changed"} and data["restarted"] == ["STTService"]
    assert ("restart", ("unified-agent@STTService.service",)) in sd.calls
    assert json.loads(ctl("apply", "--json").output)["stale"] == {}


def test_an_agent_restarted_by_hand_is_no_longer_stale(generating):
    import pathlib

    sd = generating
    start_core(sd)
    edit(pathlib.Path(paths.catalog_file()), STT_ENV, STT_ENV.replace("}", ", X: '1'}"))
    assert json.loads(ctl("apply", "--json").output)["stale"] == {"STTService": "its unit changed"}
    time.sleep(0.01)
    sd.restart(["unified-agent@STTService.service"])
    assert json.loads(ctl("apply", "--json").output)["stale"] == {}


def test_a_new_port_restarts_the_socket_too_and_dormant_agents_are_left_alone(generating):
    import pathlib

    sd = generating
    start_core(sd)
    main = pathlib.Path(paths.catalog_file())
    text = main.read_text()
    (main.parent / "conf.d" / "90-port.yaml").write_text(   # a drop-in: every header changes
        "agents:\n  STTService:\n    port: 5890\n")
    assert "port: 5800" in text
    edit(main, "port: 7108\n", "port: 7398\n")           # TutorAgent: not in core
    data = json.loads(ctl("apply", "--restart", "--json").output)
    assert data["stale"] == {"STTService": "its ports changed"}
    assert ("restart", ("unified-agent@STTService.socket", "unified-agent@STTService.service")) in sd.calls


def test_routing_edits_mark_model_manager_stale_since_it_reads_them_only_at_start(generating):
    import pathlib

    sd = generating
    start_core(sd)
    main = pathlib.Path(paths.catalog_file())
    edit(main, "complexity: 0.2", "complexity: 0.3")
    data = json.loads(ctl("apply", "--json").output)
    assert data["stale"] == {"ModelManagerSuite": "it reads models and routing only at start"}


def test_a_new_gpu_agent_marks_vram_optimizer_stale_but_a_cpu_only_one_does_not(generating):
    import pathlib

    sd = generating
    start_core(sd)
    conf = pathlib.Path(paths.catalog_file()).parent / "conf.d"
    (conf / "80-cpu.yaml").write_text(
        "agents:\n  CpuHelper:\n    group: extra\n    port: 7395\n    health_port: 8395\n    required: false\n")
    assert json.loads(ctl("apply", "--json").output)["stale"] == {}
    (conf / "81-gpu.yaml").write_text(
        "agents:\n  GpuHelper:\n    group: extra\n    port: 7396\n    health_port: 8396\n    required: false\n"
        "    resources: {vram_mb: 512}\n")
    stale = json.loads(ctl("apply", "--json").output)["stale"]
    assert stale == {"VRAMOptimizerAgent": "it reads which agents use VRAM and ModelManagerSuite's "
                                           "address only at start"}
