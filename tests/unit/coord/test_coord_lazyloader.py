"""LazyLoader (agents/builtin/lazy_loader.py): POST /load activates an agent and its
dependencies by connecting to their agent ports, answers when healthy or why not; /health
shows the queue, what is loaded and dormant, and slow loads."""
import threading
import time

import pytest

from tests.promlint import promtool_findings

LOADER = "builtin:lazy_loader"


@pytest.fixture
def loader(fleet):
    fleet.set_state("Loader", "active", MainPID=1)
    fleet.start("Loader", LOADER, LAZYLOADER_VIEW_TTL_S=0.5)
    return fleet


def load(fleet, body, headers=None):
    return fleet.procs["Loader"].request("POST", "/load", body, headers=headers or {})


def health(fleet):
    return fleet.procs["Loader"].request("GET", "/health", health=True)[1]


def test_loading_a_dormant_agent_activates_its_dependency_chain_and_waits_until_healthy(loader):
    helper = loader.socket_activated("Helper")
    echo = loader.socket_activated("Echo")
    status, body, _ = load(loader, {"agent": "Echo"})
    assert status == 200, body
    assert body["ok"] and body["health"] == "healthy" and body["already_loaded"] is False
    assert body["activated"] == ["Helper", "Echo"]            # dependencies first
    assert helper.started and echo.started
    # slow means over the catalog's slow_load_threshold (1 s here), however loaded the host is
    assert body["duration_s"] > 0 and body["slow"] is (body["duration_s"] > 1.0)
    info = health(loader)
    assert info["last_loads"]["Echo"]["source"] == "requested"
    assert info["queue_size"] == 0


def test_an_agent_already_up_answers_at_once(loader):
    loader.set_state("Helper", "active")
    loader.start("Echo")
    loader.set_state("Echo", "active", MainPID=loader.procs["Echo"].proc.pid)
    status, body, _ = load(loader, {"agent": "Echo"})
    assert status == 200 and body["already_loaded"] is True and body["activated"] == []


def test_the_runbook_command_without_content_type_works(loader):
    loader.set_state("Helper", "active")
    loader.socket_activated("Echo")
    status, body, _ = load(loader, b'{"agent": "Echo"}',
                           {"Content-Type": "application/x-www-form-urlencoded"})  # curl -d
    assert status == 200 and body["agent"] == "Echo"


def test_unknown_agent_is_404_with_the_names(loader):
    status, body, _ = load(loader, {"agent": "Ecko"})
    assert status == 404 and body["did_you_mean"] == ["Echo"]
    assert "Faraway" in body["agents"] and len(body["agents"]) == 7


def test_an_agent_outside_the_current_profile_is_409_naming_the_profiles_with_it(loader):
    status, body, _ = load(loader, {"agent": "Faraway"})
    assert status == 409 and body["profiles"] == ["extra", "full"]
    assert "not in the current profile core; profiles with it: extra, full" in body["error"]


def test_bad_bodies_are_400(loader):
    for bad in (b"", b"{", b'"Echo"', b'{"agent": 3}', b'{"agent": "Echo", "timeout": -1}'):
        status, body, _ = load(loader, bad)
        assert status == 400, bad


def test_a_slow_start_is_recorded_as_a_slow_load(loader):
    loader.set_state("Helper", "active")
    loader.socket_activated("Echo", delay=1.2)               # threshold in the catalog: 1s
    status, body, _ = load(loader, {"agent": "Echo"})
    assert status == 200 and body["slow"] is True and body["duration_s"] >= 1.2
    text = loader.procs["Loader"].request("GET", "/metrics", health=True)[1].decode()
    assert 'unified_lazyloader_slow_loads_total{target="Echo"} 1' in text
    assert 'unified_lazyloader_load_seconds_count{source="requested"} 1' in text
    assert promtool_findings(text) == "", text
    assert "slow load: Echo took" in loader.procs["Loader"].stderr()


def test_an_agent_that_does_not_start_in_time_is_504(loader):
    loader.set_state("Helper", "active")
    loader.listen("Echo")
    loader.set_state("Echo", "inactive")                       # dormant, but never starts
    status, body, _ = load(loader, {"agent": "Echo", "timeout": 0.5})
    # the request's own timeout, not the catalog's 5 s load_timeout
    assert status == 504 and "Echo did not start within 0.5 s" in body["error"]


def test_concurrent_loads_of_one_agent_share_one_activation_and_show_in_the_queue(loader):
    loader.set_state("Helper", "active")
    # a slow start, so that a loaded machine still sees the three loads queued on it
    loader.socket_activated("Echo", delay=1.5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(load(loader, {"agent": "Echo"})))
               for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 1.2
    info = health(loader)
    while (info["queue_size"], info["loading"]) != (1, ["Echo"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        info = health(loader)
    assert info["queue_size"] == 1 and info["loading"] == ["Echo"]
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200, 200, 200]
    assert sum(1 for r in results if r[1].get("joined")) == 2
    assert health(loader)["queue_size"] == 0


def test_a_failed_socket_needs_the_operator(loader):
    loader.set_state("Helper", "active")
    loader.set_state("Echo", "failed", sock="failed", Result="start-limit-hit")
    status, body, _ = load(loader, {"agent": "Echo"})
    assert status == 503 and "unified-ctl agent start Echo" in body["error"]


def test_a_member_whose_socket_was_stopped_is_409(loader):
    status, body, _ = load(loader, {"agent": "Helper"})    # no units loaded at all
    assert status == 409 and "socket is not listening" in body["error"]


def test_a_failed_agent_is_brought_back_unless_auto_restart_is_disabled(fleet):
    fleet.set_state("Helper", "active")
    fleet.start("Loader", LOADER, DISABLE_AUTO_RESTART="true")
    fleet.set_state("Echo", "failed", Result="exit-code")
    status, body, _ = load(fleet, {"agent": "Echo"})
    assert status == 409 and "auto-restart is disabled" in body["error"]
    assert health(fleet)["auto_restart"] is False


def test_a_failed_agent_with_a_listening_socket_is_restarted_by_the_connection(loader):
    loader.set_state("Helper", "active")
    t = loader.socket_activated("Echo")
    loader.set_state("Echo", "failed", Result="exit-code")  # crashed; its socket listens
    status, body, _ = load(loader, {"agent": "Echo"})
    assert status == 200 and body["activated"] == ["Echo"] and t.started


def test_health_lists_loaded_dormant_and_failed_agents_of_the_profile(loader):
    loader.set_state("Helper", "inactive")
    loader.set_state("Flaky", "failed", Result="exit-code")
    health(loader)                  # the first read starts a background systemd refresh
    time.sleep(0.5)
    info = health(loader)
    assert info["loaded"] == ["Loader"]
    assert info["dormant"] == ["Helper"]
    assert info["failed"] == ["Flaky"]
    assert info["queue_size"] == 0 and info["load_timeout_s"] == 5.0


def test_activations_it_did_not_request_are_observed_from_systemd(loader):
    health(loader)
    time.sleep(0.3)
    health(loader)                  # seeds what runs now
    mono = time.clock_gettime(time.CLOCK_MONOTONIC)
    loader.set_state("Echo", "active", MainPID=4242,
                     InactiveExitTimestampMonotonic=int((mono - 3) * 1e6),
                     ActiveEnterTimestampMonotonic=int((mono - 1.5) * 1e6))
    # the /health view may be 0.5 s stale here (default 5 s), and a busy host slower still:
    # ask until the activation shows, within a bound far above either
    deadline = time.monotonic() + 15
    info = health(loader)
    while "Echo" not in info["last_loads"] and time.monotonic() < deadline:
        time.sleep(0.2)
        info = health(loader)
    assert info["last_loads"]["Echo"]["source"] == "observed"
    assert info["last_loads"]["Echo"]["seconds"] == pytest.approx(1.5, abs=0.01)
    assert info["last_loads"]["Echo"]["slow"] is True


def test_a_profile_switch_that_just_finished_is_seen_at_once(loader):
    (loader.tmp / "etc" / "selected-profile").write_text("extra\n")
    loader.socket_activated("Faraway")
    status, body, _ = load(loader, {"agent": "Faraway"})
    assert status == 200 and body["profile"] == "extra"


def test_an_agent_a_switch_just_took_out_of_the_profile_is_not_started(loader):
    (loader.tmp / "etc" / "selected-profile").write_text("extra\n")
    loader.socket_activated("Faraway")
    assert load(loader, {"agent": "Faraway"})[0] == 200
    (loader.tmp / "etc" / "selected-profile").write_text("core\n")      # the switch back
    status, body, _ = load(loader, {"agent": "Faraway"})               # no waiting for a watcher
    assert status == 409 and body["profile"] == "core", body
