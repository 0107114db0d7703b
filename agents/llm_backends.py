"""LLM backends ModelManagerSuite drives: an OpenAI-compatible HTTP endpoint, or in-process.

    b = OpenAIBackend("http://127.0.0.1:8080/v1", model="phi3_mini", timeout=30)
    b.check(timeout=2)                      # GET {endpoint}/models: reachable and answering
    b.generate({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 64})
    # → {"text": ..., "model": ..., "usage": {...}, "finish_reason": ...}

OpenAI-compatible covers local servers (llama.cpp's llama-server, Ollama's /v1, vLLM) and
the cloud (CLOUD_LLM_ENDPOINT, key from CLOUD_LLM_API_KEY). Standard library http.client
(plus ssl for https, imported on use): one request per connection, a timeout on connect and
on every read, no retries here (the caller's breaker and failover decide what happens next).

InProcessBackend is the interface for models that live in the process that uses them (an
agent's own model): load() / unload() / generate() / vram_mb(). A catalog model with
`backend: inprocess` names its factory in `path: "package.module:callable"`; the callable
gets the catalog Model and returns an InProcessBackend.

Every failure is a BackendError with `.kind`: "unreachable" (connect/timeout/5xx: the
backend may come back), "rejected" (4xx: our request or key is wrong), "bad_response".
"""
from __future__ import annotations

import json
import socket


class BackendError(Exception):
    def __init__(self, message: str, kind: str = "unreachable", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status


class Backend:
    """What ModelManagerSuite needs from any backend."""

    kind = "abstract"

    def check(self, timeout: float) -> dict:
        """Make the model usable (load it, or verify the server answers). → facts to show."""
        raise NotImplementedError

    def generate(self, request: dict, timeout: float | None = None) -> dict:
        """`request`: {"messages": [...]} or {"prompt": "..."}, plus max_tokens, temperature.
        → {"text", "model", "usage", "finish_reason"}."""
        raise NotImplementedError

    def unload(self) -> None:
        """Release what check() took. Must not raise."""

    def describe(self) -> dict:
        return {"kind": self.kind}


class InProcessBackend(Backend):
    """Interface for in-process models. Subclass and implement load/generate (unload and
    vram_mb as needed); ModelManagerSuite calls check() → load() once per load."""

    kind = "inprocess"

    def load(self) -> None:
        raise NotImplementedError

    def vram_mb(self) -> int | None:
        """Actual VRAM held once loaded, when the model knows it (None: use the catalog's)."""
        return None

    def check(self, timeout: float) -> dict:
        self.load()
        return {"vram_mb": self.vram_mb()}


def load_inprocess(model) -> Backend:
    """The InProcessBackend a catalog model's `path: "pkg.module:callable"` makes (any
    Backend it returns is accepted)."""
    spec = (model.path or "").strip()
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise BackendError(f"model {model.name}: path {spec!r} is invalid; allowed: "
                           "'package.module:callable' returning an InProcessBackend",
                           kind="rejected")
    import importlib

    try:
        first, *rest = attr.split(".")
        fn = getattr(importlib.import_module(mod), first)
        for part in rest:
            fn = getattr(fn, part)
        backend = fn(model)
    except BackendError:
        raise
    except Exception as e:
        raise BackendError(f"model {model.name}: cannot create {spec}: {type(e).__name__}: {e}",
                           kind="rejected") from None
    if not isinstance(backend, Backend):
        raise BackendError(f"model {model.name}: {spec} returned {type(backend).__name__}, "
                           "not an InProcessBackend", kind="rejected")
    return backend


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, endpoint: str, *, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0):
        from urllib.parse import urlsplit

        u = urlsplit(endpoint)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise BackendError(f"endpoint {endpoint!r} is invalid; allowed: http(s)://host[:port]"
                               "/v1", kind="rejected")
        self.endpoint = endpoint.rstrip("/")
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.server_models: list[str] = []

    def describe(self) -> dict:
        return {"kind": self.kind, "endpoint": self.endpoint, "model": self.model,
                "server_models": self.server_models[:20]}

    def _request(self, method: str, path: str, body: dict | None, timeout: float):
        import http.client

        if self.scheme == "https":
            import ssl

            conn: http.client.HTTPConnection = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        headers = {"Accept": "application/json", "Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.endpoint + path
        try:
            conn.connect()
            if conn.sock is not None and self.scheme == "http":
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException) as e:  # refused, timeout, DNS, TLS, reset
            raise BackendError(f"{method} {url}: {type(e).__name__}: {e}") from None
        finally:
            conn.close()
        if resp.status >= 500:
            raise BackendError(f"{method} {url}: HTTP {resp.status}: {_snippet(payload)}",
                               status=resp.status)
        if resp.status >= 400:
            raise BackendError(f"{method} {url}: HTTP {resp.status}: {_snippet(payload)}",
                               kind="rejected", status=resp.status)
        try:
            return json.loads(payload)
        except ValueError:
            raise BackendError(f"{method} {url}: answered {resp.status} with invalid JSON: "
                               f"{_snippet(payload)}", kind="bad_response") from None

    def check(self, timeout: float) -> dict:
        out = self._request("GET", "/models", None, timeout)
        data = out.get("data") if isinstance(out, dict) else None
        if not isinstance(data, list):
            raise BackendError(f"GET {self.endpoint}/models: no 'data' list in the answer",
                               kind="bad_response")
        self.server_models = [str(m.get("id")) for m in data if isinstance(m, dict)]
        return {"server_models": self.server_models[:20]}

    def generate(self, request: dict, timeout: float | None = None) -> dict:
        body = {k: request[k] for k in ("messages", "prompt", "max_tokens", "temperature",
                                        "top_p", "stop") if k in request}
        if "messages" not in body:
            body["messages"] = [{"role": "user", "content": str(body.pop("prompt", ""))}]
        else:
            body.pop("prompt", None)
        # The server's own model id: the one configured, else what /models listed first.
        model = self.model or (self.server_models[0] if self.server_models else None)
        if model:
            body["model"] = model
        out = self._request("POST", "/chat/completions", body,
                            self.timeout if timeout is None else timeout)
        try:
            choice = out["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"POST {self.endpoint}/chat/completions: no choices[0].message"
                               f".content in the answer", kind="bad_response") from None
        return {"text": text, "model": out.get("model", model), "usage": out.get("usage") or {},
                "finish_reason": choice.get("finish_reason")}


def _snippet(payload: bytes, n: int = 200) -> str:
    s = payload[:n].decode("utf-8", "replace").strip().replace("\n", " ")
    return s + ("..." if len(payload) > n else "")
