"""ModelManagerSuite (7211/8211): models on a VRAM budget and hybrid local/cloud LLM routing.

Agent port:
    GET  /models                        budget + every declared model and its state
    GET  /models/NAME
    POST /models/NAME/load              409: refused by the budget (why, with numbers);
                                        502: the backend does not answer
    POST /models/NAME/unload[?force=true]
    POST /models/cleanup                unload models not serving a request ({"idle_s": N})
    POST /route                         {"task_type", "complexity", "prompt"|"messages",
                                         "max_tokens", "backend"} → the decision and why
    POST /generate                      route, load, call the backend (failover on error)
    GET  /routing/stats  POST /routing/reset           (runbook)
    POST /cache/clear                                   (runbook: the generation cache)
    GET  /vram           POST /vram/limit {"mb": N}     ({"mb": null}: back to VRAM_LIMIT_MB)
    POST /task  model_management {"action": "list"|"load"|"unload", "model"} | llm_generate
Health port /metrics: unified_llm_routing_decisions_total{backend,reason} (runbook's PromQL;
the old name llm_routing_decisions_total is kept by a recording rule), model and VRAM gauges.

Catalog: `routing` (rules, threshold, failover), `models` (declared, vram_budget_percentage,
idle_timeout). Environment: VRAM_LIMIT_MB; CLOUD_LLM_ENDPOINT / CLOUD_LLM_API_KEY /
CLOUD_LLM_MODEL override the cloud model (the key better as a systemd credential
`cloud_llm_api_key`, read from $CREDENTIALS_DIRECTORY); MODEL_MANAGER_CLOUD_PROBE_S (30),
MODEL_MANAGER_CHECK_TIMEOUT_S (5), MODEL_MANAGER_GENERATE_TIMEOUT_S (120),
MODEL_MANAGER_GPU_POLL_S (5),
MODEL_MANAGER_CACHE_ENTRIES (256).

Cloud usability = the last probe (GET {endpoint}/models every MODEL_MANAGER_CLOUD_PROBE_S)
did not fail AND the cloud breaker (3 consecutive failed generations) is not open.
Known gap: a catalog change of `models`/`routing` is picked up at the next start of this
agent (`systemctl restart unified-agent@ModelManagerSuite`).
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict

from unified_agents import Agent, HTTPError, route
from unified_agents.breaker import OPEN, STATE_VALUE, Breaker, BreakerOpen
from unified_agents.llm_backends import BackendError, OpenAIBackend, load_inprocess
from unified_agents.model_registry import (LimitStore, LoadFailed, ModelRegistry, Refused,
                                           UnknownModel)
from unified_agents.routing import (Live, Router, RoutingError, RoutingStats, check_complexity,
                                    estimate_complexity)
from unified_agents.validate import object_body, vram_limit_mb

MB = 1 << 20
ROLE_OF = {"local": "local", "local_small": "local_small", "cloud": "cloud"}


class GenCache:
    """Answers of deterministic requests (temperature 0), LRU, bounded in entries."""

    def __init__(self, entries: int):
        self.max = entries
        self.data: OrderedDict = OrderedDict()
        self.lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(model: str, req: dict):
        if req.get("temperature") != 0:
            return None
        return json.dumps([model, req.get("messages"), req.get("prompt"), req.get("max_tokens"),
                           req.get("stop")], sort_keys=True, default=str)

    def get(self, key):
        if key is None or self.max == 0:
            return None
        with self.lock:
            v = self.data.get(key)
            if v is None:
                self.misses += 1
                return None
            self.data.move_to_end(key)
            self.hits += 1
            return v

    def put(self, key, value) -> None:
        if key is None or self.max == 0:
            return
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.max:
                self.data.popitem(last=False)

    def clear(self) -> dict:
        with self.lock:
            n = len(self.data)
            size = sum(len(k) + len(json.dumps(v, default=str)) for k, v in self.data.items())
            self.data.clear()
        return {"cleared": True, "entries": n, "bytes": size}


class CloudProbe:
    """Is the cloud endpoint answering? Probed on a timer (never on a request path)."""

    def __init__(self, backend: OpenAIBackend | None, interval_s: float, timeout_s: float, log):
        self.backend = backend
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.log = log
        self.reachable: bool | None = None   # None: not probed yet (optimistic)
        self.error = ""
        self.checked_at: float | None = None
        self._stop = threading.Event()

    def probe(self) -> None:
        if self.backend is None:
            return
        try:
            self.backend.check(self.timeout_s)
            ok, err = True, ""
        except BackendError as e:
            ok, err = False, str(e)
        if ok != self.reachable and self.log:
            (self.log.info if ok else self.log.warning)(
                "cloud LLM " + ("reachable" if ok else "unreachable"), error=err or None)
        self.reachable, self.error, self.checked_at = ok, err, time.time()

    def start(self) -> None:
        if self.backend is None:
            return

        def loop():
            while not self._stop.is_set():
                self.probe()
                self._stop.wait(self.interval_s)
        threading.Thread(target=loop, name="cloud-probe", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


class ModelManagerSuite(Agent):
    def on_start(self) -> None:
        from unified_core.catalog import load_catalog

        env = self.config.env
        cat = load_catalog(self.config.catalog, env={})
        self.router = Router(cat.routing)
        self.routing_cfg = cat.routing
        state_dir = self.config.state_directory
        self.limits = LimitStore(os.path.join(state_dir, "model_manager_vram_limit.json") if state_dir else None,
                                 self.config.vram_limit_mb)
        limit, self.limit_source = self.limits.effective()
        self.gen_timeout = env.number("MODEL_MANAGER_GENERATE_TIMEOUT_S", 120.0, 1.0)
        self.cloud_override = {k: env.string(f"CLOUD_LLM_{k.upper()}")
                               for k in ("endpoint", "api_key", "model")}
        if not self.cloud_override["api_key"]:
            self.cloud_override["api_key"] = self._credential("cloud_llm_api_key")

        from unified_agents.gpu import GpuPoller
        self.gpu = GpuPoller(env.number("MODEL_MANAGER_GPU_POLL_S", 5.0, 0.1), log=self.log)
        self.gpu.poll_once()       # the budget needs to know now whether there is a GPU
        self.gpu.start()
        self.registry = ModelRegistry(
            cat.models, limit_mb=limit, backend_for=self._backend_for, gpu_total_mb=self._gpu_mb,
            check_timeout=env.number("MODEL_MANAGER_CHECK_TIMEOUT_S", 5.0, 0.1), log=self.log)
        cloud = self.registry.by_role.get("cloud")
        self.cloud = CloudProbe(self._backend_for(self.registry.entries[cloud].model)
                                if cloud else None,
                                env.number("MODEL_MANAGER_CLOUD_PROBE_S", 30.0, 1.0), 3.0, self.log)
        self.breaker = Breaker("cloud_llm", failure_threshold=3, reset_timeout=30.0)
        self.cache = GenCache(env.integer("MODEL_MANAGER_CACHE_ENTRIES", 256, 0))
        self.stats = RoutingStats(time.time)
        self.gen_counts: dict = {}
        self.cloud.start()
        self._stop = threading.Event()
        threading.Thread(target=self._sweeper, name="idle-sweep", daemon=True).start()
        self.log.info("model manager ready", models=len(self.registry.entries),
                      budget_mb=self.registry.budget_mb(), limit_source=self.limit_source,
                      gpu=self.gpu.reason)

    def on_stop(self) -> None:
        self._stop.set()
        self.cloud.stop()
        self.gpu.stop()

    # ------------------------------------------------------------ plumbing
    def _credential(self, name: str) -> str | None:
        """A secret from systemd's credentials (LoadCredential=cloud_llm_api_key:/path): the
        key stays out of the catalog and of the unit's Environment= (world-readable)."""
        d = self.config.env.string("CREDENTIALS_DIRECTORY")
        if not d:
            return None
        try:
            with open(os.path.join(d, name), encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None

    def _gpu_mb(self):
        snap = self.gpu.latest()
        return snap.total_bytes // MB if snap is not None else None

    def _backend_for(self, model):
        if model.backend == "inprocess":
            return load_inprocess(model)
        endpoint, key, name = model.endpoint, None, None
        if model.role == "cloud":
            endpoint = self.cloud_override["endpoint"] or endpoint
            key, name = self.cloud_override["api_key"], self.cloud_override["model"]
        return OpenAIBackend(endpoint, model=name, api_key=key, timeout=self.gen_timeout)

    def _sweeper(self) -> None:
        every = max(1.0, min(30.0, self.registry.idle_timeout_s / 4))
        while not self._stop.wait(every):
            try:
                self.registry.idle_sweep()
            except Exception as e:  # never let the sweeper die
                self.log.exception("idle sweep failed", e)

    def live(self) -> Live:
        reg = self.registry
        cloud = reg.by_role.get("cloud")
        br_open = self.breaker.state == OPEN
        cloud_ok = cloud is not None and self.cloud.reachable is not False and not br_open
        return Live(cloud_ok, reg.usable(reg.by_role.get("local")),
                    reg.usable(reg.by_role.get("local_small")),
                    "breaker_open" if br_open else "cloud_unreachable")

    def decide(self, body: dict):
        task_type = body.get("task_type", body.get("type"))
        if task_type is not None and not isinstance(task_type, str):
            raise HTTPError(400, f"task_type {task_type!r} is invalid; allowed: a string")
        try:
            complexity = check_complexity(body.get("complexity"))
            if complexity is None and task_type not in self.router.rules:
                text = body.get("prompt") or ""
                if isinstance(body.get("messages"), list):
                    text = "".join(str(m.get("content", "")) for m in body["messages"]
                                   if isinstance(m, dict))
                mt = body.get("max_tokens") or 0
                complexity = estimate_complexity(len(str(text)), mt if isinstance(mt, int) else 0)
            t0 = time.perf_counter()
            d = self.router.decide(task_type, complexity, self.live(), body.get("backend"))
            self.stats.record(d, time.perf_counter() - t0)
        except RoutingError as e:
            raise HTTPError(400, str(e)) from None
        return d

    def _model_for(self, backend: str) -> str | None:
        return self.registry.by_role.get(ROLE_OF.get(backend, ""))

    # ------------------------------------------------------------ models
    @route("GET", "/models")
    def models(self, request):
        return {"budget": self._budget(), "models": self.registry.list()}

    @route("GET", "/models/{name}")
    def model(self, request):
        try:
            return self.registry.describe(request.params["name"])
        except UnknownModel as e:
            raise HTTPError(404, str(e)) from None

    @route("POST", "/models/{name}/load", mutating=True)
    def load(self, request):
        return self._load(request.params["name"])

    def _load(self, name: str):
        try:
            return self.registry.load(name)
        except UnknownModel as e:
            raise HTTPError(404, str(e)) from None
        except Refused as e:
            raise HTTPError(409, str(e), **e.fields) from None
        except LoadFailed as e:
            raise HTTPError(502 if e.kind != "rejected" else 422, str(e)) from None

    @route("POST", "/models/{name}/unload", mutating=True)
    def unload(self, request):
        force = request.query.get("force", "").lower() in ("1", "true", "yes")
        return self._unload(request.params["name"], force)

    def _unload(self, name: str, force: bool = False):
        try:
            return self.registry.unload(name, force)
        except UnknownModel as e:
            raise HTTPError(404, str(e)) from None
        except Refused as e:
            raise HTTPError(409, str(e), **e.fields) from None

    @route("POST", "/models/cleanup", mutating=True)
    def cleanup(self, request):
        idle = object_body(request).get("idle_s", 0)
        if isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle < 0:
            raise HTTPError(400, f"idle_s {idle!r} is invalid; allowed: seconds >= 0")
        out = self.registry.cleanup(float(idle))
        out["freed_bytes"] = out["freed_mb"] * MB
        out["budget"] = self._budget()
        return out

    # ------------------------------------------------------------ routing
    @route("POST", "/route")
    def route_(self, request):
        body = object_body(request)
        d = self.decide(body)
        out = d.as_dict()
        out["model"] = self._model_for(d.backend)
        out["live"] = self.live().as_dict()
        return out

    @route("POST", "/generate")
    def generate(self, request):
        return self._generate(object_body(request))

    def _generate(self, body: dict):
        if not isinstance(body.get("messages"), list) and not isinstance(body.get("prompt"), str):
            raise HTTPError(400, 'generate needs "prompt": "..." or "messages": [...]')
        d = self.decide(body)
        tried: list[str] = []  # "model: why" of each failed backend
        while True:
            model = self._model_for(d.backend)
            if d.backend == "none" or model is None:
                self._count("none", "no_backend")
                raise HTTPError(503, f"no backend can serve this request now ({d.reason}; "
                                     f"tried: {', '.join(tried) or 'nothing'})",
                                decision=d.as_dict(), live=self.live().as_dict())
            try:
                result = self._call(model, d.backend, body)
                self._count(d.backend, "ok")
                result.update({"backend": d.backend, "model": model, "reason": d.reason,
                               "wanted": d.wanted, "task_type": d.task_type})
                return result
            except (BackendError, LoadFailed, BreakerOpen, Refused) as e:
                self._count(d.backend, "error")
                tried.append(f"{model}: {e}")
                if d.backend != "cloud" or self.routing_cfg.cloud_unreachable != "local":
                    raise HTTPError(502 if not isinstance(e, Refused) else 409,
                                    f"{d.backend} backend failed: {e}",
                                    decision=d.as_dict()) from None
                # cloud failover: decide again with the cloud marked down (counted as such)
                live = self.live()
                live.cloud_ok = False
                live.cloud_problem = "breaker_open" if isinstance(e, BreakerOpen) \
                    else "cloud_unreachable"
                t0 = time.perf_counter()
                d = self.router.decide(d.task_type, d.complexity, live, None if
                                       d.reason != "requested" else "cloud")
                self.stats.record(d, time.perf_counter() - t0)

    def _call(self, model: str, backend: str, body: dict) -> dict:
        key = GenCache.key(model, body)
        hit = self.cache.get(key)
        if hit is not None:
            return dict(hit, cached=True)
        ticket = self.breaker.admit() if backend == "cloud" else None
        try:
            with self.registry.use(model) as b:
                out = b.generate(body, self.gen_timeout)
        except Exception as e:
            if ticket is not None:
                self.breaker.record(ticket, False, str(e)[:200])
            raise
        if ticket is not None:
            self.breaker.record(ticket, True)
        self.cache.put(key, out)
        return dict(out, cached=False)

    def _count(self, backend: str, result: str) -> None:
        k = (backend, result)
        self.gen_counts[k] = self.gen_counts.get(k, 0) + 1

    @route("GET", "/routing/stats")
    def routing_stats(self, request):
        out = self.stats.as_dict()
        out["threshold"] = self.router.threshold
        out["rules"] = {t: {"backend": b, "complexity": c}
                        for t, (_, b, c) in self.router.rules.items()}
        out["failover"] = {"cloud_unreachable": self.routing_cfg.cloud_unreachable,
                           "vram_exhausted": self.routing_cfg.vram_exhausted}
        out["live"] = self.live().as_dict()
        out["cloud"] = self._cloud()
        return out

    @route("POST", "/routing/reset", mutating=True)
    def routing_reset(self, request):
        return self.stats.reset()

    @route("POST", "/cache/clear", mutating=True)
    def cache_clear(self, request):
        return self.cache.clear()

    # ------------------------------------------------------------ VRAM
    def _budget(self) -> dict:
        b = self.registry.budget()
        b["limit_source"] = self.limit_source
        b["gpu"] = self.gpu.status()
        return b

    @route("GET", "/vram")
    def vram(self, request):
        out = self._budget()
        snap = self.gpu.latest()
        out["gpus"] = snap.as_dict()["gpus"] if snap is not None else []
        return out

    @route("POST", "/vram/limit", mutating=True)
    def vram_limit(self, request):
        body = object_body(request)
        mb = vram_limit_mb(body)
        try:
            self.limit_source = self.limits.set(mb)
        except OSError as e:
            raise HTTPError(500, f"cannot persist the VRAM limit: {e}") from None
        out = self.registry.set_limit(mb if mb is not None else self.limits.env_mb)
        self.log.info("VRAM limit changed", limit_mb=self.registry.limit_mb,
                      source=self.limit_source, evicted=out["evicted"])
        out["budget"] = self._budget()
        return out

    # ------------------------------------------------------------ tasks
    def handle_task(self, task: dict):
        data = task.get("data")
        if not isinstance(data, dict):
            data = {}
        if task["type"] == "llm_generate":
            return self._generate(data)
        action = data.get("action", "list")
        if action == "list":
            return {"budget": self._budget(), "models": self.registry.list()}
        if action in ("load", "unload"):
            self.authorize()  # the same rule as POST /models/NAME/load|unload
            name = data.get("model")
            if not isinstance(name, str):
                raise HTTPError(400, f'model_management {action} needs "model": NAME')
            return self._load(name) if action == "load" else self._unload(name)
        if action == "route":
            return self.decide(data).as_dict()
        raise HTTPError(400, f"action {action!r} is invalid; allowed: list, load, unload, route")

    # ------------------------------------------------------------ health and metrics
    def _cloud(self) -> dict:
        return {"model": self.registry.by_role.get("cloud"),
                "endpoint": self.cloud.backend.endpoint if self.cloud.backend else None,
                "reachable": self.cloud.reachable, "error": self.cloud.error or None,
                "breaker": self.breaker.state}

    def health_checks(self) -> dict:
        b = self.registry.budget()
        return {"vram_budget": {"status": "degraded" if b["over_budget"] else "ok",
                                "budget_mb": b["budget_mb"], "reserved_mb": b["reserved_mb"],
                                "source": b["source"]}}

    def health_info(self) -> dict:
        loaded = [e.model.name for e in self.registry.entries.values() if e.state == "loaded"]
        return {"gpu": self.gpu.status(), "models_loaded": loaded, "cloud": self._cloud(),
                "vram_limit_source": self.limit_source}

    def metrics_text(self) -> str:
        lines = ["# HELP unified_llm_routing_decisions_total LLM routing decisions by backend "
                 "and reason.",
                 "# TYPE unified_llm_routing_decisions_total counter"]
        lines += [f'unified_llm_routing_decisions_total{{backend="{b}",reason="{r}"}} {n}'
                  for (b, r), n in sorted(self.stats.totals.items())]
        lines += ["# HELP unified_llm_generate_requests_total Generations by backend and result.",
                  "# TYPE unified_llm_generate_requests_total counter"]
        lines += [f'unified_llm_generate_requests_total{{backend="{b}",result="{r}"}} {n}'
                  for (b, r), n in sorted(self.gen_counts.items())]
        b = self.registry.budget()
        for name, v, help_ in (
                ("unified_model_vram_budget_bytes", b["budget_mb"] * MB, "Model VRAM budget."),
                ("unified_model_vram_reserved_bytes", b["reserved_mb"] * MB,
                 "VRAM booked by loaded models (catalog estimates)."),
                ("unified_llm_cloud_reachable", 1 if self.cloud.reachable is not False else 0,
                 "Last cloud probe answered (1 before the first probe)."),
                ("unified_llm_cloud_breaker_state", STATE_VALUE[self.breaker.state],
                 "Cloud breaker: 0 closed, 1 half-open, 2 open.")):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {v}"]
        lines += ["# HELP unified_model_loaded Model state (1 loaded; sum() = models loaded now).",
                  "# TYPE unified_model_loaded gauge"]
        lines += [f'unified_model_loaded{{model="{n}",role="{e.model.role}"}} '
                  f'{1 if e.state == "loaded" else 0}' for n, e in self.registry.entries.items()]
        lines += ["# HELP unified_model_unloads_total Model unloads by reason (budget: evicted "
                  "for another model; idle; cleanup; limit; request).",
                  "# TYPE unified_model_unloads_total counter"]
        lines += [f'unified_model_unloads_total{{reason="{k}"}} {v}'
                  for k, v in sorted(self.registry.unloads.items())]
        lines += ["# HELP unified_model_refusals_total Loads refused by the VRAM budget.",
                  "# TYPE unified_model_refusals_total counter",
                  f"unified_model_refusals_total {self.registry.refusals}"]
        lines += ["# HELP unified_llm_cache_requests_total Generation cache lookups by result.",
                  "# TYPE unified_llm_cache_requests_total counter",
                  f'unified_llm_cache_requests_total{{result="hit"}} {self.cache.hits}',
                  f'unified_llm_cache_requests_total{{result="miss"}} {self.cache.misses}']
        return "\n".join(lines) + "\n"


AGENT = ModelManagerSuite
