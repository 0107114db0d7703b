"""What a week of journal says about each agent: availability, failures, restarts, load
times, idle exits, OOM kills, CPU used, warnings and errors, breaker openings.

systemd (PID 1) logs every unit transition with a MESSAGE_ID (sd-messages.h) and UNIT=;
those entries are the ground truth of availability, whoever else is running. Pure
functions over parsed journal entries (dicts as `journalctl -o json` prints them), so the
rules are unit-tested without a journal.

Availability = time up / (time up + time down after a failure). Stops asked for (profile
switch, idle exit of an optional agent) are not downtime; dormant time counts as neither.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
STARTED = "39f53479d3a045ac8e11786248231fbf"
STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
STOPPED = "9d1aaa27d60140bd96365438aad20286"
FAILED = "be02cf6855d2428ba40df7e9d022f03d"
FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
SUCCESS = "7ad2d189f7e94e70a38c781354912448"
RESTART_SCHEDULED = "5eb03494b6584870a536b337290809b3"
RESOURCES = "ae8f7b866b0347b9af31fe1c80b127c0"
OUT_OF_MEMORY = "fe6faa94e7774663a0da52717891d8ef"
PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
LIFECYCLE = {STARTING, STARTED, STOPPING, STOPPED, FAILED, FAILURE_RESULT, SUCCESS, RESTART_SCHEDULED,
             RESOURCES, OUT_OF_MEMORY}
FIELDS = ("UNIT", "MESSAGE_ID", "MESSAGE", "N_RESTARTS", "CPU_USAGE_NSEC", "MEMORY_PEAK", "PRIORITY",
          "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID")

UNIT_RE = re.compile(r"^unified-agent@(.+)\.service$")
BREAKER_RE = re.compile(r"circuit breaker (\w[\w-]*) -> open\b.*\bagent=(\S+)")


def agent_of(entry: dict) -> str | None:
    m = UNIT_RE.match(entry.get("UNIT") or entry.get("_SYSTEMD_UNIT") or "")
    return m.group(1) if m else None


def ts(entry: dict) -> float:
    return int(entry["__REALTIME_TIMESTAMP"]) / 1e6


@dataclass
class AgentWeek:
    agent: str
    starts: int = 0
    failures: int = 0
    restarts: int = 0
    oom_kills: int = 0
    idle_exits: int = 0
    stops: int = 0
    up_s: float = 0.0
    down_s: float = 0.0  # after a failure, until it started again (or the window ended)
    load_times: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    memory_peak_bytes: int | None = None  # systemd >= 255 logs it when a unit stops
    warnings: int = 0
    errors: int = 0
    last_error: str | None = None
    failure_episodes: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    timeline: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, up|down)

    @property
    def availability(self) -> float | None:
        total = self.up_s + self.down_s
        return None if total <= 0 else self.up_s / total

    def to_dict(self) -> dict:
        d = asdict(self)
        d["availability"] = self.availability
        d["load_max_s"] = max(self.load_times) if self.load_times else None
        d["load_median_s"] = sorted(self.load_times)[len(self.load_times) // 2] if self.load_times else None
        return d


class _Machine:
    """One agent's unit state through the window."""

    def __init__(self, week: AgentWeek, since: float):
        self.w, self.since = week, since
        self.state: str | None = None  # None (unknown yet) | up | down | stopped
        self.at = since
        self.starting_at: float | None = None
        self.stopping = False

    def _close(self, t: float) -> None:
        if self.state == "up":
            self.w.up_s += t - self.at
            self.w.timeline.append((self.at, t, "up"))
        elif self.state == "down":
            self.w.down_s += t - self.at
            self.w.timeline.append((self.at, t, "down"))
            self.w.failure_episodes.append((self.at, t - self.at))

    def _enter(self, state: str, t: float) -> None:
        self._close(t)
        self.state, self.at = state, t

    def feed(self, mid: str, t: float, e: dict) -> None:
        w = self.w
        if self.state is None and mid in (STOPPING, STOPPED, SUCCESS, FAILURE_RESULT, FAILED, RESOURCES,
                                          OUT_OF_MEMORY):
            self.state, self.at = "up", self.since  # it was running when the window began
        if mid == STARTING:
            self.starting_at = t
        elif mid == STARTED:
            w.starts += 1
            if self.starting_at is not None:
                w.load_times.append(round(t - self.starting_at, 3))
            self.starting_at = None
            self.stopping = False
            self._enter("up", t)
        elif mid == STOPPING:
            self.stopping = True
        elif mid == SUCCESS:
            if self.state == "up" and not self.stopping:
                w.idle_exits += 1  # exited 0 by itself: scale to zero
            self._enter("stopped", t)
        elif mid == STOPPED:
            w.stops += 1
            if self.state != "down":
                self._enter("stopped", t)
        elif mid in (FAILURE_RESULT, FAILED):
            if self.state != "down":
                w.failures += 1
                self._enter("down", t)
            self.starting_at = None
        elif mid == RESTART_SCHEDULED:
            w.restarts += 1
        elif mid == OUT_OF_MEMORY:
            w.oom_kills += 1
        elif mid == RESOURCES:
            try:
                w.cpu_s += int(e.get("CPU_USAGE_NSEC") or 0) / 1e9
            except ValueError:
                pass
            try:
                peak = int(e["MEMORY_PEAK"])
                w.memory_peak_bytes = max(peak, w.memory_peak_bytes or 0)
            except (KeyError, ValueError):
                pass

    def finish(self, until: float, active_now: bool | None) -> None:
        if self.state is None:  # no transition in the window: it stayed as it is now
            self.state = "up" if active_now else None
        self._close(until)


def analyse(lifecycle: list[dict], messages: list[dict], since: float, until: float,
            active_now: dict[str, bool] | None = None) -> tuple[dict[str, AgentWeek], list[dict]]:
    """(per-agent weeks, circuit breaker openings) from PID 1's lifecycle entries and the
    agents' warning-or-worse messages."""
    active_now = active_now or {}
    weeks: dict[str, AgentWeek] = {}
    machines: dict[str, _Machine] = {}
    for e in sorted(lifecycle, key=ts):
        name = agent_of(e)
        mid = e.get("MESSAGE_ID")
        if not name or mid not in LIFECYCLE:
            continue
        if name not in machines:
            weeks[name] = AgentWeek(name)
            machines[name] = _Machine(weeks[name], since)
        machines[name].feed(mid, ts(e), e)
    for name, up in active_now.items():
        if up and name not in machines:
            weeks[name] = AgentWeek(name)
            machines[name] = _Machine(weeks[name], since)
    for name, machine in machines.items():
        machine.finish(until, active_now.get(name))
    breakers = []
    for e in messages:
        name = agent_of(e)
        if not name:
            continue
        w = weeks.setdefault(name, AgentWeek(name))
        try:
            prio = int(e.get("PRIORITY", 6))
        except ValueError:
            prio = 6
        msg = e.get("MESSAGE")
        msg = msg if isinstance(msg, str) else str(msg)  # journald gives bytes as a list of ints
        if prio <= 3:
            w.errors += 1
            w.last_error = msg[:300]
        elif prio == 4:
            w.warnings += 1
        m = BREAKER_RE.search(msg)
        if m:
            breakers.append({"time": ts(e), "reporter": name, "agent": m.group(2), "from": m.group(1)})
    return weeks, breakers
