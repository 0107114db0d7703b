"""Ports an agent about to start would need but another program already listens on.

systemd cannot bind a socket unit whose port is taken: the socket fails ("Address already in
use" in its journal), the agent never starts, and every agent that depends on it waits for
the profile's whole start timeout. (The case that made this check: Debian's
prometheus-node-exporter, pulled in by `apt install prometheus`, listens on 9100, the original
catalog's port of ObservabilityHub_PC2; the shipped catalog now keeps agents off the well-known
ports, see known_ports.py.) `profile switch` asks before changing anything and names the
program holding the port.
"""
from __future__ import annotations

from dataclasses import dataclass

from unified_core.catalog import env_listen_ports
from unified_core.errors import UnifiedError
from unified_core.model import Catalog

WILDCARDS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Listener:
    ip: str
    port: int
    pid: int | None      # None: not ours to see (not root)
    program: str = ""    # process name
    unit: str = ""       # systemd unit of the process, when it has one


@dataclass(frozen=True)
class Clash:
    agent: str
    what: str            # "agent port" | "health port" | "backend port" | "WYOMING_PORT"
    port: int
    holder: Listener

    def __str__(self) -> str:
        h = self.holder
        if h.pid is None:
            who = "another program (run as root to see which)"
        else:
            who = f"{h.program or 'a process'} (pid {h.pid}" + (f", {h.unit}" if h.unit else "") + ")"
        field = {"agent port": "port", "health port": "health_port",
                 "backend port": "run.backend_port"}.get(self.what, f"environment.{self.what}")
        return (f"{self.agent}: {self.what} {self.port} is in use by {who} on "
                f"{h.ip or '*'}:{h.port}; stop that program or give the agent another port "
                f"(agents.{self.agent}.{field} in the catalog)")


class PortInUse(UnifiedError):
    """Agents about to start would find their ports taken; nothing was changed."""

    def __init__(self, found: list[Clash], doing: str):
        self.clashes = list(found)
        super().__init__("\n".join([f"cannot {doing}: {len(found)} port(s) already in use, "
                                     "nothing was changed:"] + [f"  {c}" for c in found]))


def check(cat: Catalog, agents, doing: str, listeners: list[Listener] | None = None) -> None:
    """PortInUse when a port of `agents` is taken (listeners: live ones by default)."""
    if not agents:
        return
    found = clashes(cat, agents, live_listeners() if listeners is None else listeners)
    if found:
        raise PortInUse(found, doing)


def _overlaps(bind: str, ip: str) -> bool:
    return bind in WILDCARDS or ip in WILDCARDS or ip == bind


def clashes(cat: Catalog, agents, listeners: list[Listener]) -> list[Clash]:
    """Ports of `agents` (about to start: their sockets are not ours yet) held by a listener."""
    bind = cat.settings.bind_address
    by_port: dict[int, list[Listener]] = {}
    for lis in listeners:
        by_port.setdefault(lis.port, []).append(lis)
    out = []
    for name in agents:
        a = cat.agents[name]
        wanted = [("agent port", a.port), ("health port", a.health_port)]
        if a.run.binds_own_port and a.run.backend_port:
            wanted.append(("backend port", a.run.backend_port))
        wanted += env_listen_ports(a)  # e.g. ("WYOMING_PORT", 10310)
        for what, port in wanted:
            for lis in by_port.get(port, ()):
                if _overlaps(bind, lis.ip):
                    out.append(Clash(name, what, port, lis))
                    break
    return out


def _unit_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            path = f.read().strip().splitlines()[-1].split(":", 2)[-1]
    except (OSError, IndexError):
        return ""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last if last.endswith((".service", ".scope", ".socket")) else ""


def live_listeners() -> list[Listener]:
    """TCP listeners of this host (pids need root). Not being able to read them is an error,
    not a silently skipped check: a switch would then run into the failure it exists to prevent."""
    try:
        import psutil
    except ImportError:
        raise UnifiedError("cannot check whether the agents' ports are free: the Python module psutil "
                           "is missing; install python3-psutil (a dependency of unified-system)") from None
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError) as e:
        raise UnifiedError(f"cannot check whether the agents' ports are free: reading this host's TCP "
                           f"listeners failed: {type(e).__name__}: {e}") from None
    out = []
    for c in conns:
        if c.status != "LISTEN" or not c.laddr:
            continue
        program = ""
        if c.pid:
            try:
                program = psutil.Process(c.pid).name()
            except (psutil.Error, OSError):  # exited since, or hidden: the pid still names it
                pass
        out.append(Listener(c.laddr.ip, c.laddr.port, c.pid, program,
                            _unit_of(c.pid) if c.pid else ""))
    return out
