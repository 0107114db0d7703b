"""The five alerts, evaluated by the hub itself (for users without Prometheus) and by
`unified-ctl health` when the hub is not running, and the system health score.

The same conditions, thresholds and `for:` durations are shipped as Prometheus rules in
etc/prometheus/unified-rules.yml (unit tests check that both agree, and promtool tests the
rules file). Thresholds that the catalog sets (an agent's memory limit, the slow-load
threshold) are read from the catalog here and exported as metrics for the rules.

unified_system_health_score (0-100; system_health_score, the old name, is a recording rule):

    E = essential agents of the selected profile that are active / essential agents of it
    O = optional agents of the selected profile that are not failed / optional agents of it
    A = 1 - min(1, (2 x firing critical alerts + firing warning alerts) / 4)
    score = round(60 E + 20 O + 20 A)                   (E, O = 1 when the profile has none)

So: everything up and quiet = 100; one of 16 essential agents down (and its alert firing)
= 56 + 20 + 10 = 86; two critical alerts silence A entirely. Dormant optional agents are
healthy (that is what optional means); only failed ones count against O.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

MIB = 1 << 20
VRAM_RATIO = 0.95            # VRAMExhaustion: used / total above this
MEMORY_RATIO = 0.90          # HighMemoryUsage: memory / the agent's MemoryMax above this
SLOW_RECENT_S = 900          # SlowAgentLoading: only starts in the last 15 minutes


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    for_s: float
    summary: str
    action: str


RULES = {r.name: r for r in (
    Rule("EssentialAgentDown", "critical", 60,
         "Essential agent {agent} is down ({detail})",
         "Check logs (unified-ctl logs {agent} -p warning), restart the agent "
         "(unified-ctl agent restart {agent})"),
    Rule("VRAMExhaustion", "critical", 60,
         "GPU {gpu} VRAM is {detail} used",
         "Free VRAM (curl -X POST http://localhost:5572/vram/cleanup), reduce load "
         "(lower VRAM_LIMIT_MB, unload models)"),
    Rule("CircuitBreakerOpen", "critical", 60,
         "Circuit breaker for {agent} is {detail}",
         "Check the failing service (unified-ctl logs {agent}; "
         "curl http://localhost:9000/circuit_breakers)"),
    Rule("HighMemoryUsage", "warning", 300,
         "{agent} uses {detail} of its memory limit",
         "Monitor; consider restarting it (unified-ctl agent restart {agent})"),
    Rule("SlowAgentLoading", "warning", 0,
         "{agent} took {detail} to load",
         "Check its dependencies (unified-ctl profile show; unified-ctl logs {agent})"),
)}


@dataclass(frozen=True)
class Condition:
    rule: str
    key: str          # what it is about (agent or GPU): one alert per rule and key
    labels: tuple     # ((name, value), ...)
    detail: str
    value: float | None = None


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def conditions(cat, members, units: dict, samples: dict, gpu_snap, breakers: list | None,
               now_wall: float | None = None) -> list[Condition]:
    """Which of the five conditions hold now (before `for:`), from the hub's cached facts.

    cat: the catalog; members: agents of the selected profile; units: {agent: AgentUnit}
    ({} when systemd could not be read: nothing is concluded then); samples: {agent:
    Sample}; gpu_snap: unified_agents.gpu.GpuSnapshot or None; breakers: open breakers
    (hub_peers.open_breakers) or None when RequestCoordinator's view is not fresh."""
    now_wall = time.time() if now_wall is None else now_wall
    out: list[Condition] = []
    for name in members:
        a = cat.agents.get(name)
        u = units.get(name)
        if a is None or u is None or not a.required:
            continue
        if u.state != "active":
            detail = u.state + (f", {u.result}" if u.result and u.result != "success" else "")
            out.append(Condition("EssentialAgentDown", name,
                                 (("agent", name), ("group", a.group)), detail))
    if gpu_snap is not None:
        for g in gpu_snap.gpus:
            if g.total_bytes and g.used_bytes / g.total_bytes > VRAM_RATIO:
                ratio = g.used_bytes / g.total_bytes
                out.append(Condition("VRAMExhaustion", f"gpu{g.index}",
                                     (("gpu", str(g.index)), ("name", g.name)),
                                     f"{_pct(ratio)} ({g.used_bytes // MIB}/"
                                     f"{g.total_bytes // MIB} MiB)", ratio))
    for b in breakers or ():
        out.append(Condition("CircuitBreakerOpen", b["agent"], (("agent", b["agent"]),),
                             str(b.get("state", "open")).replace("_", "-")))
    for name, s in samples.items():
        a = cat.agents.get(name)
        if a is None or s.memory_bytes is None:
            continue
        limit = a.resources.memory_mb * MIB
        if limit and s.memory_bytes / limit > MEMORY_RATIO:
            ratio = s.memory_bytes / limit
            out.append(Condition("HighMemoryUsage", name, (("agent", name),),
                                 f"{_pct(ratio)} ({s.memory_bytes // MIB}/"
                                 f"{a.resources.memory_mb} MiB)", ratio))
    slow = cat.lazy_loader.slow_load_threshold_s
    for name, u in units.items():
        if u.startup_s is None or u.start_wall is None or u.startup_s <= slow:
            continue
        if now_wall - u.start_wall < SLOW_RECENT_S:
            what = f"{u.startup_s:.1f} s" + (" so far" if u.starting else "")
            out.append(Condition("SlowAgentLoading", name, (("agent", name),),
                                 f"{what} (threshold {slow:g} s)", u.startup_s))
    return out


class AlertState:
    """Pending → firing after the rule's `for:`, like Prometheus; resolved ones drop out."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.since: dict[tuple[str, str], float] = {}
        self.current: list[dict] = []

    def evaluate(self, conds: list[Condition]) -> list[dict]:
        now = self.clock()
        seen = set()
        out: list[dict] = []
        for c in conds:
            k = (c.rule, c.key)
            if k in seen:
                continue
            seen.add(k)
            since = self.since.setdefault(k, now)
            rule = RULES[c.rule]
            labels = dict(c.labels)
            fmt = {"agent": labels.get("agent", c.key), "gpu": labels.get("gpu", c.key),
                   "detail": c.detail}
            out.append({
                "name": c.rule, "severity": rule.severity,
                "state": "firing" if now - since >= rule.for_s else "pending",
                "key": c.key, "labels": labels, "since": since,
                "for_s": rule.for_s, "value": c.value,
                "summary": rule.summary.format(**fmt), "action": rule.action.format(**fmt)})
        self.since = {k: v for k, v in self.since.items() if k in seen}
        order = {"critical": 0, "warning": 1}
        out.sort(key=lambda x: (x["state"] != "firing", order.get(x["severity"], 2),
                                x["name"], x["key"]))
        self.current = out
        return out

    def firing(self) -> list[dict]:
        return [a for a in self.current if a["state"] == "firing"]


def health_score(cat, members, units: dict, alerts: list[dict]) -> int | None:
    """The documented 0-100 score (module docstring); None without systemd's view."""
    if not units:
        return None
    essential = [n for n in members if n in cat.agents and cat.agents[n].required]
    optional = [n for n in members if n in cat.agents and not cat.agents[n].required]
    e = (sum(1 for n in essential if units.get(n) and units[n].state == "active")
         / len(essential)) if essential else 1.0
    o = (sum(1 for n in optional if not (units.get(n) and units[n].state == "failed"))
         / len(optional)) if optional else 1.0
    firing = [a for a in alerts if a["state"] == "firing"]
    crit = sum(1 for a in firing if a["severity"] == "critical")
    warn = sum(1 for a in firing if a["severity"] == "warning")
    a = 1.0 - min(1.0, (2 * crit + warn) / 4)
    return max(0, min(100, round(60 * e + 20 * o + 20 * a)))


def overall(score: int | None, alerts: list[dict], stale: list[str]) -> str:
    """healthy | degraded | critical, for /health/summary and the dashboard."""
    if any(a["state"] == "firing" and a["severity"] == "critical" for a in alerts):
        return "critical"
    if score is None or score < 100 or stale or alerts:
        return "degraded"
    return "healthy"
