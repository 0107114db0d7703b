"""RequestCoordinator (7201/8201): routes a task by its type to the agent that serves it.

    POST /task {"type": "vision", "data": ...}   → the serving agent's own answer, unchanged
    GET  /circuit_breakers                       → per-agent breaker state (the hub reads it)

Routing comes from the catalog (`task_types` of each agent; the current profile's agent wins
when several declare a type), built once per catalog version: a request costs one dict
lookup. The task is forwarded byte for byte to the agent's AGENT port over a keep-alive
connection pool; a dormant agent is activated by that very connection (socket activation)
and answers once started. The request id (X-Request-ID) goes along, so one id follows the
task through both agents' logs.

Failure handling, per agent:
  * circuit breaker (agents/breaker.py): opens after COORDINATOR_BREAKER_FAILURES consecutive
    failures (5xx answers, timeouts, refused/reset connections; 4xx are the caller's
    fault and count as success), one half-open probe after COORDINATOR_BREAKER_RESET_S;
    while open, tasks are refused at once with 503 + Retry-After;
  * timeout COORDINATOR_TASK_TIMEOUT_S (default: the catalog's lazy-load SLA, 30 s: a dormant
    agent's cold start is part of the first task);
  * retries, at most COORDINATOR_FORWARD_RETRIES, only where the agent should not have seen
    the task: connection refused, or a pooled keep-alive connection closed with no answer
    (the agent closed it while idle: keep-alive timeout, idle exit, restart). Timeouts and
    answers are never retried (a task may not be idempotent). An idle connection the agent
    has closed is normally seen (EOF) and dropped before it is used, so that retry path is
    left for the race of a close arriving while a task is sent. An agent killed while
    handling a task on a reused connection looks the same: every forward carries an
    Idempotency-Key (the caller's, or a uuid4 made here), kept on the retries, so an SDK
    agent that already ran the task answers its first result instead of running it again
    (durably for the state agents: agents/idempotency.py). A fresh connection's failure is
    never retried: the caller may retry with its own key;
  * at most COORDINATOR_AGENT_CONCURRENCY tasks in flight per agent (default MAX_THREADS - 2:
    a bulkhead, so one slow agent cannot take every worker thread), over it 503 +
    Retry-After. Forwards block a worker thread each: MAX_THREADS bounds the tasks in
    flight (the catalog gives this agent more threads than the default 8).
"""
from __future__ import annotations

import socket
import threading
import time
import uuid

from unified_agents import Agent, HTTPError, Response, guard, idempotency, route, trace
from unified_agents.breaker import STATE_VALUE, Breaker, BreakerOpen
from unified_agents.metrics import hist_add, hist_lines

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0, 30.0)


class Unreachable(Exception):
    """The agent could not be asked or did not answer. `retry`: it cannot have seen the task."""

    def __init__(self, reason: str, retry: bool, status: int = 502):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.status = status


class Pool:
    """Keep-alive HTTP/1.1 connections to one agent (LIFO: the warmest one first)."""

    def __init__(self, host: str, port: int, max_idle: int = 32):
        self.host, self.port, self.max_idle = host, port, max_idle
        self.idle: list = []
        self.lock = threading.Lock()
        self.dropped_closed = 0   # idle connections the agent had closed, found before use

    def _new(self, timeout: float):
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def post(self, path: str, body: bytes, headers: dict, timeout: float):
        """→ (status, content_type, body). Unreachable on any transport failure."""
        import http.client

        conn = self._take_idle()
        reused = conn is not None
        try:
            if conn is None:
                conn = self._new(timeout)
            else:
                conn.sock.settimeout(timeout)
            if trace.on:
                trace.mark("connect")
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
            if trace.on:
                trace.mark("agent")
        except ConnectionRefusedError:
            _close(conn)
            raise Unreachable("connection refused (agent socket not listening)", True) from None
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            _close(conn)
            # A pooled connection the agent closed while idle (idle exit, keep-alive
            # timeout): nothing of this task reached a handler, so another try is safe.
            raise Unreachable(f"connection closed by the agent ({type(e).__name__})",
                              reused) from None
        except (socket.timeout, TimeoutError):
            _close(conn)
            raise Unreachable(f"no answer within {timeout:g} s", False, 504) from None
        except (OSError, http.client.HTTPException) as e:
            _close(conn)
            raise Unreachable(f"{type(e).__name__}: {e}", False) from None
        if resp.will_close:
            conn.close()
        else:
            with self.lock:
                if len(self.idle) < self.max_idle:
                    self.idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()
        return resp.status, resp.getheader("Content-Type", "application/json"), data

    def _take_idle(self):
        """The warmest idle connection the agent has not closed meanwhile (None: open a new
        one). A closed one shows as readable (EOF) while idle: dropping it here, instead of
        learning it from a failed send, keeps tasks off the ambiguous retry path below."""
        import select

        while True:
            with self.lock:
                if not self.idle:
                    return None
                conn = self.idle.pop()
            sock = conn.sock
            try:   # poll, not select: no FD_SETSIZE limit on a busy coordinator
                p = select.poll()
                p.register(sock, select.POLLIN)
                readable = bool(p.poll(0))
            except (OSError, ValueError, TypeError, AttributeError):   # no socket any more
                readable = True
            if not readable:
                return conn
            self.dropped_closed += 1
            _close(conn)

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for c in idle:
            _close(c)


def _close(conn) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


class Target:
    """Where one task type goes (rebuilt with the routing table)."""

    __slots__ = ("agent", "in_profile", "profiles", "pool", "breaker", "slots")

    def __init__(self, agent, in_profile, profiles, pool, breaker, slots):
        self.agent = agent
        self.in_profile = in_profile
        self.profiles = profiles
        self.pool = pool
        self.breaker = breaker
        self.slots = slots


class RequestCoordinator(Agent):
    def on_start(self) -> None:
        from unified_core.fleetview import FleetView

        env = self.config.env
        self.view = FleetView(self.config.catalog, log=self.log)
        self.view.start_watching()
        cat = self.view.snap.catalog
        self.failures = env.integer("COORDINATOR_BREAKER_FAILURES", 5, 1, 1000)
        self.reset_s = env.number("COORDINATOR_BREAKER_RESET_S", 30.0, 0.1, 3600)
        self.timeout = env.number("COORDINATOR_TASK_TIMEOUT_S", cat.lazy_loader.load_timeout_s,
                                  0.1, 3600)
        self.retries = env.integer("COORDINATOR_FORWARD_RETRIES", 2, 0, 5)
        self.concurrency = env.integer("COORDINATOR_AGENT_CONCURRENCY",
                                       max(1, self.config.max_threads - 2), 1, 1024)
        self.breakers: dict[str, Breaker] = {}
        self.pools: dict[tuple, Pool] = {}
        self.slots: dict[str, threading.BoundedSemaphore] = {}
        self.routes: dict[str, Target] = {}
        self.routes_version = -1
        self.route_lock = threading.Lock()
        self.mlock = threading.Lock()
        self.outcomes: dict = {}   # (type, agent, outcome) -> count
        self.hist: dict = {}       # agent -> [bucket counts..., sum, count]
        self.retried: dict = {}    # agent -> count
        self._routing()

    # ------------------------------------------------------------ routing table
    def _routing(self) -> dict:
        snap = self.view.snap
        if snap.version == self.routes_version:
            return self.routes
        with self.route_lock:
            if snap.version == self.routes_version:
                return self.routes
            routes = {}
            host = snap.host
            for ttype, agents in snap.by_task.items():
                name = next((a for a in agents if a in snap.members), agents[0])
                a = snap.catalog.agents[name]
                key = (name, host, a.port)
                pool = self.pools.get(key)
                if pool is None:
                    old = [k for k in self.pools if k[0] == name]
                    for k in old:  # the agent moved: its old connections are useless
                        self.pools.pop(k).close()
                    pool = self.pools[key] = Pool(host, a.port)
                br = self.breakers.get(name)
                if br is None:
                    br = self.breakers[name] = Breaker(name, self.failures, self.reset_s,
                                                       on_change=self._breaker_changed)
                slots = self.slots.get(name)
                if slots is None:
                    slots = self.slots[name] = threading.BoundedSemaphore(self.concurrency)
                routes[ttype] = Target(name, name in snap.members, snap.profiles_of[name],
                                       pool, br, slots)
            self.routes, self.routes_version = routes, snap.version
            return routes

    def _breaker_changed(self, br: Breaker, old: str, new: str) -> None:
        req = self.request
        rid = req.request_id if req is not None else None
        log = self.log.warning if new == "open" else self.log.info
        log(f"circuit breaker {old} -> {new}", rid, agent=br.name,
            failures=br.snapshot()["failures"], last_failure=br.last_failure or "-")

    # ------------------------------------------------------------ tasks
    def handle_task(self, task: dict):
        ttype = task["type"]
        target = self.route_of(ttype)
        req = self.request
        rid = req.request_id
        if req.trace is not None:
            req.trace.append(("route", time.monotonic()))
        if not target.slots.acquire(blocking=False):
            self._count(ttype, target.agent, "busy")
            raise HTTPError(503, f"{target.agent} already has {self.concurrency} tasks in flight",
                            agent=target.agent, headers={"Retry-After": "1"})
        try:
            return self._forward(target, ttype, req.body, rid)
        finally:
            target.slots.release()

    def route_of(self, ttype: str) -> Target:
        """The target serving `ttype` in the current profile; 400 unknown type, 409 served
        only outside the profile."""
        target = self._routing().get(ttype)
        if target is None or not target.in_profile:
            # Before refusing: the profile or catalog may have changed since the watcher's
            # last look (a switch that just finished). Three stat calls, off the hot path;
            # _routing() rebuilds when the snapshot is newer, whoever reloaded it.
            self.view.current()
            target = self._routing().get(ttype)
        if target is None:
            known = sorted(self.routes)
            self._count(ttype, "-", "unknown_type")
            raise HTTPError(400, f"unknown task type {ttype!r}; known types: {', '.join(known)}",
                            known_types=known)
        if not target.in_profile:
            snap = self.view.snap
            self._count(ttype, target.agent, "not_in_profile")
            raise HTTPError(409, f"task type {ttype!r} is served by {target.agent}, which is not "
                                 f"in profile {snap.profile}; profiles with it: "
                                 f"{', '.join(target.profiles)} (unified-ctl profile switch NAME)",
                            agent=target.agent, profile=snap.profile,
                            profiles=list(target.profiles))
        return target

    def _refuse_if_left(self, ttype: str) -> None:
        """Raise route_of's 409 (or 400) when, read again now, the profile no longer serves
        `ttype`; return when it still does."""
        self.view.current()
        self.route_of(ttype)

    def _forward(self, target: Target, ttype: str, body: bytes, rid: str):
        agent = target.agent
        # at most once (agents/idempotency.py): the caller's key or a new one, the same on
        # every retry below, so an agent that already ran the task answers its first result
        key = idempotency.key_of(self.request) or str(uuid.uuid4())
        try:
            ticket = target.breaker.admit()
        except BreakerOpen as e:
            self._count(ttype, agent, "breaker_open")
            raise HTTPError(503, str(e), agent=agent, breaker="open",
                            headers={"Retry-After": str(max(1, int(e.retry_after + 0.999)))}) \
                from None
        # the caller's trust travels with the task (guard.py): a task from an untrusted
        # caller reaches the agent marked remote, so its mutating ops stay refused
        headers = guard.current().outgoing_headers()
        headers.update({"Content-Type": "application/json", "X-Request-ID": rid,
                        idempotency.HEADER: key})
        t0 = time.monotonic()
        ok, reason = False, "unexpected error"
        try:
            attempt = 0
            while True:
                try:
                    status, ctype, data = target.pool.post("/task", body, headers, self.timeout)
                    break
                except Unreachable as e:
                    if not e.retry or attempt >= self.retries:
                        reason = e.reason
                        if e.retry:
                            # Refused: nobody listens. A switch that just took the agent out
                            # of the profile closed its socket before the watcher saw the
                            # new profile: that is a 409, not the agent's failure.
                            self._refuse_if_left(ttype)
                        self._count(ttype, agent, "timeout" if e.status == 504 else "unreachable")
                        self.log.warning(f"forward to {agent} failed: {e.reason}", rid,
                                         type=ttype, attempts=attempt + 1)
                        raise HTTPError(e.status, f"{agent} did not answer: {e.reason}",
                                        agent=agent) from None
                    attempt += 1
                    with self.mlock:
                        self.retried[agent] = self.retried.get(agent, 0) + 1
                    time.sleep(0.05 * attempt)  # refused: the socket may be coming back
            ok = status < 500
            reason = "" if ok else f"HTTP {status}"
        finally:
            target.breaker.record(ticket, ok, reason)
            self._observe(agent, time.monotonic() - t0)
        self._count(ttype, agent, "ok" if ok else "agent_error")
        if not ok:
            self.log.warning(f"{agent} answered {status}", rid, type=ttype)
        elif self.log.threshold >= 7:
            self.log.debug(f"routed {ttype} to {agent}: {status}", rid)
        return Response(status, data, ctype, {"X-Routed-To": agent})

    # ------------------------------------------------------------ views
    @route("GET", "/circuit_breakers")
    def circuit_breakers(self, request):
        self._routing()
        return {"agents": {n: b.snapshot() for n, b in sorted(self.breakers.items())},
                "open": sorted(n for n, b in self.breakers.items() if b.state == "open"),
                "config": {"failure_threshold": self.failures, "reset_timeout_s": self.reset_s,
                           "task_timeout_s": self.timeout, "retries": self.retries,
                           "agent_concurrency": self.concurrency}}

    @route("GET", "/routes")
    def route_table(self, request):
        routes = self._routing()
        return {"profile": self.view.snap.profile,
                "routes": {t: {"agent": r.agent, "in_profile": r.in_profile,
                               "port": r.pool.port, "breaker": r.breaker.state}
                           for t, r in sorted(routes.items())}}

    def health_checks(self) -> dict:
        checks = self.view.health_checks()
        checks.pop("systemd", None)  # the coordinator never asks systemd
        return checks

    def health_info(self) -> dict:
        opened = sorted(n for n, b in self.breakers.items() if b.state == "open")
        return {"routes": len(self.routes), "profile": self.view.snap.profile,
                "breakers_open": opened}

    def _count(self, ttype: str, agent: str, outcome: str) -> None:
        k = (ttype, agent, outcome)
        with self.mlock:
            self.outcomes[k] = self.outcomes.get(k, 0) + 1

    def _observe(self, agent: str, seconds: float) -> None:
        with self.mlock:
            hist_add(self.hist, agent, seconds, BUCKETS)

    def metrics_text(self) -> str:
        # The agent a series is about is `target`, never `agent`: Prometheus's file_sd
        # target label `agent` (the coordinator itself) would rename it exported_agent.
        out = ["# HELP unified_circuit_breaker_state Circuit breaker per target agent: "
               "0 closed, 1 half-open, 2 open.",
               "# TYPE unified_circuit_breaker_state gauge"]
        snaps = {n: b.snapshot() for n, b in sorted(self.breakers.items())}
        out += [f'unified_circuit_breaker_state{{target="{n}"}} {STATE_VALUE[s["state"]]}'
                for n, s in snaps.items()]
        for key, kind, help_ in (
                ("failures_total", "counter", "Failed forwards (5xx, timeout, unreachable)."),
                ("opens_total", "counter", "Times the breaker opened."),
                ("rejected_total", "counter", "Tasks refused while the breaker was open."),
                ("failures", "gauge", "Consecutive failures now.")):
            name = f"unified_circuit_breaker_{key}" if key != "failures" else \
                "unified_circuit_breaker_consecutive_failures"
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
            out += [f'{name}{{target="{n}"}} {s[key]}' for n, s in snaps.items()]
        with self.mlock:
            outcomes = sorted(self.outcomes.items())
            hist = {a: list(h) for a, h in sorted(self.hist.items())}
            retried = sorted(self.retried.items())
        out += ["# HELP unified_coordinator_tasks_total Tasks by type, target agent and outcome.",
                "# TYPE unified_coordinator_tasks_total counter"]
        out += [f'unified_coordinator_tasks_total{{type="{_esc(t)}",target="{a}",'
                f'outcome="{o}"}} {n}' for (t, a, o), n in outcomes]
        out += ["# HELP unified_coordinator_retries_total Forwards tried again (refused or "
                "stale connection).", "# TYPE unified_coordinator_retries_total counter"]
        out += [f'unified_coordinator_retries_total{{target="{a}"}} {n}' for a, n in retried]
        out += ["# HELP unified_coordinator_forward_seconds Forward to the agent and its answer.",
                "# TYPE unified_coordinator_forward_seconds histogram"]
        out += hist_lines("unified_coordinator_forward_seconds",
                          ((f'target="{a}"', h) for a, h in hist.items()), BUCKETS)
        return "\n".join(out) + "\n"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


AGENT = RequestCoordinator
