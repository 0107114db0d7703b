"""Profile switch → every agent ready (essential healthy, optional listening)."""
from __future__ import annotations

import json
import time

ORDER = 10


def _switch(c, name):
    t0 = time.monotonic()
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=300)
    wall = time.monotonic() - t0
    data = json.loads(r.stdout)
    if r.returncode != 0 or not data.get("ok"):
        raise RuntimeError(f"switch {name} failed: {r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, data["seconds"], len(data["agents"])


MEMORY_SCRIPT = r"""
import glob, subprocess
cg = subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", "unified-agents.slice"],
                    capture_output=True, text=True).stdout.strip()
try:
    print("cgroup", int(open(f"/sys/fs/cgroup{cg}/memory.current").read()))
except (OSError, ValueError):
    pids = set()
    for f in glob.glob(f"/sys/fs/cgroup{cg}/*/cgroup.procs") + glob.glob(f"/sys/fs/cgroup/unified{cg}/*/cgroup.procs"):
        pids |= {int(x) for x in open(f).read().split()}
    pss = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    print("pss", pss)
"""


def _memory_mb(c):
    """All processes of the agents' slice: cgroup memory.current where the kernel gives it,
    else PSS summed over the slice's PIDs (hybrid cgroup hosts, see DESIGN.md)."""
    kind, value = c.run(["python3", "-c", MEMORY_SCRIPT]).stdout.split()
    return kind, int(value) / 2**20


def run(c, runs, summary):
    cold_core, cold_core_cmd, to_learning, to_learning_cmd, mem = [], [], [], [], []
    counts = {}
    for i in range(runs):
        c.run(["unified-ctl", "emergency-stop", "--yes"], timeout=120)
        wall, ready, n = _switch(c, "core")
        cold_core.append(ready)
        cold_core_cmd.append(wall)
        counts["core"] = n
        time.sleep(1)
        mem.append(_memory_mb(c))
        wall, ready, n = _switch(c, "learning")
        to_learning.append(ready)
        to_learning_cmd.append(wall)
        counts["learning"] = n
        print(f"  run {i + 1}: core {cold_core[-1]:.2f}s, core->learning {to_learning[-1]:.2f}s", flush=True)
    _switch(c, "core")
    s1, s1c, s2, s2c = (summary(x) for x in (cold_core, cold_core_cmd, to_learning, to_learning_cmd))
    kind = mem[0][0]
    m = summary([x[1] for x in mem])
    return [
        "## Profile switch to ready", "",
        "`unified-ctl profile switch NAME`: from the command to every agent of the profile ready "
        "(essential and autoloaded agents: `/health` healthy on the health port; optional agents: socket "
        "listening). \"ready\" is the switch's own wait; \"command\" is the whole command as the operator sees it.",
        "",
        "| switch | agents | ready median | ready p95 | command median | command p95 | target | the system we replace |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| nothing running → core | {counts['core']} | {s1['median']:.2f} s | {s1['p95']:.2f} s | "
        f"{s1c['median']:.2f} s | {s1c['p95']:.2f} s | ≤ 1.5 s | ~60 s |",
        f"| core → learning | {counts['learning']} | {s2['median']:.2f} s | {s2['p95']:.2f} s | "
        f"{s2c['median']:.2f} s | {s2c['p95']:.2f} s | ≤ 3 s | ~120 s |",
        "",
        f"Core profile memory, all agent processes ({'cgroup memory.current' if kind == 'cgroup' else 'PSS summed over the slice PIDs: this container has no cgroup v2 memory controller'}): "
        f"median {m['median']:.0f} MB (p95 {m['p95']:.0f} MB); target ≤ 500 MB; the system we replace: 2 GB.",
        "",
    ]
