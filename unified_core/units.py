"""What systemd says about the agents' units, and the hub's collectors (also used by
`unified-ctl health` without the hub).

UnitReader: the one way to ask: `systemctl list-units` of our units + `systemctl show` of the
loaded ones (naming unloaded instances would make systemd load them; see the class for which
ones each time) through the unified_core.systemd seam. AgentUnit: state
(active/starting/dormant/failed/stopping/stopped), main PID, NRestarts, result, control
group, the last state change and the start timestamps, from which the startup duration
follows (InactiveExit → ActiveEnter: for Type=notify agents, exec to READY=1).
SystemdCollector: the hub's timer over a FleetView (unified_core/fleetview.py).

ResourceCollector: memory and CPU per running agent from its cgroup (cgroup v2
memory.current / cpu.stat), else psutil summed over the PIDs in the unit's cgroup.procs
(hybrid cgroup hosts, where the memory controller is not in the unified tree: see
docs/ARCHITECTURE.md, "Memory and CPU on hybrid cgroup hosts"), else systemd's
MemoryCurrent / CPUUsageNSec. CPU percent is the difference of two samples of the same
process.

None of them ever connects to an agent: a dormant agent stays dormant.
"""
from __future__ import annotations

import os
import threading
import time

from .poller import Poller

UNIT_PATTERNS = ("unified-agent@*.service", "unified-agent@*.socket", "unified-backend@*.service")
PROPS = ("Id", "ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ControlGroup",
         "InactiveExitTimestampMonotonic", "ActiveEnterTimestampMonotonic",
         "StateChangeTimestampMonotonic", "MemoryCurrent", "CPUUsageNSec")
RUNNING = ("active", "starting", "stopping")
CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd")


def _int(v) -> int | None:
    """systemd's numbers; None for '', '[not set]', 'infinity' and UINT64_MAX."""
    if not v:  # most properties of an inactive unit: no exception for them (a read does ~600)
        return None
    try:
        n = int(v)
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < 2**63 - 1 else None


def classify(svc: dict, sock: dict) -> str:
    """The agent's state from its service's and socket's ActiveState."""
    s_act, k_act = svc.get("ActiveState", ""), sock.get("ActiveState", "")
    if s_act in ("active", "reloading"):
        return "active"
    if s_act == "activating":
        return "starting"
    if s_act == "deactivating":
        return "stopping"
    if s_act == "failed" or k_act == "failed":
        return "failed"
    if k_act == "active":
        return "dormant"  # listening, process not running: starts on the first connection
    return "stopped"


class AgentUnit:
    """systemd's facts about one agent at one moment (immutable once built)."""

    __slots__ = ("name", "state", "service", "socket", "pid", "restarts", "result", "cgroup",
                 "cpu_ns", "memory_current", "startup_s", "starting", "start_wall", "start_us",
                 "since_wall")

    def __init__(self, name, state, service, socket, pid, restarts, result, cgroup, cpu_ns,
                 memory_current, startup_s, starting, start_wall, start_us=0, since_wall=None):
        self.name = name
        self.state = state
        self.service = service
        self.socket = socket
        self.pid = pid
        self.restarts = restarts
        self.result = result
        self.cgroup = cgroup
        self.cpu_ns = cpu_ns
        self.memory_current = memory_current
        self.startup_s = startup_s
        self.starting = starting
        self.start_wall = start_wall
        self.start_us = start_us        # systemd's InactiveExitTimestampMonotonic: identifies a start
        self.since_wall = since_wall    # the last state change of the service or the socket

    @property
    def running(self) -> bool:
        return self.state in RUNNING

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


# What is said of an agent when systemd cannot be asked (the catalog is served anyway).
UNKNOWN = AgentUnit("", "unknown", "?", "?", None, 0, "", "", None, None, None, False, None)


def unit_facts(name: str, svc: dict, sock: dict, now_mono: float, now_wall: float,
               backend: dict | None = None) -> AgentUnit:
    """Build an AgentUnit from `systemctl show` dicts. `backend`: the unified-backend@
    service of a command agent behind systemd-socket-proxyd (its process, its start)."""
    state = classify(svc, sock)
    proc = backend if backend and backend.get("ActiveState") not in (None, "", "inactive") \
        else svc
    running = state in RUNNING
    exit_us = _int(proc.get("InactiveExitTimestampMonotonic")) or 0
    enter_us = _int(proc.get("ActiveEnterTimestampMonotonic")) or 0
    startup = None
    starting = state == "starting" and exit_us > 0
    if starting:
        startup = max(0.0, now_mono - exit_us / 1e6)      # still loading: time so far
    elif enter_us and exit_us and enter_us >= exit_us:
        startup = (enter_us - exit_us) / 1e6               # last start: exec → READY=1
    start_wall = now_wall - (now_mono - exit_us / 1e6) if exit_us else None
    changed_us = max(_int(svc.get("StateChangeTimestampMonotonic")) or 0,
                     _int(sock.get("StateChangeTimestampMonotonic")) or 0)
    return AgentUnit(
        name=name, state=state,
        service=f"{svc.get('ActiveState') or 'inactive'}/{svc.get('SubState') or 'dead'}",
        socket=f"{sock.get('ActiveState') or 'inactive'}/{sock.get('SubState') or 'dead'}",
        pid=(_int(proc.get("MainPID")) or None) if running else None,
        restarts=_int(svc.get("NRestarts")) or 0, result=svc.get("Result", "") or "",
        cgroup=(proc.get("ControlGroup") or "") if running else "",
        cpu_ns=_int(proc.get("CPUUsageNSec")) if running else None,
        memory_current=_int(proc.get("MemoryCurrent")) if running else None,
        startup_s=None if startup is None else round(startup, 3), starting=starting,
        start_wall=start_wall, start_us=exit_us,
        since_wall=now_wall - (now_mono - changed_us / 1e6) if changed_us else None)


def _units_of(a) -> tuple[str, ...]:
    return (a.service, a.socket, f"unified-backend@{a.name}.service")


def build_units(cat, props: dict) -> dict[str, AgentUnit]:
    now_mono, now_wall = time.clock_gettime(time.CLOCK_MONOTONIC), time.time()
    units = {}
    for a in cat.agents.values():
        backend = props.get(f"unified-backend@{a.name}.service") if a.run.binds_own_port \
            else None
        units[a.name] = unit_facts(a.name, props.get(a.service, {}), props.get(a.socket, {}),
                                   now_mono, now_wall, backend)
    return units


def read_units(cat, sd) -> dict[str, AgentUnit]:
    """{agent: AgentUnit} for every catalog agent: one list-units + one show (one-shot
    readers, e.g. `unified-ctl health` without the hub)."""
    return UnitReader(sd).read(cat)


class UnitReader:
    """The one way the fleet's state is asked of systemd (FleetView, hence the registry, the
    twin, the hub, LazyLoader): `read(cat)` → {agent: AgentUnit} for every catalog agent.

    Units systemd has not loaded are never named (`systemctl show` of one makes systemd load
    it, and its drop-ins, just to say it is inactive: 1.7 s for 77 agents, 25 s for 1,000),
    so each read is one `list-units` of our patterns and one `show` of loaded units. Cost at
    rest matters (the hub's budget is 1 % of a core): `show` fetches properties of every unit
    it names over D-Bus (~0.5 ms of systemctl CPU per unit), `list-units` is one cheap call.
    So a reader whose owner follows systemd's journal (`events_ok()` true: the hub) shows
    only the units whose ActiveState/SubState changed, those systemd logged about since the
    last read (`touch()`: a fast restart can end in the same state), and new ones, and all of
    them every `full_every_s`. Without events (`events_ok` unset or false) every read shows
    every loaded unit: a restart between two reads is never missed."""

    def __init__(self, sd, *, full_every_s: float = 60.0, events_ok=None,
                 clock=time.monotonic):
        self.sd = sd
        self.full_every_s = full_every_s
        self.events_ok = events_ok or (lambda: False)
        self.clock = clock
        self.cat = None             # the catalog of the last read (a new one: full read)
        self.props: dict[str, dict] = {}
        self.states: dict[str, tuple] = {}
        self.last_full: float | None = None
        self.shown = {"full": 0, "partial": 0, "units": 0}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    def touch(self, agent: str | None) -> None:
        """systemd logged about this agent's units: show them at the next read."""
        if agent:
            with self._lock:
                self._dirty.add(agent)

    def read(self, cat) -> dict[str, AgentUnit]:
        """Raises what the seam raises (SystemdError, timeouts); the caller decides what a
        failed read means (the registry: unknown states; the hub: keep the last view)."""
        states: dict[str, tuple] = {r["unit"]: (r["active"], r["sub"])
                                    for r in self.sd.list_units(list(UNIT_PATTERNS))}
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        now = self.clock()
        full = (cat is not self.cat or self.last_full is None or not self.events_ok()
                or (self.full_every_s and now - self.last_full >= self.full_every_s))
        todo = [u for a in cat.agents.values() for u in _units_of(a)
                if u in states and (full or a.name in dirty or u not in self.props
                                    or states[u] != self.states.get(u))]
        props = {u: p for u, p in self.props.items() if u in states}
        if todo:
            props.update(self.sd.show(todo, PROPS))
        self.shown["full" if full else "partial"] += 1
        self.shown["units"] += len(todo)
        self.props, self.states, self.cat = props, states, cat
        if full:
            self.last_full = now
        return build_units(cat, props)


class SystemdCollector(Poller):
    """The hub's timer over a FleetView: every `interval_s` (or at once after `touch()`) the
    view asks systemd (`view.read()`, a UnitReader underneath) and `units` becomes its answer
    ({agent: AgentUnit} for every catalog agent, swapped whole); `snap` is the catalog
    snapshot the units were read for. A failed read keeps the last view (Poller)."""

    name = "systemd"

    def __init__(self, view, interval_s: float = 10.0, **kw):
        super().__init__(interval_s, **kw)
        self.view = view          # unified_core.fleetview.FleetView (or one with .read())
        self.units: dict[str, AgentUnit] = {}
        self.at_wall: float | None = None
        self.snap = None

    @property
    def shown(self) -> dict:
        return self.view.reader.shown

    def touch(self, agent: str | None) -> None:
        """systemd logged about this agent's units: show them at the next run, soon."""
        self.view.reader.touch(agent)
        self.wake()

    def collect(self) -> None:
        snap, units = self.view.read()
        self.units, self.snap, self.at_wall = units, snap, time.time()


# ------------------------------------------------------------------ resources
class Sample:
    __slots__ = ("memory_bytes", "cpu_seconds", "cpu_percent", "source", "pids", "at", "key")

    def __init__(self, memory_bytes, cpu_seconds, cpu_percent, source, pids, at, key):
        self.memory_bytes = memory_bytes
        self.cpu_seconds = cpu_seconds
        self.cpu_percent = cpu_percent
        self.source = source
        self.pids = pids
        self.at = at
        self.key = key

    def as_dict(self) -> dict:
        return {"memory_bytes": self.memory_bytes, "cpu_seconds": self.cpu_seconds,
                "cpu_percent": self.cpu_percent, "source": self.source, "pids": self.pids}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup_dirs(cgroup: str, roots=CGROUP_ROOTS) -> list[str]:
    return [r + cgroup for r in roots] if cgroup.startswith("/") else []


def read_cgroup(cgroup: str, roots=CGROUP_ROOTS) -> tuple[int | None, float | None, list[int]]:
    """(memory.current, cpu seconds from cpu.stat, PIDs) of a unit's cgroup; None where the
    controller is not in this tree. PIDs come from the first tree that lists them."""
    mem = cpu = None
    pids: list[int] = []
    for d in cgroup_dirs(cgroup, roots):
        if mem is None:
            v = _read(d + "/memory.current")
            if v is not None and v.strip().isdigit():
                mem = int(v)
        if cpu is None:
            v = _read(d + "/cpu.stat")
            if v:
                for line in v.splitlines():
                    if line.startswith("usage_usec "):
                        cpu = int(line.split()[1]) / 1e6
                        break
        if not pids:
            v = _read(d + "/cgroup.procs")
            if v:
                pids = [int(x) for x in v.split() if x.isdigit()]
    return mem, cpu, pids


def psutil_totals(pids: list[int]) -> tuple[int | None, float | None]:
    """RSS and user+system CPU seconds summed over PIDs (those that vanished are skipped)."""
    import psutil

    mem, cpu, seen = 0, 0.0, 0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                mem += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
            seen += 1
        except (psutil.Error, OSError):
            continue
    return (mem, cpu) if seen else (None, None)


class ResourceCollector(Poller):
    """`samples`: {agent: Sample} for running agents (swapped whole each run)."""

    name = "resources"

    def __init__(self, units_source, interval_s: float = 10.0, roots=CGROUP_ROOTS, **kw):
        super().__init__(interval_s, **kw)
        self.units_source = units_source   # callable → {agent: AgentUnit}
        self.roots = roots
        self.samples: dict[str, Sample] = {}

    def sample(self, u, previous: Sample | None, now: float) -> Sample:
        # cgroup files (now), else psutil over the unit's PIDs (now), else systemd's
        # MemoryCurrent/CPUUsageNSec (as of the unit's last `systemctl show`)
        mem, cpu, pids = read_cgroup(u.cgroup, self.roots) if u.cgroup else (None, None, [])
        source = "cgroup"
        if mem is None or cpu is None:
            pmem, pcpu = psutil_totals(pids or ([u.pid] if u.pid else []))
            if mem is None and pmem is not None:
                mem, source = pmem, "psutil"
            if cpu is None:
                cpu = pcpu
        if mem is None and u.memory_current is not None:
            mem, source = u.memory_current, "systemd"
        if cpu is None and u.cpu_ns is not None:
            cpu = u.cpu_ns / 1e9
        if mem is None:
            source = "unavailable"
        key = (u.pid, u.start_us)     # a restart is a new process: no percent across it
        pct = None
        if previous is not None and previous.key == key and cpu is not None \
                and previous.cpu_seconds is not None and now > previous.at:
            pct = round(max(0.0, cpu - previous.cpu_seconds) / (now - previous.at) * 100, 2)
        return Sample(mem, cpu, pct, source, len(pids), now, key)

    def collect(self) -> None:
        units = self.units_source()
        now = self.clock()
        old = self.samples
        out = {}
        for name, u in units.items():
            if u.running and (u.pid or u.cgroup):
                out[name] = self.sample(u, old.get(name), now)
        self.samples = out


def process_running(u, roots=CGROUP_ROOTS) -> bool:
    """The unit's main process is still there (checked before talking to an agent's port, so
    that an agent that just exited is not socket-activated again by the hub): listed in its
    cgroup.procs, which is readable whatever /proc shows (agents run in their own user
    namespaces), else /proc/PID exists."""
    if not u.pid:
        return False
    for d in cgroup_dirs(u.cgroup, roots) if u.cgroup else ():
        v = _read(d + "/cgroup.procs")
        if v is not None:
            return str(u.pid) in v.split()
    return os.path.exists(f"/proc/{u.pid}")
