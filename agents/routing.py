"""Hybrid LLM routing: local or cloud, from the catalog's rules and the live state. Pure.

    router = Router(catalog.routing)                    # precomputes a task → rule table
    d = router.decide("code_generation", None, Live(cloud_ok=True, local_ok=True,
                                                    small_ok=True))
    d.backend, d.reason                                 # ('cloud', 'rule')

Order of the decision (every step records why, as `reason`):
1. What the task wants. A rule naming the task type gives its backend (reason "rule");
   otherwise the complexity decides: above `complexity_threshold` → cloud
   ("complexity_above_threshold"), else local ("complexity_below_threshold"). The
   complexity is the caller's (0..1) or, without one, estimated from the prompt size
   (`estimate_complexity`). A caller may also ask for a backend ("requested").
2. Failover on the live state (`Live`, built by ModelManagerSuite from its registry, the
   cloud probe and the cloud breaker):
   - cloud wanted but not usable (unreachable, breaker open, not configured) →
     `failover.cloud_unreachable`: "local" (then step 2's VRAM rule applies) or "fail";
     reason "cloud_unreachable" / "breaker_open".
   - local wanted but the local model is neither loaded nor fits the VRAM budget →
     `failover.vram_exhausted`: "local_small" (the small model, if it fits), "cloud", or
     "fail"; reason "vram_exhausted". When the chosen fallback is not usable either, the
     other usable backend is taken; with none left: backend "none", reason "no_backend".

Labels are a closed set (backend: local, local_small, cloud, none; reason: the words above)
so `unified_llm_routing_decisions_total{backend,reason}` stays small. No I/O, no locks, no clock:
a decision is a few dict lookups (bench/bench_routing.py measures it).
"""
from __future__ import annotations

from unified_core.timefmt import iso

BACKENDS = ("local", "local_small", "cloud", "none")
REASONS = ("rule", "complexity_above_threshold", "complexity_below_threshold", "requested",
           "cloud_unreachable", "breaker_open", "vram_exhausted", "no_backend")

# Without a caller's complexity: the prompt's share of a small local model's context window.
# A 4k-token window at ~4 characters a token; a prompt filling it is as hard as it gets for
# a local model (large_context_reasoning territory).
LOCAL_CONTEXT_CHARS = 4096 * 4


class Live:
    """What can serve right now. cloud_problem says why the cloud is not ok:
    "cloud_unreachable" (probe or calls fail, or no cloud model) or "breaker_open"."""

    __slots__ = ("cloud_ok", "cloud_problem", "local_ok", "small_ok")

    def __init__(self, cloud_ok: bool, local_ok: bool, small_ok: bool,
                 cloud_problem: str = "cloud_unreachable"):
        self.cloud_ok = cloud_ok
        self.cloud_problem = cloud_problem
        self.local_ok = local_ok
        self.small_ok = small_ok

    def as_dict(self) -> dict:
        return {"cloud_ok": self.cloud_ok, "cloud_problem": None if self.cloud_ok
                else self.cloud_problem, "local_ok": self.local_ok, "small_ok": self.small_ok}


class Decision:
    __slots__ = ("backend", "reason", "wanted", "complexity", "task_type", "rule")

    def __init__(self, backend, reason, wanted, complexity, task_type, rule):
        self.backend = backend        # local | local_small | cloud | none
        self.reason = reason          # one of REASONS
        self.wanted = wanted          # what the task wanted before failover: local | cloud
        self.complexity = complexity  # 0..1 used for the decision
        self.task_type = task_type
        self.rule = rule              # index of the matching catalog rule, or None

    def as_dict(self) -> dict:
        return {"backend": self.backend, "reason": self.reason, "wanted": self.wanted,
                "complexity": self.complexity, "task_type": self.task_type, "rule": self.rule}

    def __repr__(self) -> str:
        return f"Decision({self.backend!r}, {self.reason!r}, wanted={self.wanted!r})"


def estimate_complexity(prompt_chars: int, max_tokens: int = 0) -> float:
    """0..1 from the size of the work: prompt characters plus the answer's token budget."""
    size = max(0, prompt_chars) + 4 * max(0, max_tokens)
    return min(1.0, round(size / LOCAL_CONTEXT_CHARS, 4))


class RoutingError(ValueError):
    """Bad routing input (an HTTP 400 for the caller)."""


class Router:
    def __init__(self, routing):
        """`routing`: unified_core.model.Routing (complexity_threshold, rules,
        cloud_unreachable, vram_exhausted)."""
        self.threshold = float(routing.complexity_threshold)
        self.on_cloud_unreachable = routing.cloud_unreachable   # local | fail
        self.on_vram_exhausted = routing.vram_exhausted         # local_small | cloud | fail
        table: dict = {}
        for i, r in enumerate(routing.rules):
            for t in r.tasks:
                table.setdefault(t, (i, r.backend, float(r.complexity)))  # first rule wins
        self.rules = table

    def decide(self, task_type: str | None, complexity: float | None, live: Live,
               requested: str | None = None) -> Decision:
        rule = self.rules.get(task_type) if task_type else None
        if requested is not None:
            if requested not in ("local", "cloud"):
                raise RoutingError(f"backend {requested!r} is invalid; allowed: local, cloud")
            wanted, reason, rule_i = requested, "requested", None
            c = rule[2] if rule else (complexity if complexity is not None else 0.0)
        elif rule is not None:
            rule_i, wanted, c = rule
            reason = "rule"
        else:
            if complexity is None:
                complexity = 0.0
            c = complexity
            rule_i = None
            if c > self.threshold:
                wanted, reason = "cloud", "complexity_above_threshold"
            else:
                wanted, reason = "local", "complexity_below_threshold"
        backend = self._place(wanted, live)
        if backend is None:
            return Decision("none", "no_backend", wanted, c, task_type, rule_i)
        if backend[1] is not None:
            reason = backend[1]
        return Decision(backend[0], reason, wanted, c, task_type, rule_i)

    def _place(self, wanted: str, live: Live):
        """→ (backend, failover reason or None), or None when nothing can serve."""
        if wanted == "cloud":
            if live.cloud_ok:
                return ("cloud", None)
            why = live.cloud_problem
            if self.on_cloud_unreachable == "fail":
                return None
            local = self._local(live)
            if local is None:
                return None
            # cloud failed over to local; if local itself had to degrade, VRAM is the story
            return (local[0], why if local[1] is None else local[1])
        local = self._local(live)
        if local is not None:
            return local
        return None

    def _local(self, live: Live):
        if live.local_ok:
            return ("local", None)
        order = {"local_small": ("local_small", "cloud"), "cloud": ("cloud", "local_small"),
                 "fail": ()}[self.on_vram_exhausted]
        for b in order:
            if (b == "local_small" and live.small_ok) or (b == "cloud" and live.cloud_ok):
                return (b, "vram_exhausted")
        return None


def check_complexity(value) -> float | None:
    """A caller's complexity: None, or a number 0..1 (RoutingError otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RoutingError(f"complexity {value!r} is invalid; allowed: a number from 0 to 1")
    return float(value)


class RoutingStats:
    """Decisions since the last reset (for /routing/stats), plus monotonic totals (for
    Prometheus: a reset of the stats never makes a counter go backwards). Not locked: the
    increments are dict updates of small ints under the GIL, and a lost count in a race of
    two threads is acceptable for statistics."""

    def __init__(self, clock_wall, samples: int = 2048):
        self._wall = clock_wall
        self._n = samples
        self.totals: dict = {}          # (backend, reason) → n, never reset
        self.reset()

    def reset(self) -> dict:
        old = getattr(self, "count", 0)
        self.since = self._wall()
        self.count = 0
        self.by_pair: dict = {}
        self.by_task: dict = {}         # task_type → {backend: n}
        self.wanted_cloud = 0
        self.wanted_cloud_served_cloud = 0
        self._lat: list = []
        self._i = 0
        return {"reset": True, "decisions_cleared": old}

    def record(self, d: Decision, seconds: float) -> None:
        pair = (d.backend, d.reason)
        self.totals[pair] = self.totals.get(pair, 0) + 1
        self.by_pair[pair] = self.by_pair.get(pair, 0) + 1
        self.count += 1
        t = self.by_task.setdefault(d.task_type or "(none)", {})
        t[d.backend] = t.get(d.backend, 0) + 1
        if d.wanted == "cloud":
            self.wanted_cloud += 1
            if d.backend == "cloud":
                self.wanted_cloud_served_cloud += 1
        if len(self._lat) < self._n:
            self._lat.append(seconds)
        else:
            self._lat[self._i] = seconds
            self._i = (self._i + 1) % self._n

    def as_dict(self) -> dict:
        by_backend: dict = {}
        by_reason: dict = {}
        for (b, r), n in self.by_pair.items():
            by_backend[b] = by_backend.get(b, 0) + n
            by_reason[r] = by_reason.get(r, 0) + n
        lat = sorted(self._lat)
        p = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6, 1)) if lat \
            else (lambda q: None)
        return {
            "since": iso(self.since), "decisions": self.count,
            "by_backend": by_backend, "by_reason": by_reason,
            "by_task_type": self.by_task,
            "cloud_share": round(by_backend.get("cloud", 0) / self.count, 4) if self.count else None,
            "heavy_to_cloud": (round(self.wanted_cloud_served_cloud / self.wanted_cloud, 4)
                               if self.wanted_cloud else None),
            "decision_us": {"p50": p(0.5), "p95": p(0.95), "samples": len(lat)},
        }
