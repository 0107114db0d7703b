"""The fleet as systemd sees it: one row per agent, from one `systemctl show` call."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from .model import Catalog
from .systemd import Systemd
from .units import read_units


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
    cpu_percent: float | None = None  # of one core since the previous read (fleettop.py); None: one read only

    def to_dict(self) -> dict:
        # "name" as in every other JSON of unified-ctl; "agent" kept for scripts that read it
        return {"name": self.agent, **asdict(self)}


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
    """One row per agent (`unified-ctl status`), read through units.UnitReader like every
    other reader of the fleet (one list-units, one show of the loaded units: a unit systemd
    has not loaded is inactive, and naming it would make systemd load it)."""
    return states_of(cat, read_units(cat, sd), list(cat.agents) if names is None else names)


def states_of(cat: Catalog, units: dict, names: list[str]) -> list[AgentState]:
    """agent_states from units read already ({agent: units.AgentUnit})."""
    now_s = _monotonic_now_us() / 1e6
    rows = []
    for n in names:
        u = units[n]
        mem = u.memory_current
        if u.running and mem is None:
            mem = cgroup_memory(u.cgroup)
        # running since READY=1: the start (InactiveExit) plus its startup, when both known
        since = u.start_us / 1e6 + (u.startup_s or 0.0) if u.start_us else None
        rows.append(AgentState(
            agent=n, required=cat.agents[n].required, state=u.state, service=u.service,
            socket=u.socket, pid=u.pid, memory_bytes=mem,
            cpu_seconds=(u.cpu_ns / 1e9) if u.cpu_ns is not None else None,
            uptime_s=round(max(0.0, now_s - since), 1) if (u.running and since) else None,
            restarts=u.restarts, result=u.result))
    return rows


def shown_by_default(cat: Catalog, sd: Systemd, profile: str) -> list[str]:
    """What `unified-ctl status` shows without arguments: the profile's agents and whatever
    else runs, in catalog order."""
    running = running_agents(cat, sd)
    members = set(cat.profiles[profile].agents)
    return [a for a in cat.agents if a in members or a in running]


def probe_health(cat: Catalog, rows: list[AgentState], timeout: float = 1.0) -> None:
    """Set `health` of the active rows from their health ports (in parallel: one slow agent
    costs `timeout`, not one per agent). Only active rows: no other has a process to answer."""
    from concurrent.futures import ThreadPoolExecutor

    from .health import probe

    active = [r for r in rows if r.state == "active"]
    if not active:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(active))) as pool:
        results = pool.map(lambda r: probe(cat.settings.bind_address, cat.agents[r.agent].health_port, timeout),
                           active)
        for r, h in zip(active, results):
            r.health = h.status


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
