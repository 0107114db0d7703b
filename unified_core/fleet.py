"""The fleet as systemd sees it: one row per agent, from one `systemctl show` call."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from .model import Catalog
from .systemd import Systemd
from .units import classify


@dataclass
class AgentState:
    agent: str
    required: bool
    state: str  # active | starting | dormant | failed | stopping | stopped
    service: str  # ActiveState/SubState of the service
    socket: str  # ActiveState/SubState of the socket
    pid: int | None
    memory_bytes: int | None
    cpu_seconds: float | None
    uptime_s: float | None
    restarts: int
    result: str
    health: str | None = None

    def to_dict(self) -> dict:
        # "name" as in every other JSON of unified-ctl; "agent" kept for scripts that read it
        return {"name": self.agent, **asdict(self)}


def _int(v: str | None) -> int | None:
    try:
        n = int(v or "")
    except ValueError:
        return None
    return None if n >= 2**63 - 1 or n < 0 else n  # [not set] / UINT64_MAX


def _monotonic_now_us() -> int:
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)


def cgroup_memory(cgroup: str) -> int | None:
    """cgroup v2 memory.current, else RSS summed over the cgroup's PIDs (hybrid hosts where
    MemoryCurrent reads [not set]: docs/ARCHITECTURE.md, "Memory and CPU on hybrid cgroup hosts")."""
    if not cgroup:
        return None
    base = "/sys/fs/cgroup" + cgroup
    try:
        with open(base + "/memory.current") as f:
            return int(f.read())
    except (OSError, ValueError):
        pass
    pids = []
    for procs in (base + "/cgroup.procs", "/sys/fs/cgroup/unified" + cgroup + "/cgroup.procs",
                  "/sys/fs/cgroup/systemd" + cgroup + "/cgroup.procs"):
        try:
            with open(procs) as f:
                pids = [int(x) for x in f.read().split()]
            break
        except (OSError, ValueError):
            continue
    if not pids:
        return None
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total


def agent_states(cat: Catalog, sd: Systemd, names: list[str] | None = None) -> list[AgentState]:
    names = list(cat.agents) if names is None else names
    units = []
    for n in names:
        units += [cat.agents[n].service, cat.agents[n].socket]
    # `systemctl show` of a unit systemd has not loaded makes it load it (measured: 1.7 s
    # for 77 agents, 25 s for 1,000). A unit that isn't loaded is inactive: ask only about
    # the loaded ones, found with one list-units call.
    loaded = {r["unit"] for r in sd.list_units(["unified-agent@*.service", "unified-agent@*.socket"])}
    props = sd.show([u for u in units if u in loaded]) if loaded else {}
    now = _monotonic_now_us()
    rows = []
    for n in names:
        a = cat.agents[n]
        svc, sock = props.get(a.service, {}), props.get(a.socket, {})
        state = classify(svc, sock)
        running = state in ("active", "starting", "stopping")
        pid = _int(svc.get("MainPID")) or None
        mem = _int(svc.get("MemoryCurrent")) if running else None
        if running and mem is None:
            mem = cgroup_memory(svc.get("ControlGroup", ""))
        cpu = _int(svc.get("CPUUsageNSec"))
        since = _int(svc.get("ActiveEnterTimestampMonotonic"))
        rows.append(AgentState(
            agent=n, required=a.required, state=state,
            service=f"{svc.get('ActiveState', '?')}/{svc.get('SubState', '?')}",
            socket=f"{sock.get('ActiveState', '?')}/{sock.get('SubState', '?')}",
            pid=pid if running else None, memory_bytes=mem,
            cpu_seconds=(cpu / 1e9) if (cpu is not None and running) else None,
            uptime_s=round((now - since) / 1e6, 1) if (running and since) else None,
            restarts=_int(svc.get("NRestarts")) or 0, result=svc.get("Result", "")))
    return rows


def running_agents(cat: Catalog, sd: Systemd) -> set[str]:
    """Agents whose service or socket is loaded and not inactive (cheap: one list-units)."""
    out = set()
    for row in sd.list_units(["unified-agent@*.service", "unified-agent@*.socket"]):
        unit = row["unit"]
        if row["active"] in ("inactive",) and row["sub"] == "dead":
            continue
        name = unit[len("unified-agent@"):].rsplit(".", 1)[0]
        if name in cat.agents:
            out.add(name)
    return out


def running_or_queued(cat: Catalog, sd: Systemd) -> set[str]:
    """running_agents, plus agents systemd is about to start: a start job queued by a
    switch killed halfway (or still running) shows no state yet but will run. Jobs first:
    a unit whose job ends in between is then active, seen by list-units."""
    out = set()
    for row in sd.list_jobs(["unified-agent@*.service", "unified-agent@*.socket"]):
        name = row["unit"][len("unified-agent@"):].rsplit(".", 1)[0]
        if row["type"] != "stop" and name in cat.agents:
            out.add(name)
    return out | running_agents(cat, sd)


def is_pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
