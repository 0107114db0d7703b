"""The ObservabilityHub as a process (the SDK runtime, its agent socket passed as fd 3),
against stand-in systemctl/journalctl: its endpoints, the file_sd targets, the journal
position in STATE_DIRECTORY, early refresh on systemd's own log lines, never connecting to
a peer that is not running, and degrading (not failing) when systemd cannot be read."""
from __future__ import annotations

import json
import re
import select
import socket

from .conftest import quiet_pid, wait_for


def up(env, *agents, pid=None):
    for a in agents:
        env.set_state(a, "active", MainPID=pid or quiet_pid(),
                      InactiveExitTimestampMonotonic="1000000",
                      ActiveEnterTimestampMonotonic="2500000")


def start(hubenv, **env):
    up(hubenv, "ObservabilityHub", "Worker")
    hubenv.set_state("Sleeper", "inactive")                        # dormant
    return hubenv.spawn(**env)


def get(p, path, health=False):
    status, body, headers = p.request("GET", path, health=health)
    return status, body, headers


def test_summary_lists_the_profile_with_states_alerts_and_score(hubenv):
    hubenv.set_state("RequestCoordinator", "failed", Result="signal")
    hubenv.log("unified-agent@Worker.service", "Worker cannot open its model", priority=3)
    p = start(hubenv)
    s = wait_for(lambda: (lambda b: b if b["agents"][0]["memory_bytes"] else None)(
        get(p, "/health/summary")[1]), what="a summary with resources")
    rows = {r["name"]: r for r in s["agents"]}
    assert set(rows) == {"ObservabilityHub", "RequestCoordinator", "Worker", "Sleeper",
                         "ModelManagerSuite"}                        # Faraway: other profile
    assert (rows["Sleeper"]["state"], rows["RequestCoordinator"]["state"]) == ("dormant",
                                                                             "failed")
    assert rows["Worker"]["startup_s"] == 1.5 and rows["Worker"]["memory_bytes"] > 0
    wait_for(lambda: get(p, "/health/summary")[1]["agents"][2]["last_error"], what="last error")
    s = get(p, "/health/summary")[1]
    worker = [r for r in s["agents"] if r["name"] == "Worker"][0]
    assert worker["last_error"]["message"] == "Worker cannot open its model"
    assert worker["log_errors"] == 1
    assert s["essential"] == {"total": 3, "up": 2, "down": ["RequestCoordinator"]}
    assert [(a["name"], a["state"]) for a in s["alerts"]] == [("EssentialAgentDown", "pending")]
    assert s["health_score"] == 60 * 2 // 3 + 20 + 20 and s["status"] == "degraded"
    every = get(p, "/health/summary?all=1")[1]
    assert len(every["agents"]) == 6


def test_metrics_on_the_agent_port_and_the_sdk_metrics_on_the_health_port(hubenv):
    p = start(hubenv)
    status, body, headers = get(p, "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert re.search(r'^unified_agent_up\{agent="Worker",required="true"\} 1\.0$', text, re.M)
    assert re.search(r"^unified_system_health_score \d+\.0$", text, re.M)
    status, body, _ = get(p, "/metrics", health=True)
    assert status == 200 and b"unified_agent_up{" not in body     # the SDK's own only


def test_metrics_of_both_ports_pass_promtool_check_metrics(hubenv):
    from tests.promlint import promtool_findings

    hubenv.set_state("RequestCoordinator", "failed", Result="signal")   # an alert pending
    hubenv.log("unified-agent@Worker.service", "Worker cannot open its model", priority=3)
    p = start(hubenv)
    wait_for(lambda: b"unified_agent_log_messages_total{" in get(p, "/metrics")[1],
             what="journal counts in the metrics")
    for health in (False, True):
        text = get(p, "/metrics", health=health)[1].decode()
        assert promtool_findings(text) == "", text


def test_file_sd_targets_are_written_for_prometheus(hubenv):
    p = start(hubenv)
    groups = wait_for(lambda: hubenv.targets.exists() and json.loads(hubenv.targets.read_text()),
                      what="targets file")
    agents = {g["labels"]["agent"]: g for g in groups}
    # running + essential of the profile; dormant Sleeper and the other profile's Faraway not
    assert set(agents) == {"ObservabilityHub", "RequestCoordinator", "Worker"}
    assert agents["Worker"]["targets"] == [f"127.0.0.1:{hubenv.ports['Worker_h']}"]
    assert agents["Worker"]["labels"] == {"agent": "Worker", "required": "true",
                                          "group": "work"}     # no profile: it changes
    assert get(p, "/health", health=True)[1]["checks"]["targets"]["status"] == "ok"


def test_journal_position_and_counts_survive_a_restart(hubenv):
    hubenv.log("unified-agent@Worker.service", "one")
    p = start(hubenv)
    state = hubenv.state_dir / "observability_hub.journal.json"
    wait_for(lambda: state.exists() and json.loads(state.read_text())["lines"] == 1,
             what="saved journal state")
    p.stop()                                                     # kill -9
    hubenv.log("unified-agent@Worker.service", "two")
    p = hubenv.spawn(lsock=p.lsock)
    wait_for(lambda: get(p, "/debug/state")[1]["collectors"]["journal"]["lines"] == 2,
             what="the new line counted once")
    assert hubenv.journal_args()[-1][-4] == f"--after-cursor=c1"
    counts = get(p, "/debug/state")[1]["journal"]["counts"]
    assert counts["Worker"]["info"] == 2


def test_systemd_logging_about_a_unit_refreshes_the_view_at_once(hubenv):
    p = start(hubenv, HUB_INTERVAL_S=60)
    wait_for(lambda: get(p, "/health/summary")[1]["essential"]["up"] == 2, what="first view")
    hubenv.set_state("Worker", "failed", Result="exit-code")
    hubenv.log("unified-agent@Worker.service", "unified-agent@Worker.service: Failed with "
               "result 'exit-code'.", priority=4, pid="1")
    wait_for(lambda: "Worker" in get(p, "/health/summary")[1]["essential"]["down"], timeout=5,
             what="the failure seen long before the 60 s poll")


def test_circuit_breakers_of_a_stopped_coordinator_are_not_asked_for(hubenv):
    # The coordinator's agent port is held like systemd's socket: any connection would
    # show up as a pending accept (= a socket activation).
    lsock = socket.create_server(("127.0.0.1", hubenv.ports["RequestCoordinator"]))
    hubenv.spawner.sockets.append(lsock)
    hubenv.set_state("RequestCoordinator", "inactive")          # dormant
    p = start(hubenv)
    status, cb, _ = get(p, "/circuit_breakers")
    assert status == 200 and cb["available"] is None and "never wakes" in cb["reason"]
    assert cb["open"] == []
    assert select.select([lsock], [], [], 0.5)[0] == []           # nobody connected


def test_systemd_failing_degrades_the_hub_but_every_endpoint_answers(hubenv):
    p = start(hubenv)
    wait_for(lambda: get(p, "/health/summary")[1]["essential"]["up"] == 2, what="first view")
    hubenv.write_units(fail="Failed to connect to bus: No such file or directory")
    wait_for(lambda: get(p, "/health", health=True)[1]["checks"]["systemd"]["error"],
             what="the error reported")
    status, h, _ = get(p, "/health", health=True)
    assert status == 200 and h["status"] == "degraded"
    assert "Failed to connect to bus" in h["checks"]["systemd"]["error"]
    for path in ("/metrics", "/health/summary", "/debug/state", "/dashboard/data"):
        assert get(p, path)[0] == 200, path
    assert get(p, "/health/summary")[1]["essential"]["up"] == 2  # the last good view


def test_dashboard_page_and_its_data(hubenv):
    p = start(hubenv)
    status, page, headers = get(p, "/dashboard")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/dashboard/data" in page and b"<script" in page
    assert not re.search(rb"(src|href)=[\"']?https?://", page)     # nothing from elsewhere
    status, data, _ = get(p, "/dashboard/data")
    assert status == 200 and {"circuit_breakers", "routing", "collectors", "agents",
                              "alerts", "health_score", "profile", "gpu"} <= set(data)
    assert data["gpu"]["available"] in (True, False) and data["gpu"]["reason"]
    status, _, headers = get(p, "/")
    assert status == 302 and headers["Location"] == "/dashboard"


def test_debug_state_holds_everything(hubenv):
    p = start(hubenv)
    s = get(p, "/debug/state")[1]
    assert set(s) >= {"hub", "catalog", "summary", "units", "resources", "collectors",
                      "journal", "alerts_pending_since", "gpu", "circuit_breakers", "routing",
                      "targets"}
    assert len(s["units"]) == 6 and s["catalog"]["profile"] == "core"


def test_observability_tasks(hubenv):
    p = start(hubenv)
    status, body, _ = p.request("POST", "/task", {"type": "observability", "data": "alerts"})
    assert status == 200 and "health_score" in body["result"]
    status, body, _ = p.request("POST", "/task", {"type": "observability", "data": "nope"})
    assert status == 400 and "allowed: summary, alerts, state" in body["error"]
