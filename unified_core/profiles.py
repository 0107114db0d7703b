"""Profile switch = explicit diff (never `systemctl isolate`, never Conflicts= between
profile targets: both would stop agents the profiles share).

plan → persist the choice → daemon-reload (the generator links the new target into
unified.target.wants/ and sets the slice limits) → stop service *and* socket of agents that
left → start the new target → wait until every agent of the profile is ready.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from . import paths
from .catalog import dependency_order
from .errors import UnifiedError
from .health import probe
from .model import Catalog
from .systemd import Systemd


@dataclass(frozen=True)
class SwitchPlan:
    old: str | None
    new: str
    target: str
    stop_agents: tuple[str, ...]  # service and socket stop
    start_agents: tuple[str, ...]  # not running now, started by the new target
    keep_agents: tuple[str, ...]  # running now and in the new profile: untouched
    stop_targets: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"from": self.old, "to": self.new, "target": self.target, "stop": list(self.stop_agents),
                "start": list(self.start_agents), "keep": list(self.keep_agents),
                "stop_targets": list(self.stop_targets)}


def read_selected() -> str | None:
    try:
        with open(paths.selected_profile_file()) as f:
            return f.read().strip() or None
    except OSError:
        return None


def write_selected(name: str) -> None:
    path = paths.selected_profile_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def current_profile(cat: Catalog) -> str:
    sel = read_selected()
    return sel if sel is not None and sel in cat.profiles else cat.settings.profile


def plan_switch(cat: Catalog, old: str | None, new: str, running: set[str]) -> SwitchPlan:
    """Agents of the new profile stay or start; everything else of ours that runs stops
    (agents of the old profile and agents started by hand outside any profile)."""
    prof = cat.profile(new)
    members = set(prof.agents)
    stop = [a for a in cat.agents if a in running and a not in members]
    start = [a for a in prof.agents if a not in running]
    keep = [a for a in prof.agents if a in running]
    stop_targets = [p.target for p in cat.profiles.values() if p.name != new]
    return SwitchPlan(old=old, new=new, target=prof.target, stop_agents=tuple(stop),
                      start_agents=tuple(start), keep_agents=tuple(keep), stop_targets=tuple(stop_targets))


def units_of(cat: Catalog, agents) -> list[str]:
    out = []
    for a in agents:
        out += [cat.agents[a].socket, cat.agents[a].service]
    return out


@dataclass
class AgentReadiness:
    agent: str
    mode: str  # service | socket
    ready: bool = False
    state: str = "pending"
    reason: str = ""


@dataclass
class WaitResult:
    profile: str
    seconds: float
    agents: list[AgentReadiness] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ready for a in self.agents)

    @property
    def failed(self) -> list[AgentReadiness]:
        return [a for a in self.agents if not a.ready]


def expected(cat: Catalog, profile: str) -> list[AgentReadiness]:
    p = cat.profile(profile)
    out = []
    for n in dependency_order(p.agents, cat.agents):
        a = cat.agents[n]
        out.append(AgentReadiness(n, "service" if (a.required or n in p.autoload) else "socket"))
    return out


def check_ready(cat: Catalog, sd: Systemd, items: list[AgentReadiness], probe_timeout: float = 0.5,
                ask_systemd: bool = True) -> None:
    """Essential/autoload agents: /health healthy on the health port (only the agent's own
    process binds it, so an answer means it is up) or, failing that, systemd's state to
    report. Optional agents: socket listening (the process stays dormant until used).
    ask_systemd=False: health probes only (systemd is busy forking the agents; a `systemctl
    show` then takes ~0.2 s, so the wait asks it less often than it probes)."""
    pending = [i for i in items if not i.ready]
    bind = cat.settings.bind_address
    probed = {}
    for i in pending:
        if i.mode == "service":
            h = probed[i.agent] = probe(bind, cat.agents[i.agent].health_port, probe_timeout)
            if h.ok:
                i.ready, i.state, i.reason = True, f"active, {h.status}", ""
    pending = [i for i in pending if not i.ready]
    if not pending or not ask_systemd:
        return
    units = []
    for i in pending:
        a = cat.agents[i.agent]
        units += [a.service, a.socket]
    props = sd.show(units, ("Id", "ActiveState", "SubState", "Result"))
    for i in pending:
        a = cat.agents[i.agent]
        svc, sock = props.get(a.service, {}), props.get(a.socket, {})
        if i.mode == "socket":
            i.state = f"socket {sock.get('ActiveState')}/{sock.get('SubState')}"
            i.ready = sock.get("ActiveState") == "active"
            if sock.get("ActiveState") == "failed":
                i.reason = f"socket failed ({sock.get('Result')})"
            continue
        act = svc.get("ActiveState")
        i.state = f"{act}/{svc.get('SubState')}"
        if act == "failed" or sock.get("ActiveState") == "failed":
            i.reason = f"service {act} ({svc.get('Result')}), socket {sock.get('ActiveState')}"
        elif act == "active":
            h = probed[i.agent]
            i.state = f"active, {h.status}"
            i.reason = f"health {h.status}"


# What every operation that waits for agents (a switch, a catalog change, a restore, an
# agent load) reports while it waits, for the CLI to draw: (ready, total, the agents with
# their state so far), after each round of checks.
Progress = Callable[[int, int, list[AgentReadiness]], None]


def wait_ready(cat: Catalog, sd: Systemd, profile: str, timeout: float, progress: Progress | None = None,
               interval: float = 0.1, systemd_every: float = 0.5) -> WaitResult:
    """Wait until every agent of `profile` is ready (wait_for)."""
    items = expected(cat, profile)
    seconds = wait_for(cat, sd, items, timeout, progress, interval, systemd_every)
    return WaitResult(profile=profile, seconds=seconds, agents=items)


def wait_for(cat: Catalog, sd: Systemd, items: list[AgentReadiness], timeout: float,
             progress: Progress | None = None, interval: float = 0.1, systemd_every: float = 0.5) -> float:
    """Wait until every item is ready (check_ready, which updates them); returns the seconds
    waited. The health probes answer for agents started as services; systemd is asked (one
    `systemctl show` of every pending unit) only for what they can't tell: optional agents'
    sockets, and whether agents that stopped getting ready have failed. While agents keep
    turning healthy, asking systemd tells nothing new and costs most (PID 1 answers between
    forking agents: 0.2–0.8 s measured on a loaded host), so it is asked at most every
    `systemd_every` s after its last answer, and then only when a socket is pending or
    nothing turned ready for that long."""
    t0 = time.monotonic()
    asked = None  # when systemd last answered
    last_progress, done = t0, 0
    while True:
        now = time.monotonic()
        since = now - (asked if asked is not None else t0)
        sockets = any(i.mode == "socket" and not i.ready for i in items)
        stalled = since >= systemd_every and now - last_progress >= systemd_every
        ask = now - t0 >= timeout or stalled or (sockets and (asked is None or since >= systemd_every))
        check_ready(cat, sd, items, ask_systemd=ask)
        if ask:
            asked = time.monotonic()
        if sum(i.ready for i in items) > done:
            done, last_progress = sum(i.ready for i in items), time.monotonic()
        if progress is not None:
            progress(done, len(items), items)
        if done == len(items) or time.monotonic() - t0 >= timeout:
            break
        # ActiveState=failed is final (a pending restart shows as activating/auto-restart):
        # once every agent still missing has failed, waiting longer only delays the report.
        if ask and all(i.ready or i.state.startswith("failed") for i in items):
            break
        time.sleep(interval)
    return round(time.monotonic() - t0, 3)


def execute_switch(cat: Catalog, sd: Systemd, plan: SwitchPlan, reload: bool = True) -> None:
    """reload=False: the units systemd has loaded already are what the generator renders for
    plan.new (the caller knows: unified_ctl/generator.py records what it rendered from), so
    the daemon-reload (0.6–1.1 s for 77 agents) would change nothing."""
    write_selected(plan.new)
    if reload:
        sd.daemon_reload()
    if plan.stop_agents:
        units = units_of(cat, plan.stop_agents)
        sd.stop(units)
        sd.reset_failed(units)
    # Only targets that are up or about to be (a start job queued by a switch killed
    # halfway): naming an unloaded target makes systemd load it and the hundreds of
    # instances it wants (measured: 0.6 s) just to find it inactive.
    up = {r["unit"] for r in sd.list_units(["unified-profile-*.target"]) if r["active"] != "inactive"}
    up |= {j["unit"] for j in sd.list_jobs(["unified-profile-*.target"]) if j["type"] != "stop"}
    sd.stop([t for t in plan.stop_targets if t in up])
    # A failed unit of the new profile would not be retried by `start`: clear it first.
    sd.reset_failed(units_of(cat, plan.start_agents))
    sd.start([plan.target, "unified.target"], no_block=True)


def stray_agents(cat: Catalog, sd: Systemd, profile: str) -> list[str]:
    """Stop (service and socket) every agent running or queued outside `profile`; return them."""
    from .fleet import running_or_queued

    members = set(cat.profile(profile).agents)
    strays = sorted(a for a in running_or_queued(cat, sd) if a not in members)
    if strays:
        sd.stop(units_of(cat, strays))
        sd.reset_failed(units_of(cat, strays))
    return strays


def failure_report(cat: Catalog, sd: Systemd, result: WaitResult, lines: int = 8) -> list[dict]:
    out = []
    for i in result.failed:
        a = cat.agents[i.agent]
        # warning and worse: the agent's own error lines, not systemd's restart chatter
        out.append({"name": i.agent, "agent": i.agent, "state": i.state, "reason": i.reason or "not ready before the timeout",
                    "journal": sd.journal_tail([a.service, a.socket], lines, priority="warning")})
    return out


def require_known(cat: Catalog, name: str) -> None:
    if name not in cat.profiles:
        raise UnifiedError(f"unknown profile {name!r}; allowed: {', '.join(cat.profiles)}")
