"""The control plane on real systemd: profiles as targets, explicit-diff switches, socket
activation, last-good catalog, restarts and emergency stop (issue: systemd control plane).

All tests share the session container; each leaves the core profile selected and running.
"""
from __future__ import annotations

import json

import pytest

CORE = 16
LEARNING = 34


def ctl_json(c, *args, check=True, timeout=180):
    r = c.run(["unified-ctl", *args, "--json"], check=check, timeout=timeout)
    return json.loads(r.stdout), r


def switch(c, name, timeout=180):
    data, r = ctl_json(c, "profile", "switch", name, check=False, timeout=timeout)
    assert r.returncode == 0 and data["ok"], f"switch {name} failed: {r.stdout}\n{r.stderr}"
    return data


def main_pids(c, agents):
    out = c.run(["systemctl", "show", "-p", "Id,MainPID", *[f"unified-agent@{a}.service" for a in agents]]).stdout
    pids = {}
    for block in out.strip().split("\n\n"):
        d = dict(line.partition("=")[::2] for line in block.splitlines())
        pids[d["Id"][len("unified-agent@"):-len(".service")]] = int(d["MainPID"])
    return pids


def active_agent_units(c):
    out = c.run(["systemctl", "list-units", "--plain", "--no-legend", "--state=active",
                 "unified-agent@*"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture
def core(container):
    switch(container, "core")
    yield container
    switch(container, "core")


def test_switch_core_brings_16_agents_up_healthy(core):
    data = switch(core, "core")
    assert len(data["agents"]) == CORE and all(a["ready"] for a in data["agents"])
    status, _ = ctl_json(core, "status")
    states = {a["agent"]: (a["state"], a["health"]) for a in status["agents"]}
    assert len(states) == CORE
    assert all(s == ("active", "healthy") for s in states.values()), states
    assert core.run(["curl", "-sf", "http://127.0.0.1:8200/health"]).returncode == 0


def test_switch_learning_adds_exactly_the_learning_set_and_restarts_nothing_shared(core, container):
    core_agents = [a["name"] for a in ctl_json(core, "profile", "show", "core")[0]["agents"]]
    before = main_pids(core, core_agents)
    data = switch(core, "learning")
    assert data["stop"] == []
    learning = ctl_json(core, "profile", "show", "learning")[0]
    assert sorted(data["start"]) == sorted(set(a["name"] for a in learning["agents"]) - set(core_agents))
    assert len(data["agents"]) == LEARNING
    assert main_pids(core, core_agents) == before  # shared agents kept their processes
    # optional learning agents listen, dormant; autoloaded ones run
    assert core.is_active("unified-agent@ChainOfThoughtAgent.socket") == "active"
    assert core.is_active("unified-agent@ChainOfThoughtAgent.service") == "inactive"
    assert core.is_active("unified-agent@LearningManager.service") == "active"


def test_switch_back_to_core_stops_service_and_socket_of_agents_that_left(core):
    switch(core, "learning")
    data = switch(core, "core")
    assert len(data["stop"]) == LEARNING - CORE
    active = active_agent_units(core)
    for agent in data["stop"]:
        assert f"unified-agent@{agent}.service" not in active
        assert f"unified-agent@{agent}.socket" not in active
    assert len([u for u in active if u.endswith(".service")]) == CORE
    assert core.read_file("/etc/unified/selected-profile").strip() == "core"


def test_dry_run_prints_the_plan_and_changes_nothing(core):
    before = active_agent_units(core)
    out = core.run(["unified-ctl", "profile", "switch", "learning", "--dry-run"]).stdout
    assert "nothing changed (--dry-run)" in out and "start: 18" in out
    assert active_agent_units(core) == before
    assert core.read_file("/etc/unified/selected-profile").strip() == "core"


def test_operator_views_show_the_fleet(core):
    st = core.systemctl("status", "unified-agent@*", check=False).stdout
    assert "unified-agent@ServiceRegistry.service" in st and "active (running)" in st
    deps = core.systemctl("list-dependencies", "unified-profile-learning.target").stdout
    assert "unified-agent@ServiceRegistry.service" in deps and "unified-agent@TutorAgent" not in deps
    assert "unified-agent@ChainOfThoughtAgent.socket" in deps
    journal = core.run(["journalctl", "--no-pager", "-u", "unified-agent@ServiceRegistry"]).stdout
    assert "Started unified-agent@ServiceRegistry.service" in journal or "unified-system agent ServiceRegistry" in journal
    text = core.run(["unified-ctl", "status"]).stdout
    assert "ServiceRegistry" in text and "active" in text


def test_dormant_agent_starts_on_first_connection_and_answers(core):
    switch(core, "tutoring")
    try:
        assert core.is_active("unified-agent@TutorAgent.service") == "inactive"
        assert core.is_active("unified-agent@TutorAgent.socket") == "active"
        r = core.run(["curl", "-sS", "-m", "30", "http://127.0.0.1:7108/health"])
        assert json.loads(r.stdout)["agent"] == "TutorAgent"
        assert core.is_active("unified-agent@TutorAgent.service") == "active"
    finally:
        switch(core, "core")


def test_fifty_activate_idle_exit_cycles_leave_the_socket_listening(core):
    dropin = "/etc/unified/conf.d/90-systest-idle.yaml"
    core.write_file(dropin, "agents:\n  TutorAgent:\n    idle_timeout: 300ms\n")
    try:
        core.run(["unified-ctl", "apply"])
        switch(core, "tutoring")
        for i in range(50):
            r = core.run(["curl", "-sS", "-m", "30", "http://127.0.0.1:7108/health"], check=False)
            assert r.returncode == 0, f"cycle {i}: {r.stderr}\n{core.journal('unified-agent@TutorAgent.socket', 20)}"
            core.wait_until(["systemctl", "is-active", "unified-agent@TutorAgent.service"],
                            expect_rc=3, timeout=20, interval=0.05)
        assert core.is_active("unified-agent@TutorAgent.socket") == "active"
        starts = core.run(["journalctl", "-b", "--no-pager", "-o", "cat", "-u", "unified-agent@TutorAgent.service"]).stdout
        assert starts.count("Started unified-agent@TutorAgent.service") >= 50 or \
            starts.count("Started unified-system agent TutorAgent") >= 50
    finally:
        core.run(["rm", "-f", dropin])
        core.run(["unified-ctl", "apply"])
        switch(core, "core")


def test_broken_catalog_is_refused_by_apply_and_running_profile_is_untouched(core):
    core.run(["cp", "/etc/unified/unified.yaml", "/root/unified.yaml.bak"])
    before = main_pids(core, ["ServiceRegistry", "LazyLoader"])
    try:
        core.run(["sh", "-c", "printf 'agents: [oops\\n' >> /etc/unified/unified.yaml"])
        r = core.run(["unified-ctl", "apply"], check=False)
        assert r.returncode == 1
        assert "/etc/unified/unified.yaml:" in r.stderr and "YAML syntax error" in r.stderr
        assert "Traceback" not in r.stderr
        assert main_pids(core, ["ServiceRegistry", "LazyLoader"]) == before
    finally:
        core.run(["cp", "/root/unified.yaml.bak", "/etc/unified/unified.yaml"])


def test_broken_catalog_with_daemon_reload_keeps_the_last_good_units(core):
    core.run(["cp", "/etc/unified/unified.yaml", "/root/unified.yaml.bak"])
    try:
        core.run(["sh", "-c", "echo 'version: [' > /etc/unified/unified.yaml"])
        core.systemctl("daemon-reload")
        listen = core.unit_property("unified-agent@ServiceRegistry.socket", "Listen")
        assert "127.0.0.1:7200" in listen
        status = json.loads(core.read_file("/run/unified/generator.json"))
        assert status["last_good"] is True and status["rendered"] is True
        assert "YAML syntax error" in status["problems"]
        assert core.is_active("unified-agent@ServiceRegistry.service") == "active"
    finally:
        core.run(["cp", "/root/unified.yaml.bak", "/etc/unified/unified.yaml"])
        core.systemctl("daemon-reload")


RELOAD_DROPIN = "/etc/unified/conf.d/90-systest-reload.yaml"
RELOAD_AGENT = """\
agents:
  ReloadProbeAgent:
    group: infrastructure_registry
    port: 7397
    health_port: 8397
    required: true
    run: {reference: true}
"""


def generators_ran(c) -> int:
    """How many daemon-reloads systemd did since boot: PID 1 logs "Reloading." for each (and
    reruns the generators then). (systemd 252 does not update GeneratorsStartTimestamp on a
    reload, so its journal is the record.)"""
    out = c.run(["journalctl", "-b", "-q", "--no-pager", "-o", "cat", "_PID=1"]).stdout
    return sum(1 for line in out.splitlines() if line.startswith("Reloading"))


def test_a_switch_reloads_systemd_only_when_the_rendered_units_change(core):
    before = generators_ran(core)
    again = switch(core, "core")
    assert again["reloaded"] is False and generators_ran(core) == before
    core.run(["unified-ctl", "emergency-stop", "--yes"])
    back = switch(core, "core")   # the runbook's restart after an emergency: nothing to render
    assert back["reloaded"] is False and generators_ran(core) == before and len(back["agents"]) == CORE
    core.write_file(RELOAD_DROPIN, RELOAD_AGENT)   # the catalog gains an agent of core
    try:
        grown = switch(core, "core")
        assert grown["reloaded"] is True and generators_ran(core) > before
        assert grown["start"] == ["ReloadProbeAgent"] and len(grown["agents"]) == CORE + 1
        assert core.is_active("unified-agent@ReloadProbeAgent.service") == "active"
        now = generators_ran(core)
        assert switch(core, "core")["reloaded"] is False and generators_ran(core) == now
    finally:
        core.run(["rm", "-f", RELOAD_DROPIN])
        core.run(["systemctl", "stop", "unified-agent@ReloadProbeAgent.service",
                  "unified-agent@ReloadProbeAgent.socket"], check=False)
        assert switch(core, "core")["reloaded"] is True


def test_kill9_of_an_essential_agent_is_restarted_by_systemd(core):
    pid = main_pids(core, ["ServiceRegistry"])["ServiceRegistry"]
    assert pid > 0
    core.run(["kill", "-9", str(pid)])
    core.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8200/health"], timeout=30)
    new = main_pids(core, ["ServiceRegistry"])["ServiceRegistry"]
    assert new not in (0, pid)
    assert int(core.unit_property("unified-agent@ServiceRegistry.service", "NRestarts")) >= 1


def test_emergency_stop_leaves_no_unified_process_and_no_listening_socket(core):
    r = core.run(["/usr/share/unified-system/scripts/emergency_stop.sh"])
    assert "stopped" in r.stdout
    assert active_agent_units(core) == set()
    assert core.run(["pgrep", "-u", "unified"], check=False).stdout.strip() == ""
    listening = core.run(["ss", "-Hltn"]).stdout
    for port in (7200, 9000, 7201, 7202, 5800):
        assert f":{port} " not in listening


LEGACY_DROPIN = """\
agents:
  LegacyWeb:
    description: A server that binds its own port (python3 -m http.server).
    group: legacy_test
    port: 7390
    health_port: 8390
    required: false
    idle_timeout: 2s
    run: {command: [/usr/bin/python3, -m, http.server, '{backend_port}', --bind, 127.0.0.1], backend_port: 17390}
profiles:
  legacytest:
    extends: core
    agents: [LegacyWeb]
"""


def test_command_binding_its_own_port_is_lazy_behind_socket_proxyd(core):
    dropin = "/etc/unified/conf.d/90-systest-legacy.yaml"
    core.write_file(dropin, LEGACY_DROPIN)
    try:
        core.run(["unified-ctl", "apply"])
        switch(core, "legacytest")
        assert core.is_active("unified-agent@LegacyWeb.socket") == "active"
        assert core.is_active("unified-backend@LegacyWeb.service") == "inactive"
        r = core.run(["curl", "-sS", "-m", "30", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:7390/"])
        assert r.stdout == "200"
        assert core.is_active("unified-backend@LegacyWeb.service") == "active"
        # idle: the proxy exits, the backend is no longer needed and stops; the socket stays
        core.wait_until(["systemctl", "is-active", "unified-backend@LegacyWeb.service"], expect_rc=3, timeout=30)
        assert core.is_active("unified-agent@LegacyWeb.socket") == "active"
        r = core.run(["curl", "-sS", "-m", "30", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:7390/"])
        assert r.stdout == "200"
    finally:
        switch(core, "core")
        core.run(["rm", "-f", dropin])
        core.run(["unified-ctl", "apply"])


def test_switch_names_the_program_holding_an_agents_port_and_changes_nothing(core):
    # two real listeners run as units: one on 9010, ObservabilityHub_PC2's port (learning's
    # dependency); one where `apt install prometheus` puts node_exporter, 9100, the original
    # catalog's port of that agent, which must no longer be in the way
    for unit, port in (("systest-port-holder", "9010"), ("systest-node-exporter", "9100")):
        core.run(["systemd-run", f"--unit={unit}", "--", "python3", "-m", "http.server",
                  port, "--bind", "0.0.0.0"])
    try:
        for port in ("9010", "9100"):
            core.wait_until(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], timeout=20)
        before = main_pids(core, ["ServiceRegistry"])
        r = core.run(["unified-ctl", "profile", "switch", "learning"], check=False, timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        # only 9010: node_exporter's 9100 is no agent's port
        assert "cannot switch to profile learning: 1 port(s) already in use, nothing was changed" in r.stderr
        assert "ObservabilityHub_PC2: agent port 9010 is in use by python3 (pid " in r.stderr
        assert "systest-port-holder.service) on 0.0.0.0:9010" in r.stderr and "Traceback" not in r.stderr
        assert core.read_file("/etc/unified/selected-profile").strip() == "core"
        assert core.is_active("unified-agent@ObservabilityHub_PC2.socket") == "inactive"
        assert main_pids(core, ["ServiceRegistry"]) == before
        core.systemctl("stop", "systest-port-holder.service")
        switch(core, "learning")   # 9010 free again: the same switch works beside node_exporter
        core.run(["curl", "-sf", "-m", "30", "-o", "/dev/null", "http://127.0.0.1:9011/health"])
    finally:
        for unit in ("systest-port-holder", "systest-node-exporter"):
            core.systemctl("stop", f"{unit}.service", check=False)


def test_apply_restart_moves_a_running_agent_to_its_new_port(core):
    dropin = "/etc/unified/conf.d/90-systest-port.yaml"
    core.write_file(dropin, "agents:\n  TTSService:\n    port: 5891\n")
    try:
        r = core.run(["unified-ctl", "apply"])
        # systemd has the new unit, the listening socket still has the old port
        assert "TTSService: still on the old settings (its ports changed)" in r.stdout, r.stdout
        core.run(["curl", "-sf", "-m", "5", "http://127.0.0.1:5801/health"])
        data = json.loads(core.run(["unified-ctl", "apply", "--restart", "--json"]).stdout)
        # (an earlier test's catalog edit may have left others stale too: they restart as well)
        assert data["stale"]["TTSService"] == "its ports changed", data
        core.wait_until(["curl", "-sf", "-m", "5", "http://127.0.0.1:5891/health"], timeout=30)
        assert core.run(["curl", "-s", "-m", "5", "http://127.0.0.1:5801/health"],
                        check=False).returncode != 0
    finally:
        core.run(["rm", "-f", dropin])
        core.run(["unified-ctl", "apply", "--restart"])
    core.wait_until(["curl", "-sf", "-m", "5", "http://127.0.0.1:5801/health"], timeout=30)


# ------------------------------------------------------------------ one fleet change at a time
LEARNING_ONLY = ("AsyncProcessor", "ContextManager", "ResourceManager", "LearningManager",
                 "LearningOrchestrationService")


def running_agents(c):
    """Agents with a service or socket active, activating or failed (anything but stopped)."""
    out = c.run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "unified-agent@*"]).stdout
    names = set()
    for line in out.splitlines():
        unit, _, active, sub = (line.split() + ["", "", "", ""])[:4]
        if unit and not (active == "inactive" and sub == "dead"):
            names.add(unit[len("unified-agent@"):].rsplit(".", 1)[0])
    return names


def profile_agents(c, name):
    return {a["name"] for a in ctl_json(c, "profile", "show", name)[0]["agents"]}


HOLDS_LOCK = ('until grep -q "\\"pid\\": $p," /run/unified/fleet.lock 2>/dev/null; do '
              'kill -0 $p || break; sleep 0.02; done')


@pytest.mark.parametrize("first,second", [("learning", "vision"), ("vision", "learning")])
def test_two_switches_a_moment_apart_end_with_exactly_the_later_profile(core, first, second):
    # the case: two operators, two shells, 0.2 s apart
    r = core.run(["sh", "-c", f"unified-ctl profile switch {first} >/root/sw1.out 2>&1 & p=$!; sleep 0.2; "
                              f"unified-ctl profile switch {second} >/root/sw2.out 2>&1; r2=$?; "
                              "wait $p; echo $? $r2"], timeout=300)
    outs = {first: core.read_file("/root/sw1.out"), second: core.read_file("/root/sw2.out")}
    assert r.stdout.split() == ["0", "0"], outs
    # one ran after the other: the one that waited (normally the second) is what runs now
    waited = [name for name, text in outs.items() if "waiting for pid " in text]
    assert len(waited) == 1, outs
    other = first if waited == [second] else second
    assert f"(unified-ctl profile switch {other}, since" in outs[waited[0]]
    assert core.read_file("/etc/unified/selected-profile").strip() == waited[0]
    assert running_agents(core) == profile_agents(core, waited[0])
    if waited[0] == "vision":
        assert not set(LEARNING_ONLY) & running_agents(core)
    core.run(["rm", "-f", "/root/sw1.out", "/root/sw2.out"])


def test_a_switch_refuses_at_once_with_lock_timeout_0_naming_the_holder(core):
    r = core.run(["sh", "-c", "unified-ctl profile switch learning >/dev/null 2>&1 & p=$!; " + HOLDS_LOCK + "; "
                              "unified-ctl --lock-timeout 0 profile switch vision; r=$?; wait $p; echo rc=$r pid=$p"],
                 check=False, timeout=300)
    pid = r.stdout.split("pid=")[1].strip()
    assert "rc=75" in r.stdout, r.stdout + r.stderr
    assert f"another fleet operation is running: pid {pid} (unified-ctl profile switch learning" in r.stderr
    assert core.read_file("/etc/unified/selected-profile").strip() == "learning"
    assert running_agents(core) == profile_agents(core, "learning")


def test_a_switch_killed_with_sigkill_halfway_is_repaired_by_the_next_switch(core):
    # kill -9 as soon as systemd has begun starting learning's agents: its jobs stay queued,
    # its lock file still names it
    script = """
unified-ctl profile switch learning >/dev/null 2>&1 & p=$!
for i in $(seq 1 600); do
  case "$(systemctl is-active unified-agent@LearningManager.service)" in active|activating) break;; esac
  sleep 0.02
done
kill -9 $p; wait $p; echo killed=$?
cat /run/unified/fleet.lock
"""
    r = core.run(["sh", "-c", script], timeout=120)
    assert "killed=137" in r.stdout and '"command": "unified-ctl profile switch learning"' in r.stdout, r.stdout
    r = core.run(["unified-ctl", "profile", "switch", "vision"], timeout=180)
    assert "waiting for" not in r.stderr  # a dead holder's lock blocks nobody
    assert running_agents(core) == profile_agents(core, "vision")
    assert not set(LEARNING_ONLY) & running_agents(core)
    assert core.run(["systemctl", "list-jobs", "--no-legend", "unified-*"]).stdout.strip() == ""


def test_emergency_stop_during_a_switch_ends_the_switch_and_stops_everything(core):
    r = core.run(["sh", "-c", "unified-ctl profile switch full >/root/sw.out 2>&1 & p=$!; " + HOLDS_LOCK + "; "
                              "unified-ctl --lock-timeout 0 emergency-stop --yes; echo rc=$?; wait $p; echo switch=$?"],
                 timeout=300)
    assert "rc=0" in r.stdout and "switch=143" in r.stdout, r.stdout + r.stderr + core.read_file("/root/sw.out")
    assert "ended pid " in r.stdout and "(unified-ctl profile switch full" in r.stdout
    assert running_agents(core) == set()
    core.run(["rm", "-f", "/root/sw.out"])


# ------------------------------------------------------------------ overrides
def agent_env(c, agent):
    pid = c.unit_property(f"unified-agent@{agent}.service", "MainPID")
    return dict(e.partition("=")[::2] for e in c.read_file(f"/proc/{pid}/environ").split("\0") if e)


def test_runbook_variables_are_overrides_a_switch_prints_status_shows_and_clear_removes(core):
    shell = {"LOG_LEVEL": "verbose", "MAX_THREADS": "lots"}  # another tool's, in the operator's shell
    for cmd in (["profile", "list"], ["profile", "show", "core"], ["status", "--no-health"], ["validate"]):
        r = core.run(["unified-ctl", *cmd], env=shell, check=False)
        assert r.returncode == 0 and "verbose" not in r.stdout + r.stderr, (cmd, r.stderr)
    try:
        r = core.run(["unified-ctl", "profile", "switch", "core"], env={"LOG_LEVEL": "DEBUG"}, timeout=180)
        where = "/run/systemd/system/unified-agent@.service.d/60-launch-environment.conf"
        assert (f"note: override LOG_LEVEL=DEBUG (from the environment) -> every agent, stored in {where} "
                "until reboot; clear with `unified-ctl overrides clear`") in r.stdout
        assert agent_env(core, "ServiceRegistry")["LOG_LEVEL"] == "DEBUG"
        status, _ = ctl_json(core, "status", "--no-health")
        assert status["overrides"] == {"LOG_LEVEL": "DEBUG"}
        assert "overrides in force until reboot" in core.run(["unified-ctl", "status", "--no-health"]).stdout
        r = core.run(["unified-ctl", "profile", "switch", "core"], timeout=180)  # someone else, no variables
        assert "override LOG_LEVEL=DEBUG still in force" in r.stdout
        assert agent_env(core, "ServiceRegistry")["LOG_LEVEL"] == "DEBUG"
        r = core.run(["unified-ctl", "overrides", "clear"], timeout=180)
        assert "cleared LOG_LEVEL=DEBUG; restarted the 16 running agents" in r.stdout
        core.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8200/health"], timeout=30)
        assert agent_env(core, "ServiceRegistry")["LOG_LEVEL"] == "INFO"  # the catalog's
        assert ctl_json(core, "status", "--no-health")[0]["overrides"] == {}
    finally:
        core.run(["unified-ctl", "overrides", "clear"], check=False, timeout=180)


def test_the_config_option_never_starts_a_trial(core):
    core.run(["cp", "/etc/unified/unified.yaml", "/root/other.yaml"])
    try:
        r = core.run(["unified-ctl", "-c", "/root/other.yaml", "profile", "switch", "core"], check=False)
        assert r.returncode == 1 and "CONFIG=/root/other.yaml unified-ctl profile switch core" in r.stderr
        assert core.run(["test", "-e", "/run/unified/trial"], check=False).returncode == 1
        assert "OK /root/other.yaml" in core.run(["unified-ctl", "-c", "/root/other.yaml", "validate"]).stdout
    finally:
        core.run(["rm", "-f", "/root/other.yaml"])
