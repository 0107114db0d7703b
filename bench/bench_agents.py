"""One agent under systemd: cold socket activation, warm latency, throughput, idle memory."""
from __future__ import annotations

import json

ORDER = 20
AGENT, PORT = "TutorAgent", 7108

COLD = r"""
import json, socket, subprocess, sys, time
unit, port, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(runs):
    subprocess.run(["systemctl", "stop", unit], check=True)
    while subprocess.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0:
        time.sleep(0.01)
    time.sleep(0.2)
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.recv(1)  # first byte of the answer
    out.append(time.perf_counter() - t0)
    while s.recv(65536):
        pass
    s.close()
print(json.dumps(out))
"""

WARM = r"""
import http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
out = []
for _ in range(n):
    t0 = time.perf_counter()
    c.request("GET", "/health"); c.getresponse().read()
    out.append(time.perf_counter() - t0)
print(json.dumps(out))
"""

MEM = r"""
import json, subprocess, sys
pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", sys.argv[1]], capture_output=True,
                     text=True).stdout.strip()
rss = pss = 0
for line in open(f"/proc/{pid}/status"):
    if line.startswith("VmRSS:"):
        rss = int(line.split()[1]) * 1024
for line in open(f"/proc/{pid}/smaps_rollup"):
    if line.startswith("Pss:"):
        pss = int(line.split()[1]) * 1024
print(json.dumps({"rss": rss, "pss": pss}))
"""


def _wrk(c, url, conns, seconds=5):
    r = c.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", url], check=False, timeout=seconds + 30)
    for line in r.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


# What the unit's sandbox costs a cold start, measured by switching it off for one agent (a
# runtime drop-in, removed afterwards): every directive that needs a mount namespace and
# the system-call filter. The credential stays: in systemd 252 an empty LoadCredential= in a
# drop-in does not reset it (bench_sandbox.py deletes lines from the template instead), but
# without a mount namespace it costs no mount work. bench_sandbox.py has each directive.
NO_SANDBOX = """[Service]
ProtectSystem=no
ProtectHome=no
PrivateTmp=no
ProtectKernelTunables=no
ReadOnlyPaths=
ProtectKernelModules=no
ProtectKernelLogs=no
ProtectControlGroups=no
ProtectProc=default
ProtectClock=no
ProtectHostname=no
PrivateUsers=no
SystemCallFilter=
"""


def _cold_without_sandbox(c, unit, n):
    d = f"/run/systemd/system/{unit}.d"
    c.run(["mkdir", "-p", d])
    c.write_file(f"{d}/99-bench-no-sandbox.conf", NO_SANDBOX)
    try:
        c.run(["systemctl", "daemon-reload"])
        return json.loads(c.run(["python3", "/root/cold.py", unit, str(PORT), str(n)], timeout=600).stdout)
    finally:
        c.run(["rm", "-rf", d])
        c.run(["systemctl", "daemon-reload"])


def run(c, runs, summary):
    c.run(["unified-ctl", "profile", "switch", "tutoring"], timeout=240)
    unit = f"unified-agent@{AGENT}.service"
    c.write_file("/root/cold.py", COLD)
    c.write_file("/root/warm.py", WARM)
    c.write_file("/root/mem.py", MEM)
    cold = json.loads(c.run(["python3", "/root/cold.py", unit, str(PORT), str(max(30, runs))], timeout=600).stdout)
    bare = _cold_without_sandbox(c, unit, max(30, runs))
    warm = json.loads(c.run(["python3", "/root/warm.py", str(PORT), "2000"], timeout=120).stdout)
    mem = json.loads(c.run(["python3", "/root/mem.py", unit]).stdout)
    rps1 = _wrk(c, f"http://127.0.0.1:{PORT}/health", 1)
    rps8 = _wrk(c, f"http://127.0.0.1:{PORT}/health", 8)
    c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
    sc, sw = summary([x * 1000 for x in cold]), summary([x * 1000 for x in warm])
    sb = summary([x * 1000 for x in bare])
    fmt = lambda v: f"{v:,.0f}" if v else "n/a (wrk missing)"
    return [
        "## One agent under systemd (SDK)", "",
        f"`{AGENT}` (a reference agent) in the container, started by systemd socket activation.", "",
        "| what | median | p95 | target | the system we replace |",
        "| --- | --- | --- | --- | --- |",
        f"| cold activation: connect → first byte, dormant agent ({sc['n']} runs) | {sc['median']:.1f} ms | "
        f"{sc['p95']:.1f} ms | p50 ≤ 100 ms | lazy-load SLA 30 s |",
        f"| same, sandbox off (mount-namespace directives, syscall filter; "
        f"for comparison only) | {sb['median']:.1f} ms | {sb['p95']:.1f} ms | — | — |",
        f"| warm `GET /health`, keep-alive ({sw['n']} requests) | {sw['median'] * 1000:.0f} µs | "
        f"{sw['p95'] * 1000:.0f} µs | — | — |",
        "",
        f"The sandbox costs {sc['median'] - sb['median']:.0f} ms of the cold start's median here: "
        "nearly all of it is setting up the mount namespace (ProtectSystem=, PrivateTmp=, "
        "ProtectKernelTunables=, ... each add mounts), which nspawn's many /proc and /sys "
        "overmounts make dearer than on a plain host. docs/SECURITY.md says why they stay.",
        "",
        f"Throughput of one agent (`wrk`, 5 s, GET /health): {fmt(rps1)} req/s on 1 connection, "
        f"{fmt(rps8)} req/s on 8.",
        f"Idle agent memory: RSS {mem['rss'] / 2**20:.1f} MiB, PSS {mem['pss'] / 2**20:.1f} MiB (target RSS ≤ 25 MB).",
        "",
    ]
