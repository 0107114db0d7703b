"""VRAMOptimizerAgent (5572/6572): watches and enforces the VRAM budget; VRAM cleanup.

    POST /vram/cleanup       (runbook) unload every model not serving a request (through
                             ModelManagerSuite) and ask active GPU agents to release caches
                             (POST /cache/release on their agent port); reports bytes freed
    GET  /vram               used / budget / limit / exhausted, per GPU and per agent
    POST /vram/limit {"mb": N}   live VRAM_LIMIT_MB (ModelManagerSuite owns and persists it;
                             {"mb": null} returns to the configured VRAM_LIMIT_MB)
    POST /task vram_management {"action": "status" | "cleanup" | "limit", "mb": N}
Health port /metrics, for the hub's VRAMExhaustion alert:
    unified_vram_used_bytes, unified_vram_budget_bytes, unified_vram_limit_bytes,
    unified_vram_exhausted (1 when used >= VRAM_EXHAUSTED_RATIO (0.95) x budget),
    unified_vram_gpu_available, unified_vram_cleanups_total, unified_vram_freed_bytes_total,
    unified_vram_enforcements_total

Where the numbers come from: with a GPU, `used` is what NVML reports (all processes), the
budget is ModelManagerSuite's (vram_budget_percentage of the GPU, capped by VRAM_LIMIT_MB);
without one, `used` is the VRAM booked by loaded models (catalog estimates) and the budget
VRAM_LIMIT_MB, and /vram says so ("source"). Every VRAM_OPTIMIZER_INTERVAL_S (5) it
re-reads both; when used exceeds the budget it enforces: models idle for
VRAM_OPTIMIZER_ENFORCE_IDLE_S (60) are unloaded (ModelManagerSuite evicts LRU first).

Asking agents to release caches: the SDK has no such hook yet, so an agent opts in by
serving POST /cache/release ({"freed_bytes": N} in its answer). Agents without it answer
404 and are listed as "unsupported". Only ACTIVE agents are asked (from ServiceRegistry):
connecting to a dormant agent's port would start it.
"""
from __future__ import annotations

import threading
import time

from unified_agents import Agent, HTTPError, route
from unified_agents.client import AgentCallError, Client, post_json
from unified_agents.validate import object_body, vram_limit_mb

MB = 1 << 20


class VRAMOptimizerAgent(Agent):
    def on_start(self) -> None:
        from unified_agents.gpu import GpuPoller
        from unified_agents.registry_client import RegistryClient
        from unified_core.catalog import load_catalog
        from unified_core.fleetview import connect_host

        env = self.config.env
        cat = load_catalog(self.config.catalog, env={})
        mm = cat.agents.get("ModelManagerSuite")
        host = connect_host(cat.settings.bind_address)
        default = f"http://{host}:{mm.port}" if mm else "http://127.0.0.1:7211"
        self.mm = Client(env.string("MODEL_MANAGER_URL", default), timeout=5.0)
        self.registry = RegistryClient(timeout=2.0, catalog=self.config.catalog)
        self.vram_agents = {a.name for a in cat.agents.values() if a.resources.vram_mb > 0}
        self.ratio = env.number("VRAM_EXHAUSTED_RATIO", 0.95, 0.01, 1.0)
        self.interval = env.number("VRAM_OPTIMIZER_INTERVAL_S", 5.0, 0.1)
        self.enforce_idle_s = env.number("VRAM_OPTIMIZER_ENFORCE_IDLE_S", 60.0, 0.0)
        self.release_timeout = env.number("VRAM_OPTIMIZER_RELEASE_TIMEOUT_S", 5.0, 0.1)
        self.gpu = GpuPoller(min(self.interval, 5.0), log=self.log)
        self.gpu.poll_once()
        self.gpu.start()
        self.counters = {"cleanups": 0, "freed_bytes": 0, "enforcements": 0}
        self.view: dict = {  # what refresh() last read (values of several types)
            "used_bytes": None, "budget_bytes": None, "limit_mb": self.config.vram_limit_mb,
            "exhausted": False, "source": "not read yet", "model_manager": None}
        self._lock = threading.Lock()   # one cleanup/enforcement at a time
        self._stop = threading.Event()
        # The first read happens on the watcher thread: ModelManagerSuite may still be
        # starting, and READY=1 must not wait for it.
        threading.Thread(target=self._loop, name="vram-watch", daemon=True).start()

    def on_stop(self) -> None:
        self._stop.set()
        self.gpu.stop()

    # ------------------------------------------------------------ the numbers
    def refresh(self) -> dict:
        """Re-read ModelManagerSuite's budget and the GPU; → the view."""
        mm_error = None
        try:
            b = self.mm.get_json("/vram")
        except AgentCallError as e:
            b, mm_error = None, str(e)
        snap = self.gpu.latest()
        limit = b["limit_mb"] if b else self.config.vram_limit_mb
        if b is not None:
            budget = b["budget_mb"] * MB
        elif snap is not None:
            budget = snap.total_bytes if limit is None else min(limit * MB, snap.total_bytes)
        else:
            budget = (limit or 0) * MB
        if snap is not None:
            used = snap.used_bytes
            source = (f"NVML: {len(snap.gpus)} GPU(s); budget from ModelManagerSuite "
                      f"({b['source']})" if b else "NVML; ModelManagerSuite unreachable: "
                      "budget from VRAM_LIMIT_MB")
        elif b is not None:
            used = b["reserved_mb"] * MB
            source = (f"no GPU ({self.gpu.reason}): used = VRAM booked by loaded models, "
                      f"budget = {b['source']}")
        else:
            used = None
            source = f"no GPU ({self.gpu.reason}) and ModelManagerSuite unreachable"
        view = {
            "used_bytes": used, "budget_bytes": budget, "limit_mb": limit,
            "free_bytes": None if used is None else budget - used,
            "exhausted": used is not None and budget >= 0 and used >= self.ratio * budget
            and (budget > 0 or used > 0),
            "exhausted_ratio": self.ratio, "source": source,
            "gpu": self.gpu.status(),
            "model_manager": {"reachable": b is not None, "error": mm_error,
                              "reserved_mb": b["reserved_mb"] if b else None,
                              "limit_source": b.get("limit_source") if b else None},
            "by_agent": snap.by_agent() if snap is not None else {},
            "checked_at": time.time(),
        }
        self.view = view
        return view

    def _loop(self) -> None:
        first = True
        while first or not self._stop.wait(self.interval):
            first = False
            try:
                v = self.refresh()
                if v["used_bytes"] is not None and v["used_bytes"] > v["budget_bytes"]:
                    self.enforce(v)
            except Exception as e:  # never let the watcher die
                self.log.exception("VRAM watch failed", e)

    def enforce(self, v: dict) -> dict | None:
        """Over budget: unload models idle for enforce_idle_s (LRU first, by the manager)."""
        if not self._lock.acquire(blocking=False):
            return None  # a cleanup is running: it frees more than we would
        try:
            self.counters["enforcements"] += 1
            out = self.mm.post_json("/models/cleanup", {"idle_s": self.enforce_idle_s})
            # every interval while over budget: say it when something changed, not each time
            (self.log.warning if out.get("unloaded") else self.log.debug)(
                "VRAM over budget: unloaded models idle long enough",
                used_mb=v["used_bytes"] // MB, budget_mb=v["budget_bytes"] // MB,
                unloaded=out.get("unloaded"), freed_mb=out.get("freed_mb"))
            return out
        except AgentCallError as e:
            self.log.error("VRAM over budget and ModelManagerSuite cannot be asked", error=str(e))
            return None
        finally:
            self._lock.release()

    # ------------------------------------------------------------ cleanup
    def _active_gpu_agents(self) -> tuple[list[dict], str | None]:
        """Active agents that hold (or may hold) VRAM: declared vram_mb > 0, or seen by NVML."""
        snap = self.gpu.latest()
        on_gpu = set(snap.by_agent()) if snap is not None else set()
        try:
            rows = self.registry.agents(state="active", health=False)
        except Exception as e:  # registry down: models are still cleaned up
            return [], f"ServiceRegistry unreachable ({e}); no agent was asked"
        me = {self.config.name, "ModelManagerSuite"}
        return [r for r in rows if r["name"] not in me
                and (r["name"] in self.vram_agents or r["name"] in on_gpu)], None

    def _release(self, agent: dict) -> dict:
        url = agent["url"] + "/cache/release"
        try:
            out = post_json(url, {}, timeout=self.release_timeout)
        except AgentCallError as e:
            if e.status in (404, 405, 501):
                return {"status": "unsupported", "freed_bytes": 0}
            return {"status": "error", "error": str(e)[:300], "freed_bytes": 0}
        freed = out.get("freed_bytes", 0) if isinstance(out, dict) else 0
        freed = freed if isinstance(freed, int) and freed >= 0 else 0
        return {"status": "released", "freed_bytes": freed}

    def cleanup(self) -> dict:
        with self._lock:
            t0 = time.monotonic()
            before = self.gpu.poll_once() if self.gpu.available else None
            try:
                mm = self.mm.post_json("/models/cleanup", {})
                models = {"unloaded": mm.get("unloaded", []), "freed_bytes": mm.get("freed_mb", 0)
                          * MB, "kept_busy": mm.get("kept_busy", [])}
            except AgentCallError as e:
                models = {"error": str(e)[:300], "unloaded": [], "freed_bytes": 0}
            targets, why = self._active_gpu_agents()
            agents = {}
            if targets:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(min(8, len(targets))) as pool:
                    for a, r in zip(targets, pool.map(self._release, targets)):
                        agents[a["name"]] = r
            reported = models["freed_bytes"] + sum(r["freed_bytes"] for r in agents.values())
            if before is not None:
                time.sleep(0.5)  # the driver frees asynchronously after a process lets go
                after = self.gpu.poll_once()
                measured = max(0, before.used_bytes - after.used_bytes) if after else None
            else:
                measured = None
            freed = measured if measured is not None else reported
            self.counters["cleanups"] += 1
            self.counters["freed_bytes"] += freed
            out = {"freed_bytes": freed, "freed_mb": round(freed / MB, 1),
                   "method": "nvml" if measured is not None else
                   "estimate (no GPU: catalog VRAM of unloaded models + what agents reported)",
                   "reported_bytes": reported, "models": models, "agents": agents,
                   "took_ms": round((time.monotonic() - t0) * 1000, 1)}
            if why:
                out["agents_note"] = why
        self.log.info("VRAM cleanup", freed_mb=out["freed_mb"], method=out["method"],
                      models_unloaded=models["unloaded"],
                      agents_released=[n for n, r in agents.items() if r["status"] == "released"])
        out["vram"] = self.refresh()
        return out

    # ------------------------------------------------------------ HTTP
    @route("POST", "/vram/cleanup", mutating=True)
    def vram_cleanup(self, request):
        return self.cleanup()

    @route("GET", "/vram")
    def vram(self, request):
        return self.refresh()

    @route("POST", "/vram/limit", mutating=True)
    def vram_limit(self, request):
        return self._limit(object_body(request))

    def _limit(self, body: dict):
        mb = vram_limit_mb(body)
        try:
            out = self.mm.post_json("/vram/limit", {"mb": mb})
        except AgentCallError as e:
            raise HTTPError(502, f"ModelManagerSuite owns the VRAM limit and could not be "
                                 f"asked: {e}") from None
        out["vram"] = self.refresh()
        return out

    def handle_task(self, task: dict):
        data = task.get("data")
        if not isinstance(data, dict):
            data = {}
        action = data.get("action", "status")
        if action == "status":
            return self.refresh()
        if action in ("cleanup", "limit"):
            self.authorize()  # the same rule as POST /vram/cleanup and /vram/limit
        if action == "cleanup":
            return self.cleanup()
        if action == "limit":
            return self._limit(data)
        raise HTTPError(400, f"action {action!r} is invalid; allowed: status, cleanup, limit")

    # ------------------------------------------------------------ health and metrics
    def health_checks(self) -> dict:
        v = self.view
        mm = v["model_manager"] or {}
        return {
            "vram": {"status": "degraded" if v["exhausted"] else "ok",
                     "used_mb": None if v["used_bytes"] is None else v["used_bytes"] // MB,
                     "budget_mb": (v["budget_bytes"] or 0) // MB, "source": v["source"]},
            "model_manager": {"status": "ok" if mm.get("reachable") else "degraded",
                              "error": mm.get("error")},
        }

    def health_info(self) -> dict:
        return {"gpu": self.gpu.status()}

    def metrics_text(self) -> str:
        v = self.view
        lines = []

        def gauge(name, value, help_):
            if value is not None:
                lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value}"])

        def counter(name, value, help_):
            lines.extend([f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name} {value}"])

        gauge("unified_vram_used_bytes", v["used_bytes"],
              "VRAM in use: NVML with a GPU, else VRAM booked by loaded models.")
        gauge("unified_vram_budget_bytes", v["budget_bytes"], "VRAM budget of the system.")
        gauge("unified_vram_limit_bytes", None if v["limit_mb"] is None else v["limit_mb"] * MB,
              "VRAM_LIMIT_MB, the live value (the catalog's: the hub's "
              "unified_vram_configured_limit_bytes).")
        gauge("unified_vram_exhausted", 1 if v["exhausted"] else 0,
              "1 when used >= VRAM_EXHAUSTED_RATIO x budget (VRAMExhaustion).")
        gauge("unified_vram_gpu_available", 1 if self.gpu.available else 0,
              "1 when NVML reads a GPU.")
        counter("unified_vram_cleanups_total", self.counters["cleanups"], "VRAM cleanups run.")
        counter("unified_vram_freed_bytes_total", self.counters["freed_bytes"],
                "VRAM freed by cleanups (measured with a GPU, estimated without).")
        counter("unified_vram_enforcements_total", self.counters["enforcements"],
                "Budget enforcements (over budget: idle models unloaded).")
        return "\n".join(lines) + "\n"


AGENT = VRAMOptimizerAgent
