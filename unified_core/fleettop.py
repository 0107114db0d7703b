"""A top of the fleet (`unified-ctl status --watch`): successive reads of the agents' states,
each with the CPU share every running agent used since the previous read, sorted as asked.

One read is one `list-units` + one `show` (units.read_units) and, for running agents, their
cgroup files (units.ResourceCollector: the same CPU and memory numbers as the hub's); the
CPU percent of an agent is the difference of two reads of the same process (a restart
starts over), in percent of one core, so the first read has none. The default selection
(the profile's agents and whatever else runs) is re-read each time: an agent started or
stopped meanwhile appears or leaves. Never connects to an agent port except the health
port of active agents (probe_health), which never activates anything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import fleet, profiles, units
from .model import Catalog

SORTS = ("name", "cpu", "mem")  # `--sort`; none: catalog order, as `status`


def sort_states(rows: list[fleet.AgentState], by: str | None) -> list[fleet.AgentState]:
    """cpu: CPU percent, then CPU time, highest first; mem: memory, highest first; name:
    alphabetical; None: as given (catalog order). Unknown values sort last; ties keep the
    catalog order."""
    def high(v) -> float:
        return -v if v is not None else float("inf")

    if by is None:
        return list(rows)
    if by == "name":
        return sorted(rows, key=lambda r: r.agent.lower())
    if by == "cpu":
        return sorted(rows, key=lambda r: (high(r.cpu_percent), high(r.cpu_seconds)))
    if by == "mem":
        return sorted(rows, key=lambda r: high(r.memory_bytes))
    raise ValueError(f"sort by {by!r}; allowed: {', '.join(SORTS)}")


@dataclass
class Frame:
    """One read: what `status` prints, at one moment."""
    profile: str
    target_active: bool
    at: float  # time.time() of the read
    rows: list[fleet.AgentState] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"at": round(self.at, 3), "profile": self.profile, "target_active": self.target_active,
                "counts": self.counts, "agents": [r.to_dict() for r in self.rows]}


class FleetTop:
    """names: the agents to show (None: the profile's and the running ones, re-read each
    time); health: probe the active agents' health ports on each read; clock: what the CPU
    percent divides by (monotonic seconds)."""

    def __init__(self, cat: Catalog, sd, names: list[str] | None = None, health: bool = True,
                 clock=time.monotonic):
        self.cat, self.sd, self.names, self.health = cat, sd, names, health
        self._units: dict = {}
        # (units.CGROUP_ROOTS read now, not at import: where the cgroup files are, per host)
        self.collector = units.ResourceCollector(lambda: self._units, roots=units.CGROUP_ROOTS, clock=clock)

    def read(self, sort: str | None = None) -> Frame:
        cat = self.cat
        profile = profiles.current_profile(cat)
        names = self.names if self.names is not None else fleet.shown_by_default(cat, self.sd, profile)
        self._units = units.read_units(cat, self.sd)
        self.collector.collect()
        rows = fleet.states_of(cat, self._units, names)
        for r in rows:
            s = self.collector.samples.get(r.agent)
            if s is not None:  # fresher than systemd's numbers (read from the cgroup just now)
                r.cpu_percent = s.cpu_percent
                r.memory_bytes = s.memory_bytes if s.memory_bytes is not None else r.memory_bytes
                r.cpu_seconds = s.cpu_seconds if s.cpu_seconds is not None else r.cpu_seconds
        if self.health:
            fleet.probe_health(cat, rows)
        return Frame(profile, self.sd.is_active(cat.profiles[profile].target), time.time(), sort_states(rows, sort))
