"""ServiceRegistry, LazyLoader and RequestCoordinator on real systemd: the runbook's commands
literally, socket activation through the coordinator and the loader, circuit breakers
(issue: infrastructure agents).

Every test leaves the core profile selected and running, and removes what it added.
"""
from __future__ import annotations

import json
import re
import time

import pytest

# LazyLoader serves /load on both ports (route(..., listener="both")): the runbook sends it
# to the health port 8202.

FLAKY_MODULE = "/usr/local/lib/python3.11/dist-packages/coord_systest_agent.py"
FLAKY_SWITCH = "/var/lib/unified/coord-systest-fail"
FLAKY_DROPIN = "/etc/unified/conf.d/90-systest-coord.yaml"

# An agent that fails every task while FLAKY_SWITCH exists (the reference agent has no
# failure switch). Installed where the agents' python3 finds it; entry_point in a drop-in.
FLAKY_CODE = f'''
import os
from unified_agents import Agent


class Flaky(Agent):
    def handle_task(self, task):
        if os.path.exists({FLAKY_SWITCH!r}):
            raise RuntimeError("simulated failure (switch file present)")
        return {{"served_by": self.name, "pid": os.getpid()}}
'''
FLAKY_YAML = """\
agents:
  CoordFlaky:
    description: "system test: fails while a switch file exists"
    group: coordination_resource
    port: 7297
    health_port: 8297
    required: false
    task_types: [coord_systest_flaky]
    run: {entry_point: 'coord_systest_agent:Flaky'}
  RequestCoordinator:
    environment: {COORDINATOR_BREAKER_FAILURES: "5", COORDINATOR_BREAKER_RESET_S: "2"}
"""


def sh_json(c, cmd, timeout=60):
    r = c.run(cmd, timeout=timeout)
    return json.loads(r.stdout)


def curl(c, args, timeout=60):
    """curl -s with the HTTP status appended on its own line → (status, parsed body)."""
    r = c.run(["curl", "-sS", "-m", "45", "-w", "\n%{http_code}", *args], timeout=timeout)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(body) if body.strip().startswith(("{", "[")) else body


def switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=240)
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["ok"], f"switch {name}: {r.stdout[-3000:]}{r.stderr[-2000:]}"


def state(c, agent):
    return c.unit_property(f"unified-agent@{agent}.service", "ActiveState")


@pytest.fixture
def core(container):
    switch(container, "core")
    yield container
    switch(container, "core")


# ---------------------------------------------------------------- runbook commands
def test_lazyloader_health_gives_queue_size_as_the_runbook_reads_it(core):
    r = core.run("curl -s http://localhost:8202/health", timeout=30)
    data = json.loads(r.stdout)               # what `| jq .queue_size` needs: valid JSON
    assert data["queue_size"] == 0 and data["status"] == "healthy"
    assert data["agent"] == "LazyLoader" and data["implementation"] == "builtin"
    core.wait_until(["sh", "-c", "curl -s http://localhost:8202/health | grep -q '\"loaded\": *\\['"],
                    timeout=15)
    # both ports; "loaded" is null while the states systemd gave are older than the view's
    # TTL and a fresh read is under way (states_nowait: /health never waits for systemd)
    core.wait_until(["sh", "-c", "curl -s http://localhost:7202/health | python3 -c 'import json, sys; "
                     "d = json.load(sys.stdin); sys.exit(not (d[\"loaded\"] and "
                     "\"ServiceRegistry\" in d[\"loaded\"]))'"], timeout=15)
    assert json.loads(core.run("curl -s http://localhost:7202/health").stdout)["load_timeout_s"] == 30.0


def test_runbook_task_in_the_vision_profile_activates_the_vision_agent(core):
    switch(core, "vision")
    try:
        # autoloaded in this profile: stop its process; its socket keeps listening (dormant)
        core.systemctl("stop", "unified-agent@VisionProcessingAgent.service")
        assert state(core, "VisionProcessingAgent") == "inactive"
        r = core.run('curl -X POST http://localhost:7201/task -H "Content-Type: application/json" '
                     '-d \'{"type": "vision", "data": "..."}\'', timeout=60)
        answer = json.loads(r.stdout)
        assert answer["ok"] is True and answer["agent"] == "VisionProcessingAgent"
        assert answer["type"] == "vision" and answer["result"]["implementation"] == "reference"
        assert state(core, "VisionProcessingAgent") == "active"
        # a request id given by the caller is the one the vision agent saw
        status, traced = curl(core, ["-X", "POST", "http://localhost:7201/task",
                                     "-H", "X-Request-ID: systest-vision-1",
                                     "-d", '{"type": "vision", "data": "..."}'])
        assert status == 200 and traced["request_id"] == "systest-vision-1"
        status, routes = curl(core, ["http://localhost:7201/routes"])
        assert routes["routes"]["vision"] == {"agent": "VisionProcessingAgent", "in_profile": True,
                                              "port": 7150, "breaker": "closed"}
    finally:
        switch(core, "core")


def test_a_task_type_outside_the_profile_and_an_unknown_one_are_refused_clearly(core):
    status, body = curl(core, ["-X", "POST", "http://localhost:7201/task",
                               "-H", "Content-Type: application/json",
                               "-d", '{"type": "vision", "data": "..."}'])
    assert status == 409 and body["profiles"] == ["vision", "full"]
    status, body = curl(core, ["-X", "POST", "http://localhost:7201/task",
                               "-d", '{"type": "teleport"}'])
    assert status == 400 and "speech_to_text" in body["known_types"]


def test_runbook_load_in_the_tutoring_profile_on_the_health_port(core):
    switch(core, "tutoring")
    try:
        assert state(core, "TutorAgent") == "inactive"              # dormant
        r = core.run("""curl -X POST http://localhost:8202/load -d '{"agent": "TutorAgent"}'""",
                     timeout=60)
        body = json.loads(r.stdout)
        assert body["ok"] is True and body["agent"] == "TutorAgent", body
        assert "TutorAgent" in body["activated"] and body["health"] == "healthy"
        assert state(core, "TutorAgent") == "active"
    finally:
        switch(core, "core")


def test_load_on_the_agent_port_activates_with_dependencies_and_is_recorded(core):
    switch(core, "tutoring")
    try:
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "TutorAgent"}'])
        assert status == 200 and body["ok"], body
        assert body["activated"][-1] == "TutorAgent"            # dependencies come first
        assert body["duration_s"] < 30
        health = json.loads(core.run("curl -s http://localhost:8202/health").stdout)
        assert health["last_loads"]["TutorAgent"]["source"] == "requested"
        metrics = core.run("curl -s http://localhost:8202/metrics").stdout
        assert re.search(r'unified_lazyloader_loads_total\{target="TutorAgent",outcome="ok"\} [1-9]', metrics)
        # again: already up, nothing to activate
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "TutorAgent"}'])
        assert status == 200 and body["already_loaded"] is True
        # not in this profile / not in the catalog
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "VisionProcessingAgent"}'])
        assert status == 409 and body["profiles"] == ["vision", "full"]
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "NoSuchAgent"}'])
        assert status == 404 and "TutorAgent" in body["agents"]
    finally:
        switch(core, "core")


def test_a_crashed_agent_stays_down_while_auto_restart_is_disabled_and_comes_back_after(core):
    switch(core, "tutoring")
    try:
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "TutorAgent"}'])
        assert status == 200, body
        core.run(["unified-ctl", "auto-restart", "disable"])
        # the main process: a cgroup-wide kill can fail with EIO in the container
        # ("auxiliary processes: Input/output error", docs/TESTING.md's known quirks)
        core.systemctl("kill", "--kill-who=main", "--signal=SIGKILL",
                       "unified-agent@TutorAgent.service")
        core.wait_until(["sh", "-c", "test \"$(systemctl is-active "
                         "unified-agent@TutorAgent.service)\" = failed"], timeout=20)
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "TutorAgent"}'])
        assert status == 409 and "auto-restart is disabled" in body["error"], body
        assert state(core, "TutorAgent") == "failed"
        core.run(["unified-ctl", "auto-restart", "enable"])
        status, body = curl(core, ["-X", "POST", "http://localhost:7202/load",
                                   "-d", '{"agent": "TutorAgent"}'])
        assert status == 200 and body["activated"] == ["TutorAgent"], body
        assert state(core, "TutorAgent") == "active"
    finally:
        core.run(["unified-ctl", "auto-restart", "enable"])
        switch(core, "core")


# ---------------------------------------------------------------- the directory
def test_registry_reports_what_systemd_sees(core):
    switch(core, "tutoring")
    try:
        status, body = curl(core, ["http://localhost:7200/agents?profile=tutoring"])
        assert status == 200 and body["profile"] == "tutoring" and body["count"] == 26
        rows = {a["name"]: a for a in body["agents"]}
        reg = rows["ServiceRegistry"]
        assert (reg["state"], reg["health"], reg["port"], reg["health_port"]) == \
            ("active", "healthy", 7200, 8200)
        assert reg["since"] and reg["pid"] > 1
        assert rows["TutorAgent"]["state"] == "dormant" and rows["TutorAgent"]["health"] is None
        # asking about a dormant agent never wakes it
        assert state(core, "TutorAgent") == "inactive"
        status, one = curl(core, ["http://localhost:7200/agents/ServiceRegistry"])
        assert status == 200 and one["state"] == "active"
        status, err = curl(core, ["http://localhost:7200/agents/ServiceRegistri"])
        assert status == 404 and err["did_you_mean"] == ["ServiceRegistry"]
    finally:
        switch(core, "core")


def test_a_killed_agent_shows_failed_or_restarting_then_active_again(core):
    pid = int(core.unit_property("unified-agent@TTSService.service", "MainPID"))
    core.run(["kill", "-9", str(pid)])
    core.wait_until(["sh", "-c", "curl -s 'http://localhost:7200/agents/TTSService?health=false'"
                     " | grep -q '\"state\":\"active\"' && test \"$(systemctl show -p MainPID "
                     f"--value unified-agent@TTSService.service)\" != {pid}"], timeout=30)
    status, one = curl(core, ["http://localhost:7200/agents/TTSService"])
    assert one["restarts"] >= 1 and one["pid"] != pid


# ---------------------------------------------------------------- circuit breakers
@pytest.fixture
def flaky(core):
    core.write_file(FLAKY_MODULE, FLAKY_CODE)
    core.write_file(FLAKY_DROPIN, FLAKY_YAML)
    try:
        core.run(["unified-ctl", "apply"])
        switch(core, "core")                         # starts CoordFlaky's socket
        core.systemctl("restart", "unified-agent@RequestCoordinator.service")
        core.wait_until("curl -sf http://localhost:8201/health", timeout=30)
        core.wait_until("curl -sf http://localhost:7201/routes | grep -q coord_systest_flaky",
                        timeout=30)
        yield core
    finally:
        core.run(["rm", "-f", FLAKY_SWITCH, FLAKY_DROPIN, FLAKY_MODULE])
        core.systemctl("stop", "unified-agent@CoordFlaky.socket",
                       "unified-agent@CoordFlaky.service", check=False)
        core.systemctl("reset-failed", "unified-agent@CoordFlaky.service", check=False)
        core.run(["unified-ctl", "apply"])
        core.systemctl("restart", "unified-agent@RequestCoordinator.service")


def flaky_task(c):
    return curl(c, ["-X", "POST", "http://localhost:7201/task",
                    "-H", "Content-Type: application/json", "-H", "X-Request-ID: systest-flaky",
                    "-d", '{"type": "coord_systest_flaky", "data": 1}'])


def breaker_metric(c):
    text = c.run("curl -s http://localhost:8201/metrics").stdout
    line = [ln for ln in text.splitlines()
            if ln.startswith('unified_circuit_breaker_state{target="CoordFlaky"}')]
    return int(line[0].split()[-1]) if line else None


def test_a_failing_agent_opens_its_breaker_and_recovery_closes_it(flaky):
    c = flaky
    status, body = flaky_task(c)                      # activates the dormant test agent
    assert status == 200 and body["agent"] == "CoordFlaky", body
    assert breaker_metric(c) == 0
    c.write_file(FLAKY_SWITCH, "fail\n")
    for i in range(5):                                # COORDINATOR_BREAKER_FAILURES=5
        status, body = flaky_task(c)
        assert status == 500, (i, body)
    status, body = flaky_task(c)
    assert status == 503 and body["breaker"] == "open", body
    assert breaker_metric(c) == 2
    snap = json.loads(c.run("curl -s http://localhost:7201/circuit_breakers").stdout)
    assert snap["open"] == ["CoordFlaky"] and snap["agents"]["CoordFlaky"]["failures"] == 5
    journal = c.run(["journalctl", "--no-pager", "-u", "unified-agent@RequestCoordinator",
                     "-n", "50"]).stdout
    assert "[systest-flaky]" in journal and "circuit breaker closed -> open" in journal

    c.run(["rm", "-f", FLAKY_SWITCH])                # the agent recovers
    time.sleep(2.2)                                   # COORDINATOR_BREAKER_RESET_S=2
    assert breaker_metric(c) == 1                     # half-open: the next task probes
    status, body = flaky_task(c)
    assert status == 200, body
    assert breaker_metric(c) == 0


# ---------------------------------------------------------------- ENABLE_TRACING
def journal_entries(c, field_match):
    out = c.run(["journalctl", "--no-pager", "-o", "json", field_match]).stdout
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def test_with_tracing_on_one_request_id_finds_every_hop_of_a_task_in_the_journal(core):
    rid = f"systest-trace-{int(time.time() * 1000)}"
    with core.agent_env(["RequestCoordinator", "TTSService"], "90-systest-tracing",
                        ENABLE_TRACING="true"):
        core.wait_until("curl -sf http://localhost:8201/health && "
                        "curl -sf http://localhost:6801/health", timeout=30)
        r = core.run(["curl", "-sS", "-D", "-", "-X", "POST", "http://localhost:7201/task",
                      "-H", "Content-Type: application/json", "-H", f"X-Request-ID: {rid}",
                      "-d", '{"type": "tts", "text": "trace me"}'], timeout=60)
        assert "200" in r.stdout.splitlines()[0] and f"X-Request-ID: {rid}" in r.stdout
        core.wait_until(f"test $(journalctl -o cat REQUEST_ID={rid} | wc -l) -ge 2", timeout=15)
        by_unit = {e["_SYSTEMD_UNIT"]: e for e in journal_entries(core, f"REQUEST_ID={rid}")}
        coord = by_unit["unified-agent@RequestCoordinator.service"]
        agent = by_unit["unified-agent@TTSService.service"]
        assert coord["TRACE_STATUS"] == agent["TRACE_STATUS"] == "200"
        assert coord["TRACE_ROUTE"] == agent["TRACE_ROUTE"] == "/task"
        assert coord["TRACE_HOPS"].split()[0].startswith("queue=")
        for hop in ("ROUTE", "CONNECT", "AGENT", "HANDLE", "RESPOND"):
            assert float(coord[f"TRACE_HOP_{hop}_MS"]) >= 0
        assert float(agent["TRACE_TOTAL_MS"]) <= float(coord["TRACE_TOTAL_MS"])
        assert coord["SYSLOG_IDENTIFIER"] == "RequestCoordinator"
        st = json.loads(core.run(["curl", "-sf", "http://localhost:8201/debug/state"]).stdout)
        assert st["tracing"]["enabled"] is True and st["tracing"]["journal_errors"] == 0
        assert rid in [t["request_id"] for t in st["tracing"]["traces"]]
    st = json.loads(core.run(["curl", "-sf", "http://localhost:8201/debug/state"]).stdout)
    assert st["tracing"] == {"enabled": False}        # the drop-in is gone: off again
