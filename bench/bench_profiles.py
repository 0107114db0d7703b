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


def _restart_core(c):
    """The runbook's restart after an emergency: core was running, emergency-stop, switch core.
    Nothing to render (the selected profile and the catalog are unchanged): no daemon-reload."""
    _switch(c, "core")
    c.run(["unified-ctl", "emergency-stop", "--yes"], timeout=120)
    t0 = time.monotonic()
    r = c.run(["unified-ctl", "profile", "switch", "core", "--json"], check=False, timeout=300)
    wall = time.monotonic() - t0
    data = json.loads(r.stdout)
    if r.returncode != 0 or not data.get("ok"):
        raise RuntimeError(f"switch core failed: {r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall, data["seconds"], data.get("reloaded")


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
    else PSS summed over the slice's PIDs (docs/ARCHITECTURE.md, "Memory and CPU on hybrid cgroup hosts")."""
    kind, value = c.run(["python3", "-c", MEMORY_SCRIPT]).stdout.split()
    return kind, int(value) / 2**20


REPLACED = {"core": ("~60 s", "2 GB"), "vision": ("~90 s", "4 GB"), "learning": ("~120 s", "6 GB"),
            "tutoring": ("—", "—"), "full": ("~180 s", "8 GB")}
TARGETS = {"core": "≤ 1.5 s"}


def run(c, runs, summary):
    cold: dict[str, list] = {p: [] for p in REPLACED}
    cold_cmd: dict[str, list] = {p: [] for p in REPLACED}
    mem: dict[str, list] = {p: [] for p in REPLACED}
    counts: dict[str, int] = {}
    to_learning, to_learning_cmd = [], []
    again, again_cmd, reloads = [], [], set()
    kind = "pss"
    for i in range(runs):
        for prof in REPLACED:
            c.run(["unified-ctl", "emergency-stop", "--yes"], timeout=120)
            wall, ready, n = _switch(c, prof)
            cold[prof].append(ready)
            cold_cmd[prof].append(wall)
            counts[prof] = n
            time.sleep(1)
            kind, mb = _memory_mb(c)
            mem[prof].append(mb)
        c.run(["unified-ctl", "emergency-stop", "--yes"], timeout=120)
        _switch(c, "core")
        wall, ready, n = _switch(c, "learning")
        to_learning.append(ready)
        to_learning_cmd.append(wall)
        wall, ready, reloaded = _restart_core(c)
        again.append(ready)
        again_cmd.append(wall)
        reloads.add(reloaded)
        print(f"  run {i + 1}: " + ", ".join(f"{p} {cold[p][-1]:.2f}s" for p in REPLACED)
              + f", core->learning {to_learning[-1]:.2f}s, core again {again[-1]:.2f}s", flush=True)
    _switch(c, "core")
    out = [
        "## Profile switch to ready, and memory per profile", "",
        "`unified-ctl profile switch NAME`: from the command to every agent of the profile ready "
        "(essential and autoloaded agents: `/health` healthy on the health port; optional agents: socket "
        "listening, process dormant). \"ready\" is the switch's own wait; \"command\" is the whole command as the "
        "operator sees it (catalog load, daemon-reload, systemctl calls, the wait). \"nothing running → P\" "
        "follows a switch to another profile, so it includes a daemon-reload; \"core again\" is the restart "
        "after an emergency (core selected, `emergency-stop`, `profile switch core`), which has nothing to "
        "render and skips it. Memory: all agent processes "
        f"once ready ({'cgroup memory.current' if kind == 'cgroup' else 'PSS summed over the slice PIDs: this container has no cgroup v2 memory controller'}).",
        "",
        "| switch | agents | ready median | ready p95 | command median | command p95 | target | memory median | "
        "the system we replace (time / memory) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for prof, (t_old, m_old) in REPLACED.items():
        r, w, m = summary(cold[prof]), summary(cold_cmd[prof]), summary(mem[prof])
        out.append(f"| nothing running → {prof} | {counts[prof]} | {r['median']:.2f} s | {r['p95']:.2f} s | "
                   f"{w['median']:.2f} s | {w['p95']:.2f} s | {TARGETS.get(prof, '—')} | {m['median']:.0f} MB | "
                   f"{t_old} / {m_old} |")
    r, w = summary(again), summary(again_cmd)
    out.append(f"| core again after emergency-stop (daemon-reload: {'skipped' if reloads == {False} else sorted(map(str, reloads))}) "
               f"| {counts['core']} | {r['median']:.2f} s | {r['p95']:.2f} s | {w['median']:.2f} s | {w['p95']:.2f} s | "
               f"{TARGETS['core']} | — | ~60 s / 2 GB |")
    r, w = summary(to_learning), summary(to_learning_cmd)
    out.append(f"| core → learning | {counts['learning']} | {r['median']:.2f} s | {r['p95']:.2f} s | "
               f"{w['median']:.2f} s | {w['p95']:.2f} s | ≤ 3 s | — | ~120 s / 6 GB |")
    per_agent = summary(mem["core"])["median"] / max(1, counts["core"])
    out += ["", f"Memory per running agent in core: {per_agent:.1f} MB PSS (target for the core profile: ≤ 500 MB "
                "in all; the system we replace: 2 GB). Optional agents use none until their first connection.", ""]
    return out
