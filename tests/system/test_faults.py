"""Faults on real systemd: kill -9 under load, hung agents, crash loops, upgrade under load,
a full state disk, journald restarted under the hub.

Load runs inside the container on loopback (tests/system/loadgen.py), bounded in rate and
time. Counts of lost requests are the result; timings go to benchmarks, not assertions.
"""
from __future__ import annotations

import json
import pathlib
import time

import pytest

LOADGEN = pathlib.Path(__file__).with_name("loadgen.py")
CORE_PORTS = {  # essential agents of the core profile: agent port (held by the socket)
    "ServiceRegistry": 7200, "ObservabilityHub": 9000, "SystemDigitalTwin": 7220, "ModelManagerSuite": 7211,
    "VRAMOptimizerAgent": 5572, "RequestCoordinator": 7201, "LazyLoader": 7202, "MemoryClient": 5713,
    "KnowledgeBase": 5715, "SessionMemoryAgent": 5574, "AudioCapture": 6550, "FusedAudioPreprocessor": 6551,
    "STTService": 5800, "StreamingSpeechRecognition": 6553, "TTSService": 5801, "StreamingTTSAgent": 5562,
}


def switch(c, name, *extra):
    r = c.run(["unified-ctl", "profile", "switch", name, *extra], check=False, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def main_pid(c, agent):
    return int(c.unit_property(f"unified-agent@{agent}.service", "MainPID"))


def start_load(c, urls, rate, duration, body=None, retries=0):
    c.copy_in(LOADGEN, "/root/loadgen.py")
    args = ["python3", "/root/loadgen.py", "--rate", str(rate), "--duration", str(duration),
            "--retries", str(retries)]
    if body is not None:
        args += ["--method", "POST", "--body", body]
    for u in urls:
        args += ["--url", u]
    import subprocess

    return c.popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_load(p, timeout=120):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def core(container):
    switch(container, "core")
    yield container
    switch(container, "core")


def test_kill9_of_each_essential_agent_under_steady_load_loses_no_request(core):
    # The socket systemd holds never closes: connections queue while the agent restarts.
    # Only a request already inside the process at the instant of SIGKILL can go unanswered
    # (the client sees a reset); a GET is idempotent, so the client retries it once, as
    # unified_agents.client does. Refused connections and timeouts are never retried.
    urls = [f"http://127.0.0.1:{port}/health" for port in CORE_PORTS.values()]
    load = start_load(core, urls, rate=160, duration=16, retries=1)
    time.sleep(2)
    killed = {}
    for agent in CORE_PORTS:
        pid = main_pid(core, agent)
        core.run(["kill", "-9", str(pid)])
        killed[agent] = pid
        time.sleep(0.5)
    result = finish_load(load)
    print("kill -9 under load:", result)
    assert result["sent"] > 1000
    assert result["failed"] == 0, result
    # resets happen only at the kills: a request or two in flight per kill, not a stream
    assert result["retried"] <= 2 * len(killed), result
    for agent, pid in killed.items():  # every one was really killed and came back
        core.wait_until(["systemctl", "is-active", f"unified-agent@{agent}.service"], timeout=30)
        assert main_pid(core, agent) != pid


def test_hung_agent_is_killed_by_the_watchdog_and_restarted(core):
    dropin = "/etc/unified/conf.d/90-systest-watchdog.yaml"
    core.write_file(dropin, "settings:\n  supervision:\n    watchdog: 3s\n")
    agent = "AudioCapture"
    try:
        core.run(["unified-ctl", "apply"])
        core.run(["unified-ctl", "agent", "restart", agent])
        assert core.unit_property(f"unified-agent@{agent}.service", "WatchdogUSec") == "3s"
        pid = main_pid(core, agent)
        t0 = time.monotonic()
        core.run(["kill", "-STOP", str(pid)])
        core.wait_until(f"test $(systemctl show -p MainPID --value unified-agent@{agent}.service) -ne {pid} "
                        f"&& curl -sf -m 2 http://127.0.0.1:7550/health", timeout=30, interval=0.2)
        print(f"SIGSTOP -> watchdog kill -> healthy again in {time.monotonic() - t0:.1f} s")
        journal = core.journal(f"unified-agent@{agent}.service", 50)
        assert "Watchdog timeout" in journal
    finally:
        core.run(["rm", "-f", dropin])
        core.run(["unified-ctl", "apply"])
        core.run(["unified-ctl", "agent", "restart", agent])


# A test-only agent (installed by the test, removed after): its task "deadlock" takes a lock
# that on_start() already holds, so the worker thread waits forever while the I/O loop lives.
HANG_MODULE = """\
import threading

from unified_agents import Agent


class HangAgent(Agent):
    def on_start(self):
        self.held = threading.Lock()
        self.held.acquire()

    def handle_task(self, task):
        if task.get("data") == "deadlock":
            self.held.acquire()
        return {"ok": True}
"""

HANG_DROPIN = """\
agents:
  HangAgent:
    description: A task deadlocks its worker thread (fault test).
    group: hang_test
    port: 7393
    health_port: 8393
    required: true
    run: {entry_point: "systest_hang:HangAgent"}
    environment: {WORKER_HANG_S: "2"}
    systemd: {WatchdogSec: 3s}
profiles:
  hangtest:
    extends: core
    agents: [HangAgent]
"""


def test_a_hung_worker_thread_makes_the_agent_unhealthy_and_the_watchdog_restarts_it(core):
    dropin = "/etc/unified/conf.d/90-systest-hang.yaml"
    module = "/usr/local/lib/python3.11/dist-packages/systest_hang.py"
    core.write_file(module, HANG_MODULE)
    core.write_file(dropin, HANG_DROPIN)
    unit = "unified-agent@HangAgent.service"
    health = "curl -s -m 2 -o /dev/null -w '%{http_code}' http://127.0.0.1:8393/health"
    try:
        core.run(["unified-ctl", "apply"])
        switch(core, "hangtest")
        assert core.run(health).stdout == "200"
        pid, restarts = main_pid(core, "HangAgent"), int(core.unit_property(unit, "NRestarts"))
        t0 = time.monotonic()
        # the curl gives up after 1 s; the worker thread it started stays stuck
        core.run("curl -s -m 1 -X POST -d '{\"type\": \"x\", \"data\": \"deadlock\"}' "
                 "http://127.0.0.1:7393/task", check=False)
        core.wait_until(f"test $({health}) = 503", timeout=30, interval=0.2)
        body = json.loads(core.run("curl -s -m 2 http://127.0.0.1:8393/health").stdout)
        assert body["status"] == "unhealthy" and body["pid"] == pid
        (hung,) = body["checks"]["workers"]["hung"]
        assert hung["request"] == "POST /task", hung
        unhealthy_after = time.monotonic() - t0
        core.wait_until(f"test $(systemctl show -p NRestarts --value {unit}) -gt {restarts} && "
                        f"test $(systemctl show -p MainPID --value {unit}) -ne {pid} && "
                        f"test $({health}) = 200", timeout=60, interval=0.2)
        print(f"deadlocked worker -> unhealthy in {unhealthy_after:.1f} s -> watchdog restart "
              f"-> healthy again in {time.monotonic() - t0:.1f} s")
        journal = core.journal(unit, 200)
        assert "Watchdog timeout" in journal
        assert "hung: POST /task" in journal and "self.held.acquire()" in journal  # the stack
    finally:
        # leave the profile while the agent is still in the catalog, then remove it: removed
        # first, its socket would stay in systemd's memory as a unit it can no longer load
        switch(core, "core")
        core.systemctl("stop", "unified-agent@HangAgent.socket", unit, check=False)
        core.run(["rm", "-f", dropin, module])
        core.run(["unified-ctl", "apply"])
        core.systemctl("reset-failed", check=False)


CRASH_MODULE = """\
from unified_agents import Agent


class CrashAgent(Agent):
    def on_start(self):
        raise RuntimeError("model file is corrupt (fault test)")
"""

CRASH_DROPIN = """\
agents:
  CrashAgent:
    description: Crashes at every start (fault test).
    group: crash_test
    port: 7391
    health_port: 8391
    required: true
    depends_on: [ServiceRegistry]
    run: {entry_point: "systest_crash:CrashAgent"}
  MisconfiguredAgent:
    description: Names a module that does not exist (fault test).
    group: crash_test
    port: 7392
    health_port: 8392
    required: true
    run: {entry_point: "systest_missing.module:main"}
profiles:
  crashtest:
    extends: core
    agents: [CrashAgent, MisconfiguredAgent]
"""


def test_agent_crashing_at_start_ends_failed_without_a_restart_storm(core):
    dropin = "/etc/unified/conf.d/90-systest-crash.yaml"
    module = "/usr/local/lib/python3.11/dist-packages/systest_crash.py"
    core.write_file(module, CRASH_MODULE)
    core.write_file(dropin, CRASH_DROPIN)
    unit = "unified-agent@CrashAgent.service"
    try:
        core.run(["unified-ctl", "apply"])
        r = core.run(["unified-ctl", "profile", "switch", "crashtest", "--timeout", "40"], check=False, timeout=120)
        assert r.returncode == 1 and "CrashAgent" in r.stderr and "MisconfiguredAgent" in r.stderr
        assert "model file is corrupt" in r.stderr  # the failed agent's journal lines are shown
        # systemd 252: the service stays failed ('exit-code'), its socket records why
        core.wait_until(["systemctl", "show", "-p", "Result", "--value", "unified-agent@CrashAgent.socket"],
                        expect_stdout="service-start-limit-hit", timeout=60, interval=0.5)
        assert core.is_active(unit) == "failed"
        restarts = int(core.unit_property(unit, "NRestarts"))
        time.sleep(5)
        assert int(core.unit_property(unit, "NRestarts")) == restarts <= 10  # no storm: it stays down
        # a configuration error (exit 2) is not retried at all
        assert core.unit_property("unified-agent@MisconfiguredAgent.service", "ExecMainStatus") == "2"
        assert core.unit_property("unified-agent@MisconfiguredAgent.service", "NRestarts") == "0"
        status = json.loads(core.run(["unified-ctl", "status", "--json", "--no-health"]).stdout)
        states = {a["agent"]: a["state"] for a in status["agents"]}
        assert states["CrashAgent"] == "failed" and states["MisconfiguredAgent"] == "failed"
        assert all(states[a] == "active" for a in CORE_PORTS), states  # the others are unaffected
    finally:
        switch(core, "core")
        core.run(["rm", "-f", dropin, module])
        core.run(["unified-ctl", "apply"])
        core.systemctl("reset-failed", check=False)


def test_package_upgrade_under_steady_load_loses_no_request(new_container, upgrade_deb):
    c = new_container()
    switch(c, "core")
    before = main_pid(c, "ServiceRegistry")
    urls = ["http://127.0.0.1:7200/health", "http://127.0.0.1:5801/health", "http://127.0.0.1:7201/health"]
    load = start_load(c, urls, rate=100, duration=25)
    time.sleep(3)
    c.install_deb(upgrade_deb)
    result = finish_load(load)
    print("upgrade under load:", result)
    assert c.dpkg_version().endswith("+systest1")
    assert main_pid(c, "ServiceRegistry") != before  # the services really restarted
    assert result["sent"] >= 2000
    assert result["failed"] == 0, result


def test_reboot_brings_the_selected_profile_back_with_its_state(new_container):
    c = new_container()
    switch(c, "tutoring")
    c.write_file("/var/lib/unified/systest-marker", "still here\n")
    c.reboot()
    # nobody switched: the generator linked the selected profile into unified.target at boot
    c.wait_until(["systemctl", "is-active", "unified-profile-tutoring.target"], timeout=60)
    c.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8200/health"], timeout=60)
    assert c.is_active("unified-agent@TutorAgent.socket") == "active"
    assert c.is_active("unified-profile-core.target") == "inactive"
    assert c.read_file("/var/lib/unified/systest-marker") == "still here\n"
    assert c.read_file("/etc/unified/selected-profile").strip() == "tutoring"


# ------------------------------------------------------------------ full state disk
PUTTER = r"""
import http.client, json, sys
port, ns, n, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = []
for i in range(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("PUT", f"/items/{ns}/k{i}", json.dumps({"value": {"i": i, "pad": "x" * size}}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read().decode()
    out.append([i, r.status, body if r.status >= 300 else ""])
    c.close()
    if r.status == 507:
        break
print(json.dumps(out))
"""
INTEGRITY = ("import sqlite3, sys; print(sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)"
             ".execute('PRAGMA integrity_check').fetchone()[0])")


def move_state_dir_to_small_tmpfs(c, size_mb=48):
    """Stop the fleet, put /var/lib/unified (with its content) on a tmpfs of size_mb, restart."""
    c.systemctl("stop", "unified.target", timeout=120)
    c.sh(f"""set -e
        cp -a /var/lib/unified /root/state-before-tmpfs
        mount -t tmpfs -o size={size_mb}m,mode=0750 unified-state /var/lib/unified
        cp -a /root/state-before-tmpfs/. /var/lib/unified/
        chown unified:unified /var/lib/unified""")
    switch(c, "core")


def fill_state_disk_and_write(c, ns="systest-full"):
    """Fill the state disk, then write to MemoryClient until it answers 507.
    → (acknowledged keys, the 507 message, agents whose process changed meanwhile)."""
    pids = {a: main_pid(c, a) for a in CORE_PORTS}
    c.write_file("/root/putter.py", PUTTER)
    before = json.loads(c.run(["python3", "/root/putter.py", "5713", ns, "20", "30000"]).stdout)
    assert [status for _, status, _ in before] == [201] * 20, before
    # dd ends with ENOSPC by design; what matters is that the file system is full after it
    c.run("dd if=/dev/zero of=/var/lib/unified/filler bs=1M status=none", check=False)
    assert c.run("df --output=avail -B1 /var/lib/unified | tail -1").stdout.strip() == "0"
    res = json.loads(c.run(["python3", "/root/putter.py", "5713", ns, "400", "30000"],
                           timeout=300).stdout)   # replaces k0.., then new keys
    acked = sorted({i for i, _, _ in before} | {i for i, status, _ in res if status in (200, 201)})
    refused = [(status, body) for _, status, body in res if status not in (200, 201)]
    assert refused and refused[-1][0] == 507, res[-3:]
    assert len(refused) == 1, refused      # nothing but the one 507: no 500, no reset
    time.sleep(3)                          # the twin's and hub's periodic writes hit it too
    changed = [a for a in CORE_PORTS if main_pid(c, a) != pids[a]]
    return acked, json.loads(refused[0][1])["error"], changed


def check_acknowledged_and_integrity(c, acked, ns="systest-full"):
    """Every acknowledged write is there, and every state database passes integrity_check."""
    for i in acked:
        got = json.loads(c.run(f"curl -sf http://127.0.0.1:5713/items/{ns}/k{i}").stdout)
        assert got["value"]["i"] == i
    for db in ("memory.db", "knowledge.db", "sessions.db", "twin.db"):
        assert c.run(["python3", "-c", INTEGRITY, f"/var/lib/unified/{db}"]
                     ).stdout.strip() == "ok", db


def test_a_full_state_disk_is_a_clear_507_and_corrupts_nothing(new_container):
    c = new_container()
    switch(c, "core")
    move_state_dir_to_small_tmpfs(c)
    acked, message, changed = fill_state_disk_and_write(c)
    print(f"disk full: {len(acked)} items acknowledged, then {message}")
    assert "the file system holding /var/lib/unified/memory.db is full" in message, message
    assert changed == [], f"processes restarted while the disk was full: {changed}"
    health = json.loads(c.run("curl -s http://127.0.0.1:6713/health").stdout)
    assert health["status"] == "degraded", health
    check_acknowledged_and_integrity(c, acked)
    # space back: writes work again without any restart
    c.run(["rm", "/var/lib/unified/filler"])
    c.run(["curl", "-sf", "-X", "PUT", "-H", "Content-Type: application/json",
           "--data-binary", '{"value": "after"}', "http://127.0.0.1:5713/items/systest-full/after"])
    c.wait_until("curl -s http://127.0.0.1:6713/health | grep -q '\"status\": *\"healthy\"'",
                 timeout=30)


# ------------------------------------------------------------------ journald restarted
def log_count(c, agent):
    """The hub's count of journal lines of agent (all priorities) from /metrics."""
    text = c.run("curl -sf http://127.0.0.1:9000/metrics").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f'unified_agent_log_messages_total{{agent="{agent}",'))


def restart_journald_and_log(c, agent="StreamingTTSAgent", how="restart"):
    """Restart (or kill -9) journald, make agent log, → seconds until the hub counted it."""
    hub = main_pid(c, "ObservabilityHub")
    before = log_count(c, agent)
    if how == "kill":
        # the main process only: a cgroup-wide kill can fail in the container with EIO
        # ("Failed to send signal SIGKILL to auxiliary processes"), and journald is one process
        c.run(["systemctl", "kill", "--kill-who=main", "-s", "KILL", "systemd-journald.service"])
        c.wait_until(["systemctl", "is-active", "systemd-journald.service"], timeout=30)
    else:
        c.systemctl("restart", "systemd-journald.service")
    t0 = time.monotonic()
    c.run(["unified-ctl", "agent", "restart", agent])
    deadline = t0 + 60
    while log_count(c, agent) <= before:
        assert time.monotonic() < deadline, f"the hub stopped counting {agent}'s lines"
        time.sleep(0.5)
    assert main_pid(c, "ObservabilityHub") == hub, "the hub restarted"
    return time.monotonic() - t0


@pytest.mark.parametrize("how", ["restart", "kill"])
def test_the_hub_keeps_following_the_journal_when_journald_restarts(core, how):
    took = restart_journald_and_log(core, how=how)
    print(f"journald {how}: the hub counted new lines after {took:.1f} s")
    state = json.loads(core.run("curl -sf http://127.0.0.1:9000/debug/state").stdout)
    assert state["collectors"]["journal"]["running"] is True, state["collectors"]["journal"]
