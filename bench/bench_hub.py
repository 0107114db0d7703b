"""ObservabilityHub: /metrics latency with all 77 agents defined, hub memory, hub CPU at
rest, and how many journald lines per second the hub's follower keeps up with.

Everything runs inside the container on loopback, bounded in count and time.
"""
from __future__ import annotations

import json
import time

ORDER = 40
HUB = "unified-agent@ObservabilityHub.service"
CG = "/sys/fs/cgroup/unified.slice/unified-agents.slice"
REST_WINDOW_S = 60
LOG_LINES = 20000

LATENCY = r"""
import http.client, json, sys, time
n = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", 9000, timeout=10)
out, size = [], 0
for i in range(n + 5):
    t = time.perf_counter()
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"HTTP {r.status}")
    if i >= 5:                       # the first ones warm the connection and the registry
        out.append((time.perf_counter() - t) * 1000)
    size = len(body)
print(json.dumps({"ms": out, "bytes": size, "series": sum(1 for l in body.split(b"\n") if l and not l.startswith(b"#"))}))
"""

# CPU of the hub's process tree: the main process incl. reaped children (systemctl calls)
# plus its live children (journalctl), from /proc/PID/stat; and its cgroup's cpu.stat.
CPU = r"""
import os, sys, time
cg = sys.argv[1]
def tree(pid):
    def st(p):
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        return [int(x) for x in f[11:15]]
    main = st(pid)
    kids = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                if int(f[1]) == pid:
                    kids += int(f[11]) + int(f[12])
            except OSError:
                pass
    return (sum(main) + kids) / os.sysconf("SC_CLK_TCK")
def cgroup(path):
    for line in open(path + "/cpu.stat"):
        if line.startswith("usage_usec"):
            return int(line.split()[1]) / 1e6
pid = int(sys.argv[2]); ref = sys.argv[3]; window = float(sys.argv[4])
t0 = time.monotonic(); a0, c0, r0 = tree(pid), cgroup(cg), cgroup(ref)
time.sleep(window)
dt = time.monotonic() - t0
a1, c1, r1 = tree(pid), cgroup(cg), cgroup(ref)
print(f"{(a1 - a0) / dt * 100:.3f} {(c1 - c0) / dt * 100:.3f} {(r1 - r0) / dt * 100:.3f}")
"""


def _switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=400)
    if r.returncode != 0 or not json.loads(r.stdout).get("ok"):
        raise RuntimeError(f"switch {name} failed: {r.stdout[-1500:]}\n{r.stderr[-1500:]}")


def _summary(c):
    return json.loads(c.run(["curl", "-sf", "http://127.0.0.1:9000/health/summary"]).stdout)


def _wait_sampled(c, timeout=120):
    """Until the hub has seen every running agent and sampled each one's resources twice."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = _summary(c)
        act = [a for a in d["agents"] if a["state"] == "active"]
        if act and all(a["memory_bytes"] and a["cpu_percent"] is not None for a in act):
            return d
        time.sleep(2)
    raise RuntimeError("the hub did not sample every running agent in time")


def _latency(c, n):
    out = json.loads(c.run(["python3", "-c", LATENCY, str(n)], timeout=300).stdout)
    return out


def _hub_pid(c):
    return int(c.unit_property(HUB, "MainPID"))


def _rss(c):
    pid = _hub_pid(c)
    rss = pss = 0
    for line in c.read_file(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    for line in c.read_file(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def _cpu_at_rest(c, window):
    out = c.run(["python3", "-c", CPU, f"{CG}/unified-agent@ObservabilityHub.service",
                 str(_hub_pid(c)), f"{CG}/unified-agent@TTSService.service", str(window)],
                timeout=window + 60).stdout.split()
    return tuple(float(x) for x in out)


def _journal_lines(c):
    h = json.loads(c.run(["curl", "-sf", "http://127.0.0.1:9001/health"]).stdout)
    return h["checks"]["journal"]["lines"]


def _journal_rate(c, n, tag):
    """Lines/s the follower (journalctl -o json -f | the hub) reads from a backlog: journalctl
    is paused (SIGSTOP), n lines are logged by a unit in the agents' slice, then it is
    resumed and timed until the hub has counted all of them."""
    jpid = c.run(["pgrep", "-u", "unified", "-x", "journalctl"]).stdout.split()[0]
    unit = f"hub-logbench-{tag}"
    before = _journal_lines(c)
    c.run(["kill", "-STOP", jpid])
    try:
        c.run(["systemd-run", "--quiet", "--wait", "--collect", f"--unit={unit}",
               "--slice=unified-agents.slice", "-p", "LogRateLimitIntervalSec=0",
               "python3", "-c",
               f"import sys\nfor i in range({n}): sys.stdout.write(f'bench line {{i}} ' + 'x' * 60 + '\\n')"],
              timeout=120)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # journald has stored them all
            got = int(c.run(["sh", "-c", f"journalctl -q _SYSTEMD_UNIT={unit}.service -o cat | wc -l"]
                            ).stdout)
            if got >= n:
                break
            time.sleep(0.5)
        extra = got - n   # (the unit's own start/stop lines are PID 1's, not in this count)
    finally:
        t0 = time.monotonic()
        c.run(["kill", "-CONT", jpid])
    target = before + n
    while time.monotonic() - t0 < 120:
        lines = _journal_lines(c)
        if lines >= target:
            return n / (time.monotonic() - t0), extra
        time.sleep(0.05)
    raise RuntimeError(f"hub read {lines - before} of {n} lines in 120 s")


def run(c, runs, summary):
    _switch(c, "full")
    d = _wait_sampled(c)
    running_full = sum(1 for a in d["agents"] if a["state"] == "active")
    lat_full = _latency(c, 100 * runs)
    rss_full = _rss(c)

    # Every optional agent started as well: 77 processes to report on.
    dormant = [a["name"] for a in _summary(c)["agents"] if a["state"] == "dormant"]
    c.run(["systemctl", "start", *[f"unified-agent@{n}.service" for n in dormant]], timeout=300)
    d = _wait_sampled(c, 180)
    running_all = sum(1 for a in d["agents"] if a["state"] == "active")
    lat_all = _latency(c, 100 * runs)
    rss_all = _rss(c)
    _switch(c, "full")            # back to the profile: optional agents dormant again
    c.run(["systemctl", "stop", *[f"unified-agent@{n}.service" for n in dormant]],
          check=False, timeout=300)
    _wait_sampled(c)
    time.sleep(15)                # let the switch's burst of journal lines and polls settle

    cpu = [_cpu_at_rest(c, REST_WINDOW_S) for _ in range(max(1, min(runs, 3)))]
    rates = []
    for i in range(max(1, min(runs, 3))):
        rate, _ = _journal_rate(c, LOG_LINES, f"{int(time.time())}-{i}")
        rates.append(rate)
    _switch(c, "core")

    lf, la = summary(lat_full["ms"]), summary(lat_all["ms"])
    tree = summary([x[0] for x in cpu])
    cgroup = summary([x[1] for x in cpu])
    ref = summary([x[2] for x in cpu])
    rt = summary(rates)
    return [
        "## ObservabilityHub", "",
        "`GET /metrics` on the hub (9000) over one keep-alive connection, sequential, after the hub "
        "sampled every running agent; the catalog defines all 77 agents.", "",
        "| fleet | running agents | series | body | p50 | p95 | max | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| full profile (optional agents dormant) | {running_full} | {lat_full['series']} | "
        f"{lat_full['bytes'] / 1024:.0f} KiB | {lf['median']:.2f} ms | {lf['p95']:.2f} ms | "
        f"{lf['max']:.1f} ms | p95 ≤ 50 ms |",
        f"| full profile, every optional agent started too | {running_all} | {lat_all['series']} | "
        f"{lat_all['bytes'] / 1024:.0f} KiB | {la['median']:.2f} ms | {la['p95']:.2f} ms | "
        f"{la['max']:.1f} ms | p95 ≤ 50 ms |",
        "",
        f"({lf['n']} and {la['n']} requests.) Hub memory: RSS {rss_full[0]:.0f} MiB (PSS "
        f"{rss_full[1]:.0f} MiB) with the full profile, {rss_all[0]:.0f} MiB (PSS {rss_all[1]:.0f} MiB) "
        "with all 77 agents running.", "",
        f"Hub CPU at rest (full profile, {len(cpu)} windows of {REST_WINDOW_S} s, % of one core; "
        "target ≤ 1 %): process tree (the hub + its systemctl/journalctl children, "
        f"/proc/PID/stat) median {tree['median']:.2f} % (max {tree['max']:.2f} %); its cgroup "
        f"(cpu.stat usage_usec) median {cgroup['median']:.2f} % (max {cgroup['max']:.2f} %); an "
        f"idle reference agent's cgroup (TTSService) over the same windows, the machine's noise "
        f"floor: {ref['median']:.2f} %.", "",
        f"journald: the follower (`journalctl -o json -f` → the hub) reads a backlog of "
        f"{LOG_LINES} lines (80 bytes each, one unit in the agents' slice) at median "
        f"{rt['median']:,.0f} lines/s (min {rt['min']:,.0f}, {rt['n']} runs): the rate it keeps "
        "up with.", "",
    ]
