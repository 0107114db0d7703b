"""The class agent authors subclass, the `route` decorator, and the router.

    from unified_agents import Agent, route, HTTPError

    class Greeter(Agent):
        task_types = ("greet",)

        def handle_task(self, task):                 # POST /task {"type": "greet", ...}
            return {"greeting": f"hello {task.get('data', 'world')}"}

        @route("GET", "/greetings/{who}")
        def greeting(self, request):                 # request.params["who"]
            return {"greeting": f"hello {request.params['who']}"}

Handlers are plain `def` (run in a thread pool of MAX_THREADS threads: blocking I/O is fine)
or `async def` (run on one asyncio loop thread, started only if the agent has any). A route
declared `inline=True` runs on the I/O loop itself: only for handlers that never block.
"""
from __future__ import annotations

from .request_context import current_request
from .server import HTTPError

TYPE_CHECKING = False  # typing's constant without importing typing (cold start)
if TYPE_CHECKING:
    from .config import Config
    from .trace import Tracer

CO_COROUTINE = 0x80
CO_ITERABLE_COROUTINE = 0x100


def is_coroutine_function(fn) -> bool:
    """inspect.iscoroutinefunction without importing inspect (10 ms)."""
    fn = getattr(fn, "__func__", fn)
    while hasattr(fn, "__wrapped__") and not hasattr(fn, "__code__"):
        fn = fn.__wrapped__
    code = getattr(fn, "__code__", None)
    if code is None:
        call = getattr(type(fn), "__call__", None)
        code = getattr(call, "__code__", None)
    return bool(code is not None and code.co_flags & CO_COROUTINE)


def is_coroutine(obj) -> bool:
    return type(obj).__name__ == "coroutine" or (
        hasattr(obj, "__await__") and hasattr(obj, "send") and hasattr(obj, "throw"))


LISTENERS = ("agent", "health", "both")


def route(method: str, path: str, *, inline: bool = False, listener: str = "agent",
          mutating: bool = False):
    """Declare a method of an Agent subclass as the handler of `method path`.

    `path` may hold parameters: `/agents/{name}` (one segment) or `/files/{rest:path}` (the
    rest of the path, last only). The handler gets the Request; `request.params` holds them.
    Stack several decorators to serve several routes with one method.
    `listener` is where the route is served: the agent port (default), the health port
    ("health": it never activates the agent, e.g. the runbook's POST :8202/load) or "both".
    `mutating=True` for routes that destroy or reset state or change how the fleet runs
    (clear, delete, reset, load/unload, limits): served only to local callers or callers
    presenting the token (guard.py); others get 403.
    """
    if listener not in LISTENERS:
        raise ValueError(f"route {method} {path}: listener {listener!r}; allowed: {', '.join(LISTENERS)}")

    def deco(fn):
        fn.__unified_routes__ = getattr(fn, "__unified_routes__", ()) + (
            (method.upper(), path, inline, listener, bool(mutating)),)
        return fn
    return deco


class Agent:
    """Base class of every agent. Override what you need; everything has a default.

    Class attributes:
      name            informational; the running name comes from UNIFIED_AGENT (self.name)
      version         reported in /health (default: the SDK version)
      implementation  reported in /health ("reference" for the SDK's reference agent)
      task_types      task types POST /task accepts (default: UNIFIED_TASK_TYPES; empty = any)
      routes          optional dict {("GET", "/path/{x}"): "method_name" or callable}

    Set by the runtime before on_start(): self.name, self.config (config.Config: ports,
    limits, dependencies, env reader), self.log (log.Logger), and self.tracer
    (trace.Tracer when ENABLE_TRACING is on, else None).
    """

    name: str | None = None
    version: str | None = None
    implementation: str | None = None
    task_types: tuple | None = None
    routes: dict = {}

    # The runtime sets config before on_start(), so every hook may read it; the class default
    # None only exists before that.
    config: Config = None  # type: ignore[assignment]
    log = None
    _router: Router  # set by the runtime: the agent's routes, for add_route()
    # A Store (agents/store.py) holding this agent's durable effects: a POST /task with an
    # Idempotency-Key then runs as one transaction of it, key and answer included, so that a
    # repeat after a crash answers the first result and never writes twice (idempotency.py).
    idempotency_store = None
    tracer: Tracer | None = None
    # Set in on_start() by an agent whose requests are large by nature (STTService: a WAV in
    # base64): the request body limit becomes at least this many bytes. UNIFIED_MAX_BODY_BYTES
    # (1 MiB) stays the limit of every other agent, and the larger of the two wins here.
    max_body_bytes: int | None = None

    # ------------------------------------------------------------- lifecycle
    def on_start(self) -> None:
        """Load models, open databases, check dependencies. Runs before READY=1: connections
        wait in the socket until it returns. Raise to fail the start (exit 1);
        raise ConfigError for a bad setting (exit 2)."""

    def on_stop(self) -> None:
        """Runs once after the last in-flight request finished (SIGTERM or idle exit)."""

    # ------------------------------------------------------------- work
    def handle_task(self, task: dict):
        """POST /task. `task` is the JSON object sent ({"type": ..., "data": ..., ...}); its
        type was checked against task_types. Return anything JSON-serialisable; it is sent
        as {"ok": true, "agent", "type", "result": <it>, "request_id"}. Raise HTTPError for a
        client error."""
        raise HTTPError(501, f"agent {self.name} does not take tasks")

    # ------------------------------------------------------------- health and metrics
    def health_checks(self) -> dict:
        """{check_name: result} for /health. A result is True/False, or a dict with
        "status": "ok" | "degraded" | "fail" (plus anything else). Any False/fail makes the
        agent unhealthy (HTTP 503), any degraded makes it degraded; an exception is a fail.
        Runs on a dedicated thread when overridden, so it may block briefly."""
        return {}

    def health_info(self) -> dict:
        """Extra top-level fields for /health (e.g. {"queue_size": 3})."""
        return {}

    def holds_work(self) -> bool:
        """True while this process holds work although no request is in flight (pending
        timers that it must fire): the idle exit waits until it returns False. Called on the
        serving loop about once a second while idle: only read an attribute, never block."""
        return False

    def release_caches(self) -> int | None:
        """Drop what can be rebuilt (model/KV caches, `torch.cuda.empty_cache()`) when
        VRAMOptimizerAgent asks (POST /cache/release on the agent port, served only when an
        agent overrides this). Return the bytes freed if known."""
        return None

    def metrics_text(self) -> str:
        """Extra Prometheus text exposition lines appended to /metrics on the health port.
        With prometheus_client: `return generate_latest(self.registry).decode()` using your
        own CollectorRegistry (the SDK already exports process_* metrics)."""
        return ""

    # ------------------------------------------------------------- helpers
    @property
    def request(self):
        """The Request being handled in this thread/task (None outside handlers)."""
        return current_request()

    def add_route(self, method: str, path: str, handler, *, inline: bool = False,
                  mutating: bool = False) -> None:
        """Add a route at run time (e.g. from on_start). Same rules as @route."""
        self._router.add(method.upper(), path, handler, inline=inline, owner="agent",
                         mutating=mutating)

    def authorize(self, request=None) -> None:
        """403 unless the request (default: the current one) may change state: for handlers
        that mutate only sometimes (a task whose op is "delete"). See guard.py."""
        from .guard import authorize

        authorize(request)

    def declared_routes(self):
        """(method, path, handler, inline, listener, mutating) of the @route methods and the
        `routes` dict (whose routes are served on the agent port, not mutating)."""
        seen = set()
        for klass in type(self).__mro__:
            for attr, fn in vars(klass).items():
                if attr in seen:
                    continue
                seen.add(attr)
                for method, path, inline, listener, mutating in \
                        getattr(fn, "__unified_routes__", ()):
                    yield method, path, getattr(self, attr), inline, listener, mutating
        for (method, path), target in (self.routes or {}).items():
            handler = getattr(self, target) if isinstance(target, str) else target
            yield method.upper(), path, handler, False, "agent", False


# ----------------------------------------------------------------- routing
class Route:
    __slots__ = ("method", "template", "handler", "mode", "segments", "mutating")

    def __init__(self, method, template, handler, mode, segments, mutating=False):
        self.method = method
        self.template = template
        self.handler = handler
        self.mode = mode  # "inline" | "pool" | "async" | "health"
        self.segments = segments
        self.mutating = mutating


def _split_template(template: str):
    if not template.startswith("/"):
        raise ValueError(f"route path {template!r} must start with '/'")
    if len(template) > 1:
        template = template.rstrip("/")
    segs: list[str | tuple[str, str]] = []  # a literal segment, or (parameter, kind)
    names = set()
    raw = template.split("/")[1:]
    for i, s in enumerate(raw):
        if s.startswith("{") and s.endswith("}"):
            name, _, kind = s[1:-1].partition(":")
            if not name.isidentifier() or kind not in ("", "path"):
                raise ValueError(f"bad parameter {s!r} in route {template!r}; "
                                 "use {name} or {name:path}")
            if kind == "path" and i != len(raw) - 1:
                raise ValueError(f"{s!r} must be the last segment of route {template!r}")
            if name in names:
                raise ValueError(f"parameter {name!r} twice in route {template!r}")
            names.add(name)
            segs.append((name, kind or "seg"))
        elif "{" in s or "}" in s:
            raise ValueError(f"bad segment {s!r} in route {template!r}")
        else:
            segs.append(s)
    return template, segs


def _unquote(s: str) -> str:
    if "%" not in s:
        return s
    from urllib.parse import unquote

    return unquote(s)


class Router:
    """Static paths by dict lookup; templated paths by segment comparison."""

    def __init__(self):
        self.static: dict[str, dict[str, Route]] = {}
        self.dynamic: list[tuple[list, dict[str, Route]]] = []
        self._dyn_index: dict[str, dict[str, Route]] = {}

    def add(self, method: str, template: str, handler, *, inline: bool = False,
            mode: str | None = None, owner: str = "agent", mutating: bool = False) -> Route:
        if not method.isalpha() or not method.isupper():
            raise ValueError(f"bad HTTP method {method!r} for route {template!r}")
        template, segs = _split_template(template)
        if mode is None:
            mode = "inline" if inline else ("async" if is_coroutine_function(handler) else "pool")
        r = Route(method, template, handler, mode, segs, mutating)
        if all(isinstance(s, str) for s in segs):
            table = self.static.setdefault(template, {})
        else:
            dyn = self._dyn_index.get(template)
            if dyn is None:
                dyn = self._dyn_index[template] = {}
                self.dynamic.append((segs, dyn))
            table = dyn
        if method in table:
            raise ValueError(f"route {method} {template} is declared twice"
                             + (" (it is provided by the SDK)" if table[method].mode == "sdk"
                                or owner == "sdk" else ""))
        table[method] = r
        return r

    def match(self, method: str, path: str):
        """→ (Route, params). HTTPError 404/405 otherwise. HEAD falls back to GET."""
        table = self.static.get(path)
        params: dict = {}
        if table is None and self.dynamic:
            parts = path.split("/")[1:]
            for segs, t in self.dynamic:
                p = _match_segments(segs, parts)
                if p is not None:
                    table, params = t, p
                    if method in t or (method == "HEAD" and "GET" in t):
                        break
        if table is None:
            raise HTTPError(404, f"no such path: {path}")
        r = table.get(method)
        if r is None and method == "HEAD":
            r = table.get("GET")
        if r is None:
            allow = sorted(set(table) | ({"HEAD"} if "GET" in table else set()))
            raise HTTPError(405, f"method {method} not allowed for {path}; allowed: "
                            + ", ".join(allow), headers={"Allow": ", ".join(allow)})
        return r, params


def _match_segments(segs, parts):
    n = len(segs)
    last_path = n and isinstance(segs[-1], tuple) and segs[-1][1] == "path"
    if (len(parts) != n) if not last_path else (len(parts) < n):
        return None
    params = {}
    for i, s in enumerate(segs):
        if isinstance(s, str):
            if parts[i] != s:
                return None
        elif s[1] == "path":
            rest = "/".join(parts[i:])
            if not rest:
                return None
            params[s[0]] = _unquote(rest)
        else:
            if not parts[i]:
                return None
            params[s[0]] = _unquote(parts[i])
    return params
