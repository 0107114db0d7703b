"""The agent process: sockets, start-up, the serving loop (watchdog, idle exit, SIGTERM).

Start-up order (all before READY=1; connections that arrive meanwhile wait in the listen
backlog, for the agent port in the socket systemd holds):
  config → agent socket (fd 3 from systemd, or bind) → health socket (bind) → agent class
  → routes → on_start() → signal handlers → READY=1 → serve.

The serving loop (`_loop`) is the one thread that does I/O. It pings WATCHDOG=1 itself, so
if it hangs (or the process is SIGSTOPped) systemd's watchdog kills the agent; worker
threads never ping. A hung worker thread (a handler call running longer than
WORKER_HANG_S: a deadlock, a read without timeout) stops the pings too, turns
/health unhealthy (check "workers") and logs its stack, so the watchdog restarts the
agent instead of leaving it answering /health while its tasks never finish.
"""
from __future__ import annotations

import _thread
import os
import signal
import socket
import time

# typing's TYPE_CHECKING without importing typing (the agents' cold path): mypy knows the
# class by its public module; at run time the C module spares the import of queue.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from queue import SimpleQueue

    from .trace import Tracer
else:
    from _queue import SimpleQueue

from . import __version__, idempotency
from .agent import Agent, Router, is_coroutine, is_coroutine_function
from .config import ConfigError
from .guard import Guard, install as install_guard, is_loopback, load_token
from .log import bridge_stdlib_logging, describe_exception
from .metrics import CONTENT_TYPE, Metrics, process_age_s
from .notify import Notifier, watchdog_interval
from .request_context import _current
from .server import HTTPError, Response, Server, error_response

SD_LISTEN_FDS_START = 3
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))


class StartupError(Exception):
    """The agent cannot start (port in use, agent code failed). One line, exit 1."""

    exit_code = 1


# ----------------------------------------------------------------- sockets
def listen_fds(name: str = "agent"):
    """The listening socket systemd passed (sd_listen_fds(3) semantics), or None.

    Checks LISTEN_PID == our pid (the variables may be inherited from a parent), picks the
    fd whose LISTEN_FDNAMES entry is `name` (or the only one), marks the fds close-on-exec
    and removes LISTEN_* from the environment so children do not see them.
    """
    pid, nfds = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if not pid or not nfds:
        return None
    if pid.strip() != str(os.getpid()):
        return None
    names = os.environ.get("LISTEN_FDNAMES", "")
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    try:
        n = int(nfds)
    except ValueError:
        raise ConfigError(f"LISTEN_FDS={nfds!r} is invalid; allowed: a count of "
                          "file descriptors (set by systemd)") from None
    if n <= 0:
        return None
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n))
    for fd in fds:
        try:
            os.set_inheritable(fd, False)
        except OSError:
            raise StartupError(f"LISTEN_FDS={n} but fd {fd} is not open") from None
    labels = names.split(":") if names else []
    if name in labels:
        fd = fds[labels.index(name)]
    elif n == 1:
        fd = fds[0]
    else:
        raise ConfigError(f"LISTEN_FDNAMES={names!r}: systemd passed {n} sockets and none is "
                          f"named {name!r}; allowed: FileDescriptorName={name} on the socket")
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET,
                                                             socket.SO_ACCEPTCONN):
        raise StartupError(f"fd {fd} from systemd is not a listening stream socket "
                           "(the socket unit needs ListenStream=)")
    return sock


def bind_listener(host: str, port: int, what: str) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=fam, backlog=socket.SOMAXCONN)
    except OSError as e:
        raise StartupError(f"cannot listen on {host}:{port} ({what}): "
                           f"{e.strerror or e}") from None


# ----------------------------------------------------------------- threads
class WorkerPool:
    """Threads started on demand up to max_workers; a queued call waits for a free one.

    Hand-written (40 lines) because concurrent.futures costs ~10 ms at import and we need
    neither futures nor shutdown semantics: every call reports back through the server.
    `running` {thread id: (monotonic start, args)}: the call each busy worker is in, so the
    serving loop can tell a hung worker (Runtime.hung_workers).
    """

    def __init__(self, max_workers: int, name: str = "worker"):
        self.max = max_workers
        self.name = name
        self.q: SimpleQueue[tuple] = SimpleQueue()  # (fn, args) to run on a worker
        self.lock = _thread.allocate_lock()
        self.threads = 0
        self.idle = 0      # workers waiting in q.get() and not yet claimed
        self.backlog = 0   # queued calls no worker has claimed yet
        self.running: dict = {}

    def submit(self, fn, *args) -> None:
        self.q.put((fn, args))
        with self.lock:
            if self.idle:
                self.idle -= 1
                return
            if self.threads >= self.max:
                self.backlog += 1
                return
            self.threads += 1
        _thread.start_new_thread(self._work, ())

    def _work(self) -> None:
        q, lock, running = self.q, self.lock, self.running
        me = _thread.get_ident()
        mono = time.monotonic
        while True:
            fn, args = q.get()
            running[me] = (mono(), args)
            try:
                fn(*args)
            except BaseException:  # pragma: no cover - callers handle their own errors
                pass
            del running[me]
            with lock:
                if self.backlog:
                    self.backlog -= 1
                else:
                    self.idle += 1


# ----------------------------------------------------------------- health
_FAIL = frozenset(("fail", "failed", "failing", "error", "unhealthy", "down", "critical", "false"))
_DEGRADED = frozenset(("degraded", "warn", "warning"))


def overall_status(checks: dict) -> str:
    worst = 0
    for v in checks.values():
        if v is False:
            return "unhealthy"
        if isinstance(v, dict):
            if v.get("ok") is False:
                return "unhealthy"
            v = v.get("status")
        if isinstance(v, str):
            low = v.lower()
            if low in _FAIL:
                return "unhealthy"
            if low in _DEGRADED:
                worst = 1
    return "degraded" if worst else "healthy"


def _overridden(agent: Agent, name: str) -> bool:
    return getattr(type(agent), name) is not getattr(Agent, name)


# ----------------------------------------------------------------- the runtime
class Runtime:
    def __init__(self, config, agent: Agent, log, agent_sock, health_sock, notifier=None):
        self.config = config
        self.agent = agent
        self.log = log
        self.agent_sock = agent_sock
        self.health_sock = health_sock
        self.notifier = notifier if notifier is not None else Notifier(log=log)
        self.metrics = Metrics()
        self.started = time.monotonic()
        self.startup_s = 0.0
        self.state = "starting"
        self.implementation = agent.implementation or config.run_kind
        self.version = agent.version or __version__
        self.task_types = tuple(agent.task_types) if agent.task_types is not None \
            else config.task_types
        keepalive = config.keepalive_timeout_s
        if config.idle_timeout_s > 0:
            keepalive = min(keepalive, config.idle_timeout_s)
        self.server = Server(self.dispatch, max_body=config.max_body_bytes,
                             request_timeout=config.request_timeout_s,
                             keepalive_timeout=keepalive, on_response=self._on_response,
                             on_error=self._internal_error,
                             server_name=f"unified-agent/{__version__}")
        self.pool = WorkerPool(config.max_threads)
        self.keys = idempotency.Keys()   # Idempotency-Key of POST /task
        # mutating routes: local callers or the token (guard.py); installed for the SDK client
        self.guard = Guard(load_token(config.env.environ), (config.bind,))
        install_guard(self.guard)
        self.lane: WorkerPool | None = None   # one thread for overridden health/metrics hooks
        self.aio = None
        self.routers = {"agent": Router(), "health": Router()}
        self.last_activity = time.monotonic()
        self.requests_served = 0
        self.stop_reason: str | None = None
        self._reported_hung: set = set()
        self._signal = None
        self._force = False
        agent.name = config.name
        agent.config = config
        agent.log = log
        self.tracer: Tracer | None = None
        if config.enable_tracing:
            from . import trace

            trace.on = True
            self.tracer = agent.tracer = trace.Tracer(config.name, log)

    @property
    def in_flight(self) -> int:
        """Requests being handled, not counting the caller's own (/health, /metrics)."""
        return max(0, self.server.busy - 1)

    # ------------------------------------------------------------- setup
    def _setup_routes(self) -> None:
        agent, ar, hr = self.agent, self.routers["agent"], self.routers["health"]
        hooks_block = not getattr(agent, "health_inline", False)
        health_mode = "health" if hooks_block and (
            _overridden(agent, "health_checks") or _overridden(agent, "health_info")) \
            else "inline"
        metrics_mode = "health" if hooks_block and _overridden(agent, "metrics_text") \
            else "inline"
        for r in (ar, hr):
            r.add("GET", "/health", self._health, mode=health_mode, owner="sdk")
        if self.config.enable_metrics:
            hr.add("GET", "/metrics", self._metrics, mode=metrics_mode, owner="sdk")
        if is_coroutine_function(agent.handle_task):
            ar.add("POST", "/task", self._task_async, mode="async", owner="sdk")
        else:
            ar.add("POST", "/task", self._task_sync, mode="pool", owner="sdk")
        agent._router = ar
        if _overridden(agent, "release_caches"):
            # Only agents that can release something serve it: a 404 tells VRAMOptimizerAgent
            # "unsupported" without waking anyone (it asks active agents only).
            ar.add("POST", "/cache/release", self._release_caches, mode="pool", owner="sdk",
                   mutating=True)
        declared = list(agent.declared_routes())
        if not any(m == "GET" and p == "/debug/state" for m, p, *_ in declared):
            for r in (ar, hr):   # the hub has its own, which shows the traces too
                r.add("GET", "/debug/state", self._debug_state, mode="inline", owner="sdk")
        for method, path, handler, inline, listener, mutating in declared:
            for kind in (("agent", "health") if listener == "both" else (listener,)):
                self.routers[kind].add(method, path, handler, inline=inline,
                                       mutating=mutating)
        if "health" in (health_mode, metrics_mode):
            self.lane = WorkerPool(1, "health-hooks")

    def _needs_aio(self) -> bool:
        if any(r.mode == "async" for t in self.routers["agent"].static.values()
               for r in t.values()):
            return True
        if any(r.mode == "async" for _, t in self.routers["agent"].dynamic
               for r in t.values()):
            return True
        return is_coroutine_function(self.agent.on_start) or \
            is_coroutine_function(self.agent.on_stop)

    def get_aio(self):
        if self.aio is None:
            from .aio import AsyncRunner

            self.aio = AsyncRunner()
        return self.aio

    def _call_hook(self, name: str) -> None:
        fn = getattr(self.agent, name)
        result = fn()
        if is_coroutine(result):
            self.get_aio().run_sync(result)

    def _start_watchdog_keepalive(self):
        """While on_start() runs (model loading can take longer than WatchdogSec) a helper
        thread pings; the serving loop takes over before READY=1. Start-up hangs are
        TimeoutStartSec's job."""
        wd = watchdog_interval()
        if not wd or not self.notifier.enabled:
            return None
        stop = _thread.allocate_lock()
        stop.acquire()

        def ping():
            while not stop.acquire(timeout=wd):
                self.notifier.notify("WATCHDOG=1")
            stop.release()

        self.notifier.notify("WATCHDOG=1")
        _thread.start_new_thread(ping, ())
        return stop

    def start(self) -> None:
        """Everything up to READY=1. Raises ConfigError / StartupError."""
        c = self.config
        try:
            self._setup_routes()
        except ValueError as e:
            raise StartupError(f"agent {c.name}: {e}") from None
        if self._needs_aio():
            self.get_aio()
        self.server.add_listener(self.agent_sock, "agent", c.max_connections)
        self.server.add_listener(self.health_sock, "health", 64)
        bridge_stdlib_logging(self.log)  # the agent's module may use `logging`
        if not is_loopback(c.bind) and not self.guard.has_token:
            self.log.warning(f"listening on {c.bind} (not loopback) without a token: "
                             "endpoints that change state answer 403 to every non-local "
                             "caller; put a token in /etc/unified/token (docs/SECURITY.md)")
        self.notifier.notify("STATUS=starting: on_start()")
        keepalive = self._start_watchdog_keepalive()
        try:
            self._call_hook("on_start")
        except (ConfigError, StartupError):
            raise
        except HTTPError as e:
            raise StartupError(f"agent {c.name}: on_start() failed: {e.message}") from None
        except Exception as e:
            raise StartupError(f"agent {c.name}: on_start() failed: "
                               f"{describe_exception(e, True)}") from None
        finally:
            if keepalive is not None:
                keepalive.release()
        wanted = self.agent.max_body_bytes  # the agent's own body limit, known after on_start
        if wanted and wanted > self.server.max_body:
            self.server.max_body = wanted
        bridge_stdlib_logging(self.log)  # ... or on_start() imported it
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.set_wakeup_fd(self.server.wake_fd, warn_on_full_buffer=False)
        self.startup_s = process_age_s()
        self.state = "serving"
        self.last_activity = time.monotonic()
        ready = ["READY=1", self._status_text()]
        if watchdog_interval():
            ready.append("WATCHDOG=1")
        self.notifier.notify(*ready)
        self.log.info(f"ready in {self.startup_s * 1000:.0f} ms", port=self._port_text(),
                      health_port=c.health_port, implementation=self.implementation,
                      idle_timeout_s=_num(c.idle_timeout_s))

    def _port_text(self) -> str:
        try:
            host, port = self.agent_sock.getsockname()[:2]
            return str(port)
        except (OSError, ValueError):
            return str(self.config.port)

    def run(self) -> int:
        self.start()
        self._loop()
        return self._finish()

    # ------------------------------------------------------------- the loop
    def _on_signal(self, signum, frame) -> None:
        if self._signal is not None:
            self._force = True
        self._signal = signum

    def begin_stop(self, reason: str) -> None:
        srv = self.server
        self.state = "stopping"
        self.stop_reason = reason
        self.notifier.notify("STOPPING=1", f"STATUS=stopping ({reason}): "
                                           f"{srv.busy} in flight")
        self.log.info(f"stopping ({reason})", in_flight=srv.busy,
                      connections=srv.open_connections())
        srv.stop_accepting()
        srv.drain()

    def _loop(self) -> None:
        srv = self.server
        c = self.config
        mono = time.monotonic
        inf = float("inf")
        wd = watchdog_interval() if self.notifier.enabled else None
        next_wd = mono() + wd if wd else inf
        idle = c.idle_timeout_s
        stop_deadline = None
        status_sent = self._status_text()
        status_due = mono() + 1.0
        while True:
            now = mono()
            if self._signal is not None and stop_deadline is None:
                name = signal.Signals(self._signal).name
                self.begin_stop(name)
                stop_deadline = now + c.stop_grace_s
            if self._force:
                self.log.warning("second signal: exiting without waiting",
                                 in_flight=srv.busy)
                return
            if wd is not None and now >= next_wd:  # (wd None: next_wd is inf)
                # a hung worker thread leaves this loop alive: no ping then, so that
                # systemd's watchdog kills and restarts the agent as for a hung loop
                if not self.hung_workers(now):
                    self.notifier.notify("WATCHDOG=1")
                next_wd = now + wd
            if stop_deadline is not None:
                if srv.busy == 0 and not srv.conns:
                    return
                if now >= stop_deadline:
                    self.log.warning(f"stop grace of {_num(c.stop_grace_s)} s is over: "
                                     "exiting with requests unfinished",
                                     in_flight=srv.busy, connections=len(srv.conns))
                    return
            elif idle > 0 and srv.busy == 0 and now - self.last_activity >= idle \
                    and srv.open_connections("agent") == 0 and not self.agent.holds_work():
                self.begin_stop(f"idle for {_num(idle)} s")
                stop_deadline = now + c.stop_grace_s
                continue
            timeout = next_wd - now
            if stop_deadline is not None:
                timeout = min(timeout, stop_deadline - now)
            elif idle > 0:
                left = self.last_activity + idle - now
                timeout = min(timeout, left if left > 0 else 1.0)
            nd = srv.next_deadline()
            if nd is not None and nd < timeout:
                timeout = nd
            if self.notifier.enabled and stop_deadline is None:
                text = self._status_text()
                if text != status_sent:
                    if now >= status_due:
                        self.notifier.notify(text)
                        status_sent = text
                        status_due = now + 1.0
                    else:
                        timeout = min(timeout, status_due - now)
            srv.poll(None if timeout == inf else max(0.0, timeout))

    def hung_workers(self, now: float | None = None) -> list[dict]:
        """Handler calls running longer than WORKER_HANG_S (thread, route, seconds).
        The first time one is seen: an error in the journal with its stack."""
        bound = self.config.worker_hang_s
        if not bound:
            return []
        now = time.monotonic() if now is None else now
        out = []
        for pool in (self.pool, self.lane):
            if pool is None:
                continue
            for ident, (t0, args) in list(pool.running.items()):
                if now - t0 <= bound:
                    continue
                req = next((a for a in args if hasattr(a, "request_id")), None)
                h = {"thread": f"{pool.name}-{ident}", "running_s": round(now - t0, 1),
                     "request": f"{req.method} {req.path}" if req is not None else "?",
                     "request_id": req.request_id if req is not None else None}
                out.append(h)
                if (ident, t0) not in self._reported_hung:
                    self._reported_hung.add((ident, t0))
                    self._report_hung(ident, h)
        return out

    def _report_hung(self, ident: int, h: dict) -> None:
        import sys
        import traceback

        frame = sys._current_frames().get(ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(gone)"
        self.log.error(f"worker thread {h['thread']} hung: {h['request']} running for "
                       f"{h['running_s']} s (WORKER_HANG_S="
                       f"{_num(self.config.worker_hang_s)}); watchdog pings stop, systemd "
                       f"restarts the agent. Stack:\n{stack}", h["request_id"],
                       thread=h["thread"])

    def _status_text(self) -> str:
        return f"STATUS=serving: {self.server.busy} in flight, {self.requests_served} requests"

    def _finish(self) -> int:
        self.state = "stopped"
        try:
            self._call_hook("on_stop")
        except Exception as e:
            self.log.exception("on_stop() failed", e)
        self.log.info(f"stopped ({self.stop_reason or 'signal'})",
                      requests=self.requests_served,
                      uptime_s=_num(round(time.monotonic() - self.started, 1)))
        self.server.close()
        try:
            self.health_sock.close()
        except OSError:
            pass
        # the agent socket is left open: it belongs to systemd (queued connections stay)
        return 0

    # ------------------------------------------------------------- dispatch
    def dispatch(self, conn, req):
        """Called on the I/O thread with a complete request."""
        if req.listener == "agent":
            self.last_activity = req.received
        r, params = self.routers[req.listener].match(req.method, req.path)
        req.params = params
        req.route = r.template
        if self.tracer is not None and req.listener == "agent" and r.template != "/health":
            req.trace = []
        if r.mutating and not self.guard.trusted(req):
            # who and what, never the headers (an Authorization value may be a real token)
            self.log.warning(f"refused {req.method} {req.path} from {req.client[0]}: not "
                             "local and no valid token", req.request_id)
            self.guard.check(req)  # raises HTTPError 403 → answered by the server
        mode = r.mode
        if mode == "inline":
            return self._call_inline(r, req)
        if mode == "pool":
            self.pool.submit(self._call, conn, req, r)
        elif mode == "async":
            self.aio.submit(self._acall(conn, req, r))
        else:
            self.lane.submit(self._call, conn, req, r)
        return None

    def _call_inline(self, r, req):
        token = _current.set(req)
        try:
            result = r.handler(req)
            if req.trace is not None:
                req.trace.append(("handle", time.monotonic()))
            if is_coroutine(result):
                result.close()
                raise TypeError(f"inline route {r.template} returned a coroutine; "
                                "async handlers cannot be inline")
            return self.to_response(result)
        except HTTPError as e:
            return error_response(e.status, e.message, req.request_id, e.headers, **e.fields)
        except Exception as e:
            return self._crash(req, e)
        finally:
            _current.reset(token)

    def _call(self, conn, req, r) -> None:
        """On a worker thread."""
        token = _current.set(req)
        if req.trace is not None:
            req.trace.append(("queue", time.monotonic()))
        try:
            result = r.handler(req)
            if is_coroutine(result):
                result = self.get_aio().run_sync(result)
            resp = self._handled(req, result)
        except BaseException as e:
            resp = self._failed(req, e)
        finally:
            _current.reset(token)
        self.server.complete(conn, req, resp)

    async def _acall(self, conn, req, r) -> None:
        """On the asyncio thread."""
        token = _current.set(req)
        if req.trace is not None:
            req.trace.append(("queue", time.monotonic()))
        try:
            resp = self._handled(req, await r.handler(req))
        except BaseException as e:
            resp = self._failed(req, e)
        finally:
            _current.reset(token)
        self.server.complete(conn, req, resp)

    def _handled(self, req, result) -> Response:
        """A handler's result → its response (the trace's "handle" hop ends here)."""
        resp = self.to_response(result)
        if req.trace is not None:
            req.trace.append(("handle", time.monotonic()))
        return resp

    def _failed(self, req, e: BaseException) -> Response:
        """What a handler raised → its response: HTTPError as meant, anything else a 500."""
        if isinstance(e, HTTPError):
            return error_response(e.status, e.message, req.request_id, e.headers, **e.fields)
        return self._crash(req, e)

    def _crash(self, req, e: BaseException) -> Response:
        self.log.exception(f"{req.method} {req.path} failed", e, req.request_id)
        return error_response(500, f"internal error: {type(e).__name__}", req.request_id)

    @staticmethod
    def to_response(result) -> Response:
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(204)
        if isinstance(result, tuple) and 2 <= len(result) <= 3 and isinstance(result[0], int):
            resp = Runtime.to_response(result[1])
            resp.status = result[0]
            if len(result) == 3 and result[2]:
                resp.headers = {**(resp.headers or {}), **result[2]}
            return resp
        if isinstance(result, (bytes, bytearray, memoryview)):
            return Response(200, bytes(result), "application/octet-stream")
        if isinstance(result, str):
            return Response.text(result)
        return Response.json(result)

    def _on_response(self, req, status: int, seconds: float, listener: str) -> None:
        """On the I/O thread, after a response was written (or dropped: 499)."""
        self.requests_served += 1
        if listener == "agent":
            self.last_activity = time.monotonic()
        route = req.route or "unmatched"
        method = req.method if req.method in _KNOWN_METHODS else "other"
        self.metrics.observe(listener, route, method, status, seconds, req.task_type)
        if req.trace is not None and self.tracer is not None:  # (a trace: tracing is on)
            self.tracer.finish(req, status, seconds)
        if self.log.threshold >= 7:
            self.log.debug(f"{req.method} {req.target} {status} {seconds * 1000:.2f}ms",
                           req.request_id, listener=listener)

    def _internal_error(self, message: str, exc: BaseException) -> None:
        self.log.exception(message, exc)

    # ------------------------------------------------------------- built-in endpoints
    def _health(self, req) -> Response:
        agent = self.agent
        checks: dict = {}
        info: dict = {}
        try:
            checks = dict(agent.health_checks() or {})
        except Exception as e:
            checks = {"health_checks": {"status": "fail", "error": describe_exception(e)}}
        try:
            info = dict(agent.health_info() or {})
        except Exception as e:
            checks["health_info"] = {"status": "fail", "error": describe_exception(e)}
        hung = self.hung_workers()
        if hung:
            checks["workers"] = {"status": "fail", "hung": hung,
                                 "hang_s": self.config.worker_hang_s}
        status = overall_status(checks)
        if self.state == "stopping" and status == "healthy":
            status = "degraded"
        c = self.config
        body = info
        body.update({
            "status": status,
            "agent": c.name,
            "version": self.version,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "checks": checks,
            "implementation": self.implementation,
            "state": self.state,
            "group": c.group,
            "required": c.required,
            "in_flight": max(0, self.server.busy - 1),  # not counting this request
            "pid": os.getpid(),
        })
        return Response.json(body, 503 if status == "unhealthy" else 200)

    def _debug_state(self, req):
        from .trace import state_of

        return state_of(self)

    def _release_caches(self, request):
        freed = self.agent.release_caches()
        self.log.info("caches released", request.request_id, freed_bytes=freed or 0)
        return {"agent": self.config.name, "freed_bytes": int(freed or 0)}

    def _metrics(self, req) -> Response:
        return Response(200, self.metrics.render(self).encode(), CONTENT_TYPE)

    def agent_metrics_text(self) -> str:
        if not _overridden(self.agent, "metrics_text"):
            return ""
        try:
            return self.agent.metrics_text() or ""
        except Exception as e:
            self.log.exception("metrics_text() failed", e)
            return ""

    # ------------------------------------------------------------- tasks
    def _task_of(self, req) -> dict:
        task = req.json()
        if not isinstance(task, dict):
            raise HTTPError(400, 'a task is a JSON object like {"type": "...", "data": ...}')
        ttype = task.get("type")
        if not isinstance(ttype, str) or not ttype:
            raise HTTPError(400, 'the task needs a non-empty string field "type"')
        types = self.task_types
        if types and ttype not in types:
            req.task_type = "unsupported"
            raise HTTPError(400, f"task type {ttype!r} is not served by {self.config.name}; "
                                 f"it serves: {', '.join(types)}", task_types=list(types))
        req.task_type = ttype
        return task

    def _envelope(self, req, task: dict, result):
        if isinstance(result, Response):
            return result
        out = {"ok": True, "agent": self.config.name, "type": task["type"]}
        if "id" in task:
            out["id"] = task["id"]
        out["result"] = result
        out["request_id"] = req.request_id
        return out

    def _task_sync(self, req):
        task = self._task_of(req)
        key = idempotency.key_of(req)

        def run():
            result = self.agent.handle_task(task)
            if is_coroutine(result):
                result = self.get_aio().run_sync(result)
            return self._envelope(req, task, result)
        if key is None:
            return run()
        return self.keys.run(key, req.body, lambda: self.to_response(run()),
                             getattr(self.agent, "idempotency_store", None))

    async def _task_async(self, req):
        task = self._task_of(req)
        key = idempotency.key_of(req)

        async def run():
            return self._envelope(req, task, await self.agent.handle_task(task))
        if key is None:
            return await run()

        async def respond():
            return self.to_response(await run())
        return await self.keys.run_async(key, req.body, respond)


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)
