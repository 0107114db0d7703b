"""Which models are loaded, on a VRAM budget: admission, LRU eviction, idle unload.

    reg = ModelRegistry(catalog.models, limit_mb=4000, backend_for=make_backend)
    reg.load("phi3_mini")                 # reserve its VRAM estimate, then make it usable
    with reg.use("phi3_mini") as backend: # loads if needed; in use = never evicted
        backend.generate({...})
    reg.idle_sweep()                      # unload models idle past models.idle_timeout
    reg.cleanup()                         # unload every model not serving a request now
    reg.set_limit(2000)                   # live VRAM_LIMIT_MB; evicts idle LRU to fit

The budget: with a GPU, vram_budget_percentage of its memory, capped by VRAM_LIMIT_MB;
without one (or without NVML), VRAM_LIMIT_MB alone, and `budget()["source"]` says so.
Admission counts the catalog's VRAM estimate of every loaded (or loading) model: a model
that would exceed the budget first evicts idle models, least recently used first; if that
is not enough (models busy, or it is bigger than the whole budget) it is refused with the
numbers. Cloud models have no VRAM estimate (0) and only need their endpoint to answer.

Loading an OpenAI-compatible local server's model means checking the server answers; its
weights are the server's business, the registry books the estimate against the budget.

Thread-safe: one lock for the books; backend calls (network, model loading) run outside it.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from unified_core.timefmt import iso

from .llm_backends import Backend, BackendError

UNLOADED, LOADING, LOADED, FAILED = "unloaded", "loading", "loaded", "failed"
FAILED_HOLD_S = 30.0   # a model whose load failed is not offered to routing for this long


class Refused(Exception):
    """Admission refused (HTTP 409): str(e) says why with numbers; .fields for JSON."""

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.fields = fields


class LoadFailed(Exception):
    """The backend could not be made usable (HTTP 502/503)."""

    def __init__(self, message: str, kind: str = "unreachable"):
        super().__init__(message)
        self.kind = kind


class UnknownModel(LookupError):
    pass


class Entry:
    __slots__ = ("model", "state", "backend", "loaded_at", "last_used", "in_use", "reserved_mb",
                 "error", "failed_at", "loads", "load_failures", "evictions", "uses", "event",
                 "info")

    def __init__(self, model):
        self.model = model
        self.state = UNLOADED
        self.backend: Backend | None = None
        self.loaded_at = None        # time.time()
        self.last_used = 0.0         # clock()
        self.in_use = 0
        self.reserved_mb = 0
        self.error = ""
        self.failed_at = None
        self.loads = 0
        self.load_failures = 0
        self.evictions = 0
        self.uses = 0
        self.event: threading.Event | None = None
        self.info: dict = {}


class ModelRegistry:
    def __init__(self, models, *, limit_mb: int | None, backend_for, gpu_total_mb=None,
                 clock=time.monotonic, check_timeout: float = 5.0, log=None):
        """models: unified_core.model.Models. backend_for(model) → Backend. gpu_total_mb:
        callable → total VRAM in MB, or None when there is no GPU."""
        self.cfg = models
        self.idle_timeout_s = float(models.idle_timeout_s)
        self.percent = int(models.vram_budget_percentage)
        self._limit_mb = limit_mb
        self._gpu_total_mb = gpu_total_mb or (lambda: None)
        self._backend_for = backend_for
        self._clock = clock
        self.check_timeout = check_timeout
        self.log = log
        self._lock = threading.Lock()
        self.entries = {m.name: Entry(m) for m in models.declared}
        self.by_role: dict[str, str] = {}
        for m in models.declared:
            if m.role:
                self.by_role.setdefault(m.role, m.name)  # first declared model of a role
        # unloads by why: budget (evicted for another model), idle, cleanup, limit, request
        self.unloads = {"budget": 0, "idle": 0, "cleanup": 0, "limit": 0, "request": 0}
        self.refusals = 0

    # ------------------------------------------------------------ budget
    @property
    def limit_mb(self) -> int | None:
        return self._limit_mb

    def budget(self) -> dict:
        total = self._gpu_total_mb()
        limit = self._limit_mb
        if total is None:
            mb = limit if limit is not None else 0
            source = (f"VRAM_LIMIT_MB={limit} (no GPU: budget from VRAM_LIMIT_MB only)"
                      if limit is not None else "no GPU and no VRAM_LIMIT_MB: budget 0")
        else:
            share = int(total * self.percent / 100)
            mb = share if limit is None else min(share, limit)
            source = (f"{self.percent}% of {total} MB GPU memory"
                      + (f", capped by VRAM_LIMIT_MB={limit}" if limit is not None and limit < share
                         else ""))
        reserved = sum(e.reserved_mb for e in self.entries.values())
        return {"budget_mb": mb, "reserved_mb": reserved, "free_mb": mb - reserved,
                "limit_mb": limit, "gpu_total_mb": total, "percent": self.percent,
                "source": source, "over_budget": reserved > mb}

    def budget_mb(self) -> int:
        return self.budget()["budget_mb"]

    def set_limit(self, mb: int | None) -> dict:
        """A new VRAM_LIMIT_MB: evict idle models (LRU) until the loaded ones fit."""
        if mb is not None and (isinstance(mb, bool) or not isinstance(mb, int) or mb < 0):
            raise ValueError(f"VRAM limit {mb!r} is invalid; allowed: an integer >= 0 (MB)")
        self._limit_mb = mb
        return self.enforce("limit")

    def enforce(self, why: str = "limit") -> dict:
        """Evict idle models, least recently used first, while over budget."""
        victims = []
        with self._lock:
            budget = self.budget_mb()
            reserved = sum(e.reserved_mb for e in self.entries.values())
            for e in self._idle_lru():
                if reserved <= budget:
                    break
                reserved -= e.reserved_mb
                victims.append(self._evict_locked(e, why))
        freed = self._release(victims)
        return {"evicted": [v[0] for v in victims], "freed_mb": freed,
                "over_budget_mb": max(0, reserved - budget)}

    # ------------------------------------------------------------ load / unload
    def _entry(self, name: str) -> Entry:
        e = self.entries.get(name)
        if e is None:
            raise UnknownModel(f"unknown model {name!r}; declared: "
                               + (", ".join(self.entries) or "none (catalog models.declared)"))
        return e

    def _idle_lru(self):
        return sorted((e for e in self.entries.values()
                       if e.state == LOADED and e.in_use == 0 and e.reserved_mb > 0),
                      key=lambda e: e.last_used)

    def _evict_locked(self, e: Entry, why: str):
        backend, freed = e.backend, e.reserved_mb
        e.state, e.backend, e.reserved_mb, e.loaded_at = UNLOADED, None, 0, None
        e.evictions += 1
        self.unloads[why] = self.unloads.get(why, 0) + 1
        return (e.model.name, backend, freed, why)

    def _release(self, victims) -> int:
        """Backend unloads, outside the lock. → MB freed."""
        freed = 0
        for name, backend, mb, why in victims:
            freed += mb
            if backend is not None:
                try:
                    backend.unload()
                except Exception as ex:  # an unload must never wedge the books
                    if self.log:
                        self.log.warning("model unload failed", model=name, error=str(ex))
            if self.log:
                self.log.info("model unloaded", model=name, reason=why, freed_mb=mb)
        return freed

    def load(self, name: str) -> dict:
        """Make NAME usable. Refused (budget), LoadFailed (backend), UnknownModel."""
        e = self._entry(name)
        while True:
            with self._lock:
                if e.state == LOADED:
                    e.last_used = self._clock()
                    return self.describe(name)
                if e.state != LOADING:
                    victims = self._admit_locked(e)
                    event = threading.Event()
                    e.state, e.reserved_mb, e.event = LOADING, e.model.vram_mb, event
                    break
                assert e.event is not None  # LOADING: the loading thread set it
                event = e.event
            event.wait(self.check_timeout + 5)  # another thread is loading it: share its outcome
            if e.state == FAILED:
                raise LoadFailed(e.error)
        self._release(victims)
        try:
            backend = self._backend_for(e.model)
            info = backend.check(self.check_timeout)
        except BackendError as ex:
            self._fail(e, str(ex))
            raise LoadFailed(f"model {name}: {ex}", ex.kind) from None
        except Exception as ex:  # an in-process model's own bug: a failed load, not a crash
            self._fail(e, f"{type(ex).__name__}: {ex}")
            raise LoadFailed(f"model {name}: {type(ex).__name__}: {ex}", "rejected") from None
        with self._lock:
            e.state, e.backend, e.error, e.failed_at = LOADED, backend, "", None
            e.loaded_at, e.last_used = time.time(), self._clock()
            e.loads += 1
            e.info = info or {}
            event.set()
        if self.log:
            self.log.info("model loaded", model=name, vram_mb=e.model.vram_mb,
                          evicted=[v[0] for v in victims])
        return self.describe(name)

    def _admit_locked(self, e: Entry):
        need = e.model.vram_mb
        b = self.budget()
        if need > b["budget_mb"]:
            self.refusals += 1
            raise Refused(f"model {e.model.name} needs {need} MB of VRAM, more than the whole "
                          f"budget of {b['budget_mb']} MB ({b['source']})",
                          need_mb=need, budget_mb=b["budget_mb"])
        free = b["free_mb"]
        victims = []
        for v in self._idle_lru():
            if free >= need:
                break
            free += v.reserved_mb
            victims.append(v)
        if free < need:
            self.refusals += 1
            busy = [x.model.name for x in self.entries.values() if x.reserved_mb and x.in_use]
            raise Refused(f"model {e.model.name} needs {need} MB of VRAM; {b['free_mb']} MB of "
                          f"the {b['budget_mb']} MB budget are free and only {free - b['free_mb']}"
                          f" MB can be freed by unloading idle models"
                          + (f" (busy: {', '.join(busy)})" if busy else ""),
                          need_mb=need, budget_mb=b["budget_mb"], free_mb=b["free_mb"], busy=busy)
        return [self._evict_locked(v, "budget") for v in victims]

    def _fail(self, e: Entry, error: str) -> None:
        with self._lock:
            e.state, e.reserved_mb, e.backend = FAILED, 0, None
            e.error, e.failed_at = error, self._clock()
            e.load_failures += 1
            if e.event is not None:
                e.event.set()
        if self.log:
            self.log.warning("model load failed", model=e.model.name, error=error)

    def unload(self, name: str, force: bool = False) -> dict:
        e = self._entry(name)
        with self._lock:
            if e.state != LOADED:
                return {"model": name, "unloaded": False, "state": e.state, "freed_mb": 0}
            if e.in_use and not force:
                raise Refused(f"model {name} is serving {e.in_use} request(s); retry, or "
                              "?force=true to unload anyway", in_use=e.in_use)
            victim = self._evict_locked(e, "request")
        return {"model": name, "unloaded": True, "state": UNLOADED,
                "freed_mb": self._release([victim])}

    @contextmanager
    def use(self, name: str):
        """Load if needed and hold NAME in use (never evicted meanwhile). Yields its backend."""
        e = self._entry(name)
        for _ in range(3):  # an eviction between load() and the hold: load again
            self.load(name)
            with self._lock:
                if e.state == LOADED:
                    e.in_use += 1
                    e.uses += 1
                    backend = e.backend
                    break
        else:
            raise LoadFailed(f"model {name} was unloaded repeatedly while being acquired")
        try:
            yield backend
        finally:
            with self._lock:
                e.in_use -= 1
                e.last_used = self._clock()

    def idle_sweep(self) -> list[str]:
        """Unload models unused for longer than models.idle_timeout."""
        now = self._clock()
        with self._lock:
            victims = [self._evict_locked(e, "idle") for e in self._idle_lru()
                       if now - e.last_used >= self.idle_timeout_s]
            # cloud models (0 MB) go idle too: nothing to free, but their state is honest
            victims += [self._evict_locked(e, "idle") for e in self.entries.values()
                        if e.state == LOADED and e.in_use == 0 and e.reserved_mb == 0
                        and now - e.last_used >= self.idle_timeout_s]
        self._release(victims)
        return [v[0] for v in victims]

    def cleanup(self, min_idle_s: float = 0.0) -> dict:
        """Unload every loaded model not serving a request (and idle ≥ min_idle_s)."""
        now = self._clock()
        with self._lock:
            victims = [self._evict_locked(e, "cleanup") for e in self.entries.values()
                       if e.state == LOADED and e.in_use == 0 and now - e.last_used >= min_idle_s]
            busy = [e.model.name for e in self.entries.values() if e.state == LOADED]
        freed = self._release(victims)
        return {"unloaded": [v[0] for v in victims], "freed_mb": freed, "kept_busy": busy}

    # ------------------------------------------------------------ routing view
    def usable(self, name: str | None) -> bool:
        """Loaded, or loadable now: fits the budget after evicting idle models, and not a
        fresh load failure (a dead server is not offered again for FAILED_HOLD_S)."""
        if name is None:
            return False
        e = self.entries[name]
        if e.state == LOADED or e.state == LOADING:
            return True
        if e.state == FAILED and self._clock() - (e.failed_at or 0) < FAILED_HOLD_S:
            return False
        b = self.budget()
        evictable = sum(x.reserved_mb for x in self._idle_lru())
        return e.model.vram_mb <= b["free_mb"] + evictable

    # ------------------------------------------------------------ views
    def describe(self, name: str) -> dict:
        e = self._entry(name)
        m = e.model
        d = {"name": m.name, "backend": m.backend, "role": m.role or None, "vram_mb": m.vram_mb,
             "endpoint": m.endpoint or None, "path": m.path or None, "state": e.state,
             "reserved_mb": e.reserved_mb, "in_use": e.in_use, "loads": e.loads,
             "load_failures": e.load_failures, "evictions": e.evictions, "uses": e.uses,
             "loaded_at": iso(e.loaded_at),
             "idle_s": round(self._clock() - e.last_used, 1) if e.state == LOADED else None,
             "error": e.error or None}
        if e.info:
            d["info"] = e.info
        return d

    def list(self) -> list[dict]:
        return [self.describe(n) for n in self.entries]


class LimitStore:
    """A live VRAM limit (POST /vram/limit) that survives restarts and kill -9.

    The environment's VRAM_LIMIT_MB is the configured value (`VRAM_LIMIT_MB=2000 unified-ctl
    profile switch core` writes it). A live change is stored with the environment value it
    overrode; when the agent starts with a different VRAM_LIMIT_MB, the operator changed the
    configuration since, so the newer configuration wins and the stale override is dropped.
    Written with write-temp + fsync + rename + fsync(dir): an acknowledged change is on disk.
    """

    def __init__(self, path: str | None, env_mb: int | None, wall=time.time):
        self.path = path
        self.env_mb = env_mb
        self._wall = wall

    def effective(self) -> tuple[int | None, str]:
        import json
        import os

        if self.path:
            try:
                with open(self.path, encoding="utf-8") as f:
                    d = json.load(f)
                if d.get("env_mb") == self.env_mb and (d.get("mb") is None or (
                        isinstance(d.get("mb"), int) and d["mb"] >= 0)):
                    return d.get("mb"), f"live override (POST /vram/limit at {d.get('at')})"
                os.unlink(self.path)  # VRAM_LIMIT_MB changed since: the configuration wins
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError):
                pass  # unreadable or corrupt: fall back to the environment
        return self.env_mb, "VRAM_LIMIT_MB" if self.env_mb is not None else "unset"

    def set(self, mb: int | None) -> str:
        """Persist a live limit; None returns to VRAM_LIMIT_MB. → the source string."""
        import json
        import os

        if not self.path:
            return "live override (not persisted: no STATE_DIRECTORY)"
        if mb is None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return "VRAM_LIMIT_MB"
        at = iso(self._wall())
        tmp = f"{self.path}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"mb": mb, "env_mb": self.env_mb, "at": at}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return f"live override (POST /vram/limit at {at})"
