"""How the generative agents reach a model: ModelManagerSuite's POST /generate.

ModelManagerSuite owns the backends (catalog `models.declared`: llama.cpp's llama-server,
Ollama's /v1, vLLM, a cloud endpoint), the routing, failover and the cloud breaker; the
agents here never talk to a backend themselves, so one catalog section decides where every
generation runs.

    gw = Gateway.from_catalog(agent)          # MODEL_MANAGER_URL, else the catalog's port
    text = gw.generate(ledger, messages, task_type="chain_of_thought", max_tokens=512)

No backend → HTTPError 503 naming the catalog key to set (`models.declared.NAME.endpoint`
of the model the routing wanted, or `models.declared` when there is none), with
ModelManagerSuite's own words; never an answer made up here. `Ledger` adds up what one task
used: calls, tokens (the server's usage), seconds inside ModelManagerSuite.
"""
from __future__ import annotations

import time

from unified_agents import HTTPError

ROLES = ("local", "local_small", "cloud")


class Ledger:
    """What one task spent on the model, and which model answered."""

    def __init__(self):
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.llm_s = 0.0
        self.models: list[str] = []
        self.backends: list[str] = []
        self.t0 = time.perf_counter()

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, out: dict, seconds: float) -> None:
        self.calls += 1
        self.llm_s += seconds
        u = out.get("usage")
        u = u if isinstance(u, dict) else {}
        self.prompt_tokens += int(u.get("prompt_tokens") or 0)
        self.completion_tokens += int(u.get("completion_tokens") or 0)
        for seen, v in ((self.models, out.get("model")), (self.backends, out.get("backend"))):
            if v and v not in seen:
                seen.append(str(v))

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def usage(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": self.tokens}

    def timings(self) -> dict:
        total = self.elapsed()
        return {"llm_s": round(self.llm_s, 4), "total_s": round(total, 4),
                "own_s": round(max(0.0, total - self.llm_s), 4)}

    def summary(self) -> dict:
        """The common part of every answer: model(s), usage, timings."""
        return {"model": self.models[0] if len(self.models) == 1 else (self.models or None),
                "backend": self.backends[0] if len(self.backends) == 1 else (self.backends or None),
                "usage": self.usage(), "timings": self.timings()}


class Gateway:
    def __init__(self, url: str, models: dict, timeout: float):
        from unified_agents.client import Client

        self.url = url.rstrip("/")
        self.client = Client(self.url, timeout=timeout)
        self.models = models            # role → (model name, endpoint) from the catalog
        self.timeout = timeout

    @classmethod
    def from_catalog(cls, agent) -> "Gateway":
        from unified_core.catalog import load_catalog
        from unified_core.fleetview import connect_host

        env = agent.config.env
        cat = load_catalog(agent.config.catalog, env={})
        mm = cat.agents.get("ModelManagerSuite")
        default = (f"http://{connect_host(cat.settings.bind_address)}:{mm.port}" if mm
                   else "http://127.0.0.1:7211")
        models = {m.role: (m.name, m.endpoint) for m in cat.models.declared if m.role}
        return cls(env.string("MODEL_MANAGER_URL", default), models,
                   env.number("LLM_GENERATE_TIMEOUT_S", 130.0, 1.0))

    def describe(self) -> dict:
        return {"model_manager": self.url,
                "models": {r: {"model": n, "endpoint": e} for r, (n, e) in self.models.items()}}

    def setting_for(self, backend: str | None) -> str:
        """The catalog key that makes `backend` (local, local_small, cloud) answer."""
        if backend in self.models:
            return f"models.declared.{self.models[backend][0]}.endpoint"
        if self.models:
            name = next(iter(self.models.values()))[0]
            return f"models.declared.{name}.endpoint"
        return "models.declared"

    def no_backend(self, detail: str, decision: dict | None) -> HTTPError:
        d = decision or {}
        backend = d.get("backend") if d.get("backend") not in (None, "none") else d.get("wanted")
        key = self.setting_for(backend)
        where = (f" (now {self.models[backend][1]})" if backend in self.models else "")
        return HTTPError(
            503, f"no LLM backend answers ({detail}); set the catalog key {key}{where} to a "
                 "running OpenAI-compatible server (llama.cpp's llama-server, Ollama's /v1, "
                 "vLLM) or CLOUD_LLM_ENDPOINT of ModelManagerSuite, then restart "
                 "ModelManagerSuite", setting=key, model_manager=self.url)

    def generate(self, ledger: Ledger, messages: list, *, task_type: str, max_tokens: int,
                 temperature: float = 0.0, stop=None, timeout: float | None = None) -> str:
        """One generation through ModelManagerSuite → the reply's text (ledger updated)."""
        from unified_agents.client import AgentCallError

        body = {"task_type": task_type, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature}
        if stop:
            body["stop"] = stop
        t0 = time.perf_counter()
        try:
            out = self.client.post_json("/generate", body, timeout=timeout or self.timeout)
        except AgentCallError as e:
            err = e.body.get("error") if isinstance(e.body, dict) else str(e.body or e)
            if e.status is None:
                raise self.no_backend(f"ModelManagerSuite at {self.url} does not answer: {e}",
                                      None) from None
            if e.status in (502, 503):   # no backend, or the backend failed (unreachable)
                raise self.no_backend(f"ModelManagerSuite: {err}",
                                      e.body.get("decision") if isinstance(e.body, dict)
                                      else None) from None
            if e.status == 409:              # the VRAM budget refused to load the model
                raise HTTPError(503, f"ModelManagerSuite cannot load a model now: {err}",
                                headers={"Retry-After": "10"}) from None
            raise HTTPError(502, f"ModelManagerSuite refused the generation "
                                 f"(HTTP {e.status}: {err})") from None
        ledger.add(out, time.perf_counter() - t0)
        text = out.get("text") if isinstance(out, dict) else None
        if not isinstance(text, str):
            raise HTTPError(502, f"ModelManagerSuite answered without a text: {str(out)[:200]}")
        return text
