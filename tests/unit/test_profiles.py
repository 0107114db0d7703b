"""Profile switching is an explicit diff of agent sets, driven through the systemd seam."""
import pathlib
import shutil
import sys

import pytest
from click.testing import CliRunner

from unified_ctl import cli as cli_mod
from unified_ctl import ports
from unified_core import profiles
from unified_core.catalog import load_catalog
from unified_core.errors import UnifiedError

from .fakes import FakeSystemd

CATALOG = str(pathlib.Path(__file__).parents[2] / "etc/unified/unified.yaml")


@pytest.fixture()
def cat():
    return load_catalog(CATALOG, env={})


@pytest.fixture()
def env(tmp_path, monkeypatch):
    # the host's own listeners must not decide these tests (see the port tests below)
    monkeypatch.setattr(ports, "live_listeners", lambda: [])
    (tmp_path / "etc").mkdir()
    shutil.copy(CATALOG, tmp_path / "etc" / "unified.yaml")  # the installed (live) catalog
    monkeypatch.setenv("UNIFIED_ETC", str(tmp_path / "etc"))
    monkeypatch.setenv("UNIFIED_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("UNIFIED_RUNTIME_UNITS", str(tmp_path / "units"))
    for var in ("PROFILE", "LOG_LEVEL", "DISABLE_AUTO_RESTART", "CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def running_after(cat, fake, profile):
    fake.start([cat.profiles[profile].target])
    return {n for n in cat.agents if fake.is_active(cat.agents[n].socket)}


def test_switch_core_to_learning_starts_only_the_learning_additions_and_stops_nothing(cat):
    fake = FakeSystemd(cat)
    running = running_after(cat, fake, "core")
    plan = profiles.plan_switch(cat, "core", "learning", running)
    assert plan.stop_agents == ()
    assert set(plan.start_agents) == set(cat.profiles["learning"].agents) - set(cat.profiles["core"].agents)
    assert len(plan.keep_agents) == 16


def test_switch_learning_to_core_stops_service_and_socket_of_agents_that_left(cat, env):
    fake = FakeSystemd(cat)
    running = running_after(cat, fake, "learning")
    plan = profiles.plan_switch(cat, "learning", "core", running)
    assert set(plan.stop_agents) == set(cat.profiles["learning"].agents) - set(cat.profiles["core"].agents)
    profiles.execute_switch(cat, fake, plan)
    stopped = next(c[1] for c in fake.calls if c[0] == "stop")
    assert "unified-agent@TutorAgent.socket" not in stopped
    assert "unified-agent@LearningManager.socket" in stopped and "unified-agent@LearningManager.service" in stopped
    assert not fake.is_active("unified-agent@LearningManager.socket")
    assert fake.is_active("unified-agent@ServiceRegistry.service")  # shared agent untouched


def test_switch_never_isolates_and_persists_choice_before_reload(cat, env):
    fake = FakeSystemd(cat)
    plan = profiles.plan_switch(cat, "core", "vision", set())
    profiles.execute_switch(cat, fake, plan)
    assert all("isolate" not in c for c in fake.calls)
    assert fake.calls[0] == ("daemon-reload",)
    assert profiles.read_selected() == "vision"
    assert ("start", ("unified-profile-vision.target", "unified.target")) in fake.calls


def test_agents_started_by_hand_outside_the_profile_are_stopped_by_a_switch(cat):
    plan = profiles.plan_switch(cat, "core", "core", {"ServiceRegistry", "TutorAgent"})
    assert plan.stop_agents == ("TutorAgent",)


def test_readiness_of_optional_agent_is_its_listening_socket(cat):
    items = profiles.expected(cat, "vision")
    modes = {i.agent: i.mode for i in items}
    assert modes["CacheManager"] == "socket"
    assert modes["VisionProcessingAgent"] == "service"  # autoload
    assert modes["ServiceRegistry"] == "service"


def test_expected_lists_dependencies_first(cat):
    order = [i.agent for i in profiles.expected(cat, "core")]
    for n in order:
        for d in cat.agents[n].depends_on:
            assert order.index(d) < order.index(n)


def test_dry_run_prints_plan_and_changes_nothing(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    running_after(cat, fake, "learning")
    fake.calls.clear()
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "core", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "stop (service and socket): 18" in res.output
    assert [c for c in fake.calls if c[0] != "show"] == []
    assert profiles.read_selected() is None


def test_dry_run_json_lists_the_plan(cat, env, monkeypatch):
    import json

    fake = FakeSystemd(cat)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "learning", "--dry-run", "--json"])
    data = json.loads(res.output)
    assert data["dry_run"] is True and len(data["start"]) == 34 and data["stop"] == []


def test_switch_to_unknown_profile_names_the_allowed_ones(cat, env, monkeypatch):
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: FakeSystemd(cat)))
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "nope"])
    assert res.exit_code == 1
    assert "unknown profile 'nope'; allowed: core, vision, learning, tutoring, full" in res.output


def test_disable_auto_restart_env_writes_runtime_dropin_and_says_how_to_undo(cat, env, monkeypatch):
    from unified_core import runtime

    fake = FakeSystemd(cat)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    monkeypatch.setenv("DISABLE_AUTO_RESTART", "true")
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "core", "--no-wait"])
    assert res.exit_code == 0, res.output
    assert runtime.auto_restart_disabled()
    assert "unified-ctl auto-restart enable" in res.output
    dropin = env / "units" / "unified-agent@.service.d" / runtime.NO_RESTART
    assert "Restart=no" in dropin.read_text()


def test_launch_environment_is_validated_and_written_for_all_agents(cat, env, monkeypatch):
    from unified_core import runtime

    fake = FakeSystemd(cat)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    monkeypatch.setenv("LOG_LEVEL", "debug")
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "core", "--no-wait"])
    assert res.exit_code == 0, res.output
    assert runtime.read_launch_environment() == {"LOG_LEVEL": "DEBUG"}
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "core", "--no-wait"])
    assert res.exit_code == 1
    assert "environment: LOG_LEVEL: 'LOUD' is not a log level" in res.output


def test_agent_stop_stops_socket_too(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    res = CliRunner().invoke(cli_mod.cli, ["agent", "stop", "TutorAgent"])
    assert res.exit_code == 0, res.output
    assert ("stop", ("unified-agent@TutorAgent.socket", "unified-agent@TutorAgent.service")) in fake.calls


def test_agent_with_unknown_name_suggests_close_ones(cat, env, monkeypatch):
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: FakeSystemd(cat)))
    res = CliRunner().invoke(cli_mod.cli, ["agent", "stop", "TutorAgnt"])
    assert res.exit_code == 1 and "did you mean TutorAgent" in res.output


def test_emergency_stop_requires_confirmation_and_stops_all_our_units(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    running_after(cat, fake, "core")
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    res = CliRunner().invoke(cli_mod.cli, ["emergency-stop"], input="n\n")
    assert res.exit_code != 0 and not any(c[0] == "stop" for c in fake.calls)
    res = CliRunner().invoke(cli_mod.cli, ["emergency-stop", "--yes"])
    assert res.exit_code == 0, res.output
    assert not any(fake.is_active(u) for u in fake.state)


def test_emergency_stop_is_not_defeated_by_a_unit_systemd_can_no_longer_load(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    running_after(cat, fake, "core")
    # an agent removed from the catalog while its socket was in systemd's memory
    fake.state["unified-agent@GoneAgent.socket"] = "inactive"
    fake.load["unified-agent@GoneAgent.socket"] = "not-found"
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    res = CliRunner().invoke(cli_mod.cli, ["emergency-stop", "--yes"])
    assert res.exit_code == 0, res.output
    assert not any(fake.is_active(u) for u in fake.state)


def test_status_json_classifies_dormant_agents(cat, env, monkeypatch):
    import json

    fake = FakeSystemd(cat)
    running_after(cat, fake, "tutoring")
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    (env / "etc" / "selected-profile").write_text("tutoring\n")
    res = CliRunner().invoke(cli_mod.cli, ["status", "--json", "--no-health"])
    data = json.loads(res.output)
    states = {a["agent"]: a["state"] for a in data["agents"]}
    assert states["TutorAgent"] == "dormant" and states["ServiceRegistry"] == "active"
    assert data["profile"] == "tutoring"


def test_a_changed_launch_environment_restarts_the_agents_that_keep_running(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    running_after(cat, fake, "core")
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    monkeypatch.setenv("VRAM_LIMIT_MB", "2000")
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "core", "--no-wait"])
    assert res.exit_code == 0, res.output
    restarted = [c for c in fake.calls if c[0] == "try-restart"]
    assert len(restarted) == 1 and len(restarted[0][1]) == 16
    fake.calls.clear()  # same environment again: nothing to restart
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "core", "--no-wait"])
    assert not [c for c in fake.calls if c[0] == "try-restart"]


# ------------------------------------------------------------------ ports already taken
def test_port_clash_names_agent_port_program_unit_and_the_catalog_field(cat):
    holder = ports.Listener("0.0.0.0", 9010, 812, "otherd", "otherd.service")
    found = ports.clashes(cat, cat.profile("learning").agents, [holder])
    assert [(c.agent, c.what, c.port) for c in found] == [("ObservabilityHub_PC2", "agent port", 9010)]
    assert str(found[0]) == (
        "ObservabilityHub_PC2: agent port 9010 is in use by otherd (pid 812, "
        "otherd.service) on 0.0.0.0:9010; stop that program or give the agent "
        "another port (agents.ObservabilityHub_PC2.port in the catalog)")


def test_node_exporter_on_9100_clashes_with_no_agent_of_the_full_profile(cat):
    # the original catalog had ObservabilityHub_PC2 there: `apt install prometheus` broke it
    node = ports.Listener("0.0.0.0", 9100, 812, "prometheus-node", "prometheus-node-exporter.service")
    assert ports.clashes(cat, cat.profile("full").agents, [node]) == []


def test_a_listener_on_another_address_or_port_is_no_clash(cat):
    others = [ports.Listener("192.0.2.7", 9010, 5, "x"), ports.Listener("127.0.0.1", 9012, 6, "y")]
    assert ports.clashes(cat, cat.profile("learning").agents, others) == []
    hidden = ports.Listener("::", 8200, None)
    (c,) = ports.clashes(cat, ["ServiceRegistry"], [hidden])
    assert c.what == "health port" and "another program (run as root to see which)" in str(c)
    assert "agents.ServiceRegistry.health_port" in str(c)


def test_a_missing_psutil_is_an_error_naming_the_package_not_a_skipped_check(cat, monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)   # `import psutil` raises ImportError
    with pytest.raises(UnifiedError) as e:
        ports.check(cat, ["ObservabilityHub_PC2"], "switch to profile learning")
    assert str(e.value) == ("cannot check whether the agents' ports are free: the Python module psutil "
                            "is missing; install python3-psutil (a dependency of unified-system)")


def test_unreadable_listeners_are_an_error_that_says_why(monkeypatch):
    import psutil

    def denied(kind):
        raise psutil.AccessDenied(pid=None)
    monkeypatch.setattr(psutil, "net_connections", denied)
    with pytest.raises(UnifiedError, match="reading this host's TCP listeners failed: AccessDenied"):
        ports.live_listeners()


def test_live_listeners_sees_a_socket_this_test_listens_on():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert any(lis.port == port and lis.ip == "127.0.0.1" for lis in ports.live_listeners())


def test_switch_refuses_before_changing_anything_when_a_port_is_taken(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    running_after(cat, fake, "core")
    fake.calls.clear()
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    monkeypatch.setattr(ports, "live_listeners",
                        lambda: [ports.Listener("0.0.0.0", 9010, 812, "otherd")])
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "learning"])
    assert res.exit_code == 1
    assert "cannot switch to profile learning: 1 port(s) already in use, nothing was changed" in res.output
    assert "ObservabilityHub_PC2: agent port 9010" in res.output and "Traceback" not in res.output
    assert [c for c in fake.calls if c[0] not in ("show", "list_units")] == []
    assert profiles.read_selected() is None
    dry = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "learning", "--dry-run"])
    assert dry.exit_code == 0 and "would fail: ObservabilityHub_PC2: agent port 9010" in dry.output


def test_a_port_held_by_an_agent_that_keeps_running_is_no_clash(cat, env, monkeypatch):
    fake = FakeSystemd(cat)
    running_after(cat, fake, "core")
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    # systemd itself listens on the registry's port: its socket is ours and stays
    monkeypatch.setattr(ports, "live_listeners", lambda: [ports.Listener("127.0.0.1", 7200, 1, "systemd")])
    res = CliRunner().invoke(cli_mod.cli, ["profile", "switch", "learning", "--no-wait"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli_mod.cli, ["agent", "start", "ServiceRegistry"])
    assert res.exit_code == 0, res.output


def test_live_listeners_reads_this_hosts_sockets():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        mine = [lis for lis in ports.live_listeners() if lis.port == port]
        assert [(m.ip, m.port) for m in mine] == [("127.0.0.1", port)]
    finally:
        s.close()


# ------------------------------------------------------------------ waiting for readiness
def _probes(monkeypatch, healthy_after: dict):
    """probe() answering healthy for an agent's health port once it was asked N times."""
    from unified_core.health import HealthResult

    asked: dict[int, int] = {}

    def probe(host, port, timeout=1.0):
        asked[port] = asked.get(port, 0) + 1
        ok = asked[port] > healthy_after.get(port, 0)
        return HealthResult(ok, "healthy" if ok else "unreachable", {})
    monkeypatch.setattr(profiles, "probe", probe)
    return asked


def test_agents_answering_healthy_are_ready_and_systemd_is_asked_about_the_rest_only(cat, monkeypatch):
    fake = FakeSystemd(cat)
    fake.start([cat.profiles["core"].target])
    _probes(monkeypatch, {})
    fake.calls.clear()
    res = profiles.wait_ready(cat, fake, "core", timeout=5)
    assert res.ok and len(res.agents) == 16
    assert [c for c in fake.calls if c[0] == "show"] == []   # every /health answered first


def test_while_agents_start_systemd_is_asked_at_most_every_half_second(cat, monkeypatch):
    fake = FakeSystemd(cat)
    fake.start([cat.profiles["core"].target])
    late = cat.agents["ObservabilityHub"].health_port
    _probes(monkeypatch, {late: 8})          # healthy at the 9th probe, ~0.8 s in
    shows = []
    real_show = fake.show
    monkeypatch.setattr(fake, "show", lambda units, props=(): shows.append(units) or real_show(units, props))
    res = profiles.wait_ready(cat, fake, "core", timeout=5, interval=0.1, systemd_every=0.5)
    assert res.ok and 0.6 < res.seconds < 3
    assert 1 <= len(shows) <= 3, len(shows)
    assert all(u == ("unified-agent@ObservabilityHub.service", "unified-agent@ObservabilityHub.socket")
               for u in map(tuple, shows))


def test_while_agents_keep_turning_healthy_systemd_is_not_asked(cat, monkeypatch):
    fake = FakeSystemd(cat)
    fake.start([cat.profiles["core"].target])
    # one more essential agent healthy every probe round (~0.1 s): never a 0.5 s stall
    _probes(monkeypatch, {cat.agents[a].health_port: i for i, a in enumerate(cat.profiles["core"].agents)})
    shows = []
    real_show = fake.show
    monkeypatch.setattr(fake, "show", lambda units, props=(): shows.append(units) or real_show(units, props))
    res = profiles.wait_ready(cat, fake, "core", timeout=10, interval=0.1, systemd_every=0.5)
    assert res.ok and len(res.agents) == 16 and res.seconds > 1
    assert shows == []


def test_an_optional_agents_socket_is_asked_about_at_once(cat, monkeypatch):
    fake = FakeSystemd(cat)
    fake.start([cat.profiles["learning"].target])
    _probes(monkeypatch, {})
    shows = []
    real_show = fake.show
    monkeypatch.setattr(fake, "show", lambda units, props=(): shows.append(units) or real_show(units, props))
    res = profiles.wait_ready(cat, fake, "learning", timeout=5, interval=0.1, systemd_every=0.5)
    assert res.ok and any(a.mode == "socket" for a in res.agents)
    assert len(shows) == 1 and res.seconds < 0.4   # the first round, not after a 0.5 s pause


def test_a_failed_agent_ends_the_wait_early_and_says_why(cat, monkeypatch):
    fake = FakeSystemd(cat)
    fake.start([cat.profiles["core"].target])
    bad = cat.agents["STTService"]
    fake.state[bad.service] = "failed"
    _probes(monkeypatch, {bad.health_port: 10**6})
    res = profiles.wait_ready(cat, fake, "core", timeout=20)
    assert not res.ok and res.seconds < 2
    (failed,) = res.failed
    assert failed.agent == "STTService" and failed.state == "failed/failed"
    assert "service failed" in failed.reason
