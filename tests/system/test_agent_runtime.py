"""The agent SDK under real systemd: graceful stop, idle exit under a trickle, bad input.

(Socket activation and the watchdog are shown in test_control_plane.py / test_faults.py.)
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import time

import pytest

HERE = pathlib.Path(__file__).parent
DROPIN = "/etc/unified/conf.d/90-systest-runtime.yaml"
AGENTS = """\
agents:
  SlowAgent:
    group: runtime_test
    port: 7381
    health_port: 8381
    required: false
    idle_timeout: 0
    task_types: [slow_systest]
    run: {reference: true, simulate: {task_ms: 1500}}
  IdleAgent:
    group: runtime_test
    port: 7382
    health_port: 8382
    required: false
    idle_timeout: 1s
    task_types: [idle_systest]
profiles:
  runtimetest:
    extends: core
    agents: [SlowAgent, IdleAgent]
"""

CONCURRENT = r"""
import http.client, json, sys, threading
n, port = int(sys.argv[1]), int(sys.argv[2])
results = []
def one(i):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/task", body=json.dumps({"type": "slow_systest", "data": i}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse(); r.read(); results.append(r.status)
    except Exception as e:
        results.append(type(e).__name__)
ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(results))
"""

MALFORMED = r"""
import json, random, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(1234)
cases = [
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",                      # a good one now and then
    b"POST /task HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{not json",
    b"POST /task HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 1000,
    b"POST /task HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),   # a TLS hello
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    b"BREW /coffee HTCPCP/1.0\r\n\r\n",
    b"GET /health HTTP/1.1\r\n" + b"X-Big: " + b"b" * 70000 + b"\r\n\r\n",
    b"POST /task HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"GET /nope HTTP/1.1\r\n\r\n",
    b"POST /task HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]",
    b"\r\n\r\n\r\n",
]
sent = 0
for i in range(n):
    kind = i % (len(cases) + 2)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if kind == len(cases):           # garbage bytes
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 4000))))
        elif kind == len(cases) + 1:     # half-open: connect, say nothing, leave
            pass
        else:
            s.sendall(cases[kind])
        s.settimeout(0.2)
        try:
            s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    sent += 1
print(json.dumps({"sent": sent}))
"""


def switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name], check=False, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def runtime(_session_container):
    c = _session_container
    c.write_file(DROPIN, AGENTS)
    c.run(["unified-ctl", "apply"])
    switch(c, "runtimetest")
    yield c
    switch(c, "core")
    c.run(["rm", "-f", DROPIN])
    c.run(["unified-ctl", "apply"])


def test_sigterm_during_20_in_flight_requests_loses_none(runtime):
    c = runtime
    c.write_file("/root/concurrent.py", CONCURRENT)
    p = c.popen(["python3", "/root/concurrent.py", "20", "7381"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c.wait_until("curl -s http://127.0.0.1:8381/health | grep -q '\"in_flight\": *[1-9]'", timeout=20, interval=0.05)
    pid = c.unit_property("unified-agent@SlowAgent.service", "MainPID")
    c.systemctl("restart", "unified-agent@SlowAgent.service")  # SIGTERM while they are in flight
    out, err = p.communicate(timeout=90)
    statuses = json.loads(out)
    assert statuses == [200] * 20, (statuses, err)
    assert c.unit_property("unified-agent@SlowAgent.service", "MainPID") != pid
    journal = c.journal("unified-agent@SlowAgent.service", 40)
    assert "stopping (SIGTERM)" in journal


def test_idle_exit_under_a_steady_trickle_loses_no_request(runtime):
    c = runtime
    c.copy_in(HERE / "loadgen.py", "/root/loadgen.py")
    before = c.run(["journalctl", "-b", "-q", "--no-pager", "-o", "cat", "-u", "unified-agent@IdleAgent.service"],
                   check=False).stdout.count("ready in")
    # one request every 1.1 s against a 1 s idle timeout: each lands as the agent exits or after
    r = c.run(["python3", "/root/loadgen.py", "--rate", "0.9", "--duration", "30", "--method", "POST",
               "--body", '{"type": "idle_systest", "data": 1}', "--url", "http://127.0.0.1:7382/task"], timeout=120)
    result = json.loads(r.stdout)
    starts = c.run(["journalctl", "-b", "-q", "--no-pager", "-o", "cat", "-u", "unified-agent@IdleAgent.service"],
                   check=False).stdout.count("ready in") - before
    print("idle trickle:", result, "starts:", starts)
    assert result["sent"] >= 25 and result["failed"] == 0, result
    assert starts >= 5  # it really went back to zero again and again
    assert c.is_active("unified-agent@IdleAgent.socket") == "active"


@pytest.mark.parametrize("port", [7200, 8200], ids=["agent-port", "health-port"])
def test_a_thousand_malformed_requests_leave_the_agent_healthy(runtime, port):
    c = runtime
    pid = c.unit_property("unified-agent@ServiceRegistry.service", "MainPID")
    restarts = c.unit_property("unified-agent@ServiceRegistry.service", "NRestarts")
    c.write_file("/root/malformed.py", MALFORMED)
    out = c.run(["python3", "/root/malformed.py", str(port), "1000"], timeout=300).stdout
    assert json.loads(out)["sent"] == 1000
    health = json.loads(c.run(["curl", "-sf", "-m", "5", "http://127.0.0.1:8200/health"]).stdout)
    assert health["status"] in ("healthy", "degraded")
    assert c.unit_property("unified-agent@ServiceRegistry.service", "MainPID") == pid  # never died
    assert c.unit_property("unified-agent@ServiceRegistry.service", "NRestarts") == restarts
