"""ServiceRegistry: the directory from the catalog and systemd (agents/builtin/service_registry.py)
and the SDK's registry client (agents/registry_client.py)."""
import threading
import time

import pytest

from unified_core.fleetview import FleetView
from unified_agents.client import AgentCallError
from unified_agents.registry_client import RegistryClient, UnknownAgent
from unified_core.errors import SystemdError
from unified_core.health import HealthResult

from .conftest import Fleet


class Seam:
    """The systemd seam as FleetView uses it: list_units + show of loaded units."""

    def __init__(self, units=None):
        self.units = units or {}
        self.calls = []
        self.error = None

    def list_units(self, patterns):
        self.calls.append(("list-units", tuple(patterns)))
        if self.error:
            raise SystemdError(self.error)
        time.sleep(0.02)  # a real systemctl takes this long: concurrent callers overlap
        return [{"unit": u, "active": p["ActiveState"], "sub": "x"} for u, p in self.units.items()]

    def show(self, units, props):
        self.calls.append(("show", tuple(units)))
        return {u: dict(self.units.get(u, {})) for u in units}


def svc(state, **kw):
    return {"ActiveState": state, "SubState": "running" if state == "active" else "dead", **kw}


@pytest.fixture
def view_env(tmp_path, monkeypatch, sdk_path):
    monkeypatch.setenv("UNIFIED_ETC", str(tmp_path / "etc"))
    fleet = Fleet(tmp_path, spawner=type("S", (), {"sdk_path": sdk_path, "sockets": []})())
    return fleet


def make_view(fleet, seam, probe=None, **kw):
    return FleetView(str(fleet.catalog), systemd=seam,
                     probe=probe or (lambda host, port, timeout: HealthResult(True, "healthy", {})),
                     **kw)


def test_states_come_from_systemd_dormant_active_failed_and_stopped(view_env):
    mono_now = time.clock_gettime(time.CLOCK_MONOTONIC)
    seam = Seam({
        "unified-agent@Registry.service": svc("active", MainPID="42",
                                              StateChangeTimestampMonotonic=str(int((mono_now - 60) * 1e6))),
        "unified-agent@Registry.socket": svc("active"),
        "unified-agent@Echo.service": svc("inactive"),
        "unified-agent@Echo.socket": svc("active"),
        "unified-agent@Flaky.service": svc("failed", Result="exit-code", NRestarts="3"),
        "unified-agent@Flaky.socket": svc("active"),
    })
    states, age, error = make_view(view_env, seam).states()
    assert error == "" and age == 0
    assert states["Registry"].state == "active" and states["Registry"].pid == 42
    assert time.time() - states["Registry"].since_wall == pytest.approx(60, abs=2)
    assert states["Echo"].state == "dormant" and states["Echo"].pid is None
    assert states["Flaky"].state == "failed" and states["Flaky"].restarts == 3
    assert states["Faraway"].state == "stopped" and states["Faraway"].since_wall is None


def test_only_loaded_units_are_shown_so_systemd_loads_nothing_for_us(view_env):
    seam = Seam({"unified-agent@Registry.service": svc("active"),
                 "unified-agent@Registry.socket": svc("active")})
    make_view(view_env, seam).states()
    shown = [c[1] for c in seam.calls if c[0] == "show"]
    assert shown == [("unified-agent@Registry.service", "unified-agent@Registry.socket")]


def test_a_burst_of_requests_runs_systemctl_once_per_ttl(view_env):
    seam = Seam({"unified-agent@Registry.service": svc("active")})
    view = make_view(view_env, seam, state_ttl=5.0)
    threads = [threading.Thread(target=view.states) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [c[0] for c in seam.calls] == ["list-units", "show"]
    view.states(max_age=0)  # an expired cache asks again
    assert len([c for c in seam.calls if c[0] == "list-units"]) == 2


def test_without_systemd_the_directory_still_answers_with_unknown_states(view_env):
    seam = Seam()
    seam.error = "systemd is not running here"
    view = make_view(view_env, seam)
    states, _, error = view.states()
    assert error == "systemd is not running here"
    assert {s.state for s in states.values()} == {"unknown"}
    assert view.health_checks()["systemd"] == {"status": "degraded",
                                              "error": "systemd is not running here"}


def test_a_timers_read_is_fresh_raises_on_failure_and_feeds_the_cache(view_env):
    """read() is how the hub's and the twin's timers ask: always systemd, the error to the
    caller (the hub keeps its last view), the answer served by states() afterwards."""
    seam = Seam({"unified-agent@Registry.service": svc("active", MainPID="7")})
    view = make_view(view_env, seam, state_ttl=60.0)
    view.states()
    snap, units = view.read()                       # not the cached answer: asked again
    assert len([c for c in seam.calls if c[0] == "list-units"]) == 2
    assert snap is view.snap and units["Registry"].pid == 7
    assert view.states()[0] is units                # what the next request is served
    seam.error = "Failed to connect to bus"
    with pytest.raises(SystemdError, match="Failed to connect to bus"):
        view.read()
    assert view.states()[0] is units                # a failed read replaces nothing
    assert view.counters["systemd_errors"] == 1


def test_health_is_probed_on_the_health_port_of_active_agents_only(view_env):
    probed = []

    def probe(host, port, timeout):
        probed.append((host, port))
        return HealthResult(True, "healthy", {})

    seam = Seam({"unified-agent@Registry.service": svc("active", MainPID="7"),
                 "unified-agent@Echo.service": svc("inactive"),
                 "unified-agent@Echo.socket": svc("active")})
    view = make_view(view_env, seam, probe=probe, health_ttl=60)
    states, _, _ = view.states()
    health = view.health(["Registry", "Echo"], states)
    assert health == {"Registry": "healthy", "Echo": None}
    ports = view_env.ports
    assert probed == [("127.0.0.1", ports["Registry_h"])]   # never Echo's ports: it sleeps
    view.health(["Registry"], states)
    assert len(probed) == 1  # cached


def test_health_probes_wait_the_catalogs_health_timeout_and_repeat_after_its_interval(view_env):
    text = view_env.catalog.read_text()
    view_env.catalog.write_text(text.replace("  profile: core\n", "  profile: core\n"
                                             "  health: {interval: 7s, timeout: 300ms}\n", 1))
    timeouts, now = [], [100.0]

    def probe(host, port, timeout):
        timeouts.append(timeout)
        return HealthResult(True, "healthy", {})

    seam = Seam({"unified-agent@Registry.service": svc("active", MainPID="7")})
    view = make_view(view_env, seam, probe=probe, clock=lambda: now[0])
    states, _, _ = view.states()
    view.health(["Registry"], states)
    now[0] += 6.9                                   # within settings.health.interval
    view.health(["Registry"], states)
    assert timeouts == [0.3]
    now[0] += 0.2                                   # past it: probed again
    view.health(["Registry"], states)
    assert timeouts == [0.3, 0.3]


def test_a_catalog_edit_is_picked_up_and_an_invalid_one_keeps_the_previous(view_env):
    view = make_view(view_env, Seam())
    assert view.refresh_catalog() is False
    text = view_env.catalog.read_text()
    view_env.catalog.write_text(text.replace("host: testhost", "host: otherhost"))
    assert view.refresh_catalog() is True
    assert view.snap.catalog.settings.host == "otherhost" and view.snap.version == 2
    view_env.catalog.write_text(text.replace("port: ", "port: x", 1))
    assert view.refresh_catalog() is False
    assert view.snap.catalog.settings.host == "otherhost"
    assert "kept the previous" in view.snap.problem
    assert view.health_checks()["catalog"]["status"] == "degraded"


def test_the_selected_profile_is_followed(view_env):
    view = make_view(view_env, Seam())
    assert view.snap.profile == "core" and "Faraway" not in view.snap.members
    (view_env.tmp / "etc" / "selected-profile").write_text("extra\n")
    assert view.refresh_catalog() is True
    assert view.snap.profile == "extra" and "Faraway" in view.snap.members
    assert view.snap.profiles_of["Faraway"] == ("extra", "full")
    assert view.snap.by_task["vision"] == ("Echo",)


# ---------------------------------------------------------------- over HTTP
@pytest.fixture
def registry(fleet):
    fleet.set_state("Registry", "active", MainPID=1)
    fleet.set_state("Echo", "inactive")
    fleet.set_state("Flaky", "failed", Result="exit-code")
    fleet.start("Registry", "builtin:service_registry")
    return fleet


def get(fleet, path, agent="Registry"):
    return fleet.procs[agent].request("GET", path)


def test_get_agents_lists_every_catalog_agent_with_ports_state_and_health(registry):
    status, body, _ = get(registry, "/agents")
    assert status == 200 and body["count"] == 7 and body["profile"] == "core"
    rows = {a["name"]: a for a in body["agents"]}
    reg = rows["Registry"]
    assert reg["port"] == registry.ports["Registry"] and reg["health"] == "healthy"
    assert reg["url"] == f"http://127.0.0.1:{registry.ports['Registry']}"
    assert reg["host"] == "testhost" and reg["group"] == "infra" and reg["required"] is True
    assert (rows["Echo"]["state"], rows["Echo"]["health"]) == ("dormant", None)
    assert rows["Flaky"]["state"] == "failed" and rows["Flaky"]["result"] == "exit-code"
    assert rows["Faraway"]["state"] == "stopped" and rows["Faraway"]["in_profile"] is False
    assert rows["Faraway"]["profiles"] == ["extra", "full"]


def test_filters_and_their_errors(registry):
    names = lambda q: [a["name"] for a in get(registry, "/agents?" + q)[1]["agents"]]
    assert names("state=dormant") == ["Echo"]
    assert names("task_type=vision") == ["Echo"]
    assert names("group=far") == ["Faraway"]
    assert names("in_profile=false") == ["Faraway"]
    assert names("required=true&health=false") == ["Registry", "Coordinator", "Loader"]
    status, body, _ = get(registry, "/agents?state=sleeping")
    assert status == 400 and "allowed: active, starting, dormant" in body["error"]
    status, body, _ = get(registry, "/agents?colour=red")
    assert status == 400 and "unknown filter ?colour=" in body["error"]


def test_unknown_name_is_a_404_naming_close_ones(registry):
    status, body, _ = get(registry, "/agents/echo")
    assert status == 404 and body["did_you_mean"] == ["Echo"]
    assert "unknown agent 'echo'" in body["error"]


def test_a_burst_of_get_agents_runs_systemctl_about_once(registry):
    before = len(registry.systemctl_calls())
    for _ in range(30):
        assert get(registry, "/agents?health=false")[0] == 200
    assert len(registry.systemctl_calls()) - before <= 4  # list-units + show, per second


def test_registry_lookup_task(registry):
    p = registry.procs["Registry"]
    status, body, _ = p.request("POST", "/task", {"type": "registry_lookup", "data": "Echo"})
    assert status == 200 and body["result"]["state"] == "dormant"
    status, body, _ = p.request("POST", "/task", {"type": "registry_lookup",
                                                  "data": {"task_type": "flaky"}})
    assert [a["name"] for a in body["result"]["agents"]] == ["Flaky"]
    status, body, _ = p.request("POST", "/task", {"type": "registry_lookup", "data": 3})
    assert status == 400 and "registry_lookup needs" in body["error"]


def test_registry_health_and_metrics(registry):
    p = registry.procs["Registry"]
    get(registry, "/agents")
    status, body, _ = p.request("GET", "/health", health=True)
    assert status == 200 and body["status"] == "healthy" and body["agents"] == 7
    status, text, _ = p.request("GET", "/metrics", health=True)
    text = text.decode()
    assert 'unified_registry_agents{state="dormant"} 1' in text
    assert "unified_registry_systemd_queries_total" in text


def test_systemd_failure_is_degraded_not_down(registry):
    registry.write_units(fail="Failed to connect to bus")
    time.sleep(1.1)  # the state cache expires
    status, body, _ = get(registry, "/agents/Echo")
    assert status == 200 and body["state"] == "unknown" and "Failed to connect" in body["systemd_error"]
    status, body, _ = registry.procs["Registry"].request("GET", "/health", health=True)
    assert status == 200 and body["status"] == "degraded"


def test_registry_client_finds_agents(registry):
    reg = RegistryClient(f"http://127.0.0.1:{registry.ports['Registry']}",
                         catalog=str(registry.catalog))
    assert reg.url("Echo") == f"http://127.0.0.1:{registry.ports['Echo']}"
    assert reg.url("Echo", health=True) == f"http://127.0.0.1:{registry.ports['Echo_h']}"
    assert reg.agent("Flaky")["state"] == "failed"
    assert [a["name"] for a in reg.for_task("far")] == ["Faraway"]
    with pytest.raises(UnknownAgent) as e:
        reg.agent("Ech")
    assert e.value.did_you_mean == ["Echo"]


def test_registry_client_falls_back_to_the_catalog_when_the_registry_is_down(fleet):
    reg = RegistryClient(f"http://127.0.0.1:{fleet.ports['Registry']}", timeout=0.5,
                         catalog=str(fleet.catalog))
    assert reg.url("Helper") == f"http://127.0.0.1:{fleet.ports['Helper']}"
    with pytest.raises(AgentCallError):
        reg.agent("Helper")  # states need the registry itself
    with pytest.raises(UnknownAgent):
        reg.url("Nobody")
