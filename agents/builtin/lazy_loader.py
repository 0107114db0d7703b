"""LazyLoader (7202/8202): the load policy and the view of what is loaded.

    POST /load {"agent": NAME[, "timeout": S]}   activate NAME and its dependencies, answer
                                                when healthy (200, with the duration) or why
                                                not: 404 unknown (lists the names), 409 not in
                                                the current profile (says which have it) or
                                                not restartable now, 503 socket failed, 504
                                                not healthy within the SLA
    GET  /loads                                 recent loads, requested and observed
    GET  /health                                + queue_size, loading, loaded, dormant,
                                                failed, last_loads, slow_loads_total

Socket activation already loads an agent on its first connection; this agent adds the
policy around it. Loading = connecting to the agent port of every agent of the dependency
chain that is not running (all at once: connections queue in the sockets systemd holds,
so the chain starts in parallel), waiting for each to answer, then for the target's HEALTH
port to report healthy, within the catalog's lazy_loader.load_timeout. At most
lazy_loader.max_concurrent_loads loads run at once; concurrent loads of one agent share one
activation. Loads slower than lazy_loader.slow_load_threshold are logged and counted
(unified_lazyloader_slow_loads_total, for the SlowAgentLoading alert).

Loads this agent did not request (a task sent through RequestCoordinator, a profile switch)
are observed from systemd when /health or /metrics is read: a new main PID with its start
job → READY=1 time (InactiveExit → ActiveEnter timestamps) is recorded as an observed load.

Restarts: while auto-restart is on, a failed agent whose socket still listens is brought
back by the same connection (systemd starts a failed service on socket activation). With
DISABLE_AUTO_RESTART (this agent's environment, or `unified-ctl auto-restart disable`) a
failed agent is left down: 409. A FAILED SOCKET (start-limit-hit after a crash loop) needs
`systemctl reset-failed` + start, which need root; this agent runs unprivileged and does
not get that right (no polkit rule: it would let any agent process restart any unit): it
answers 503 naming the operator's command, `unified-ctl agent start NAME`.

Runbook: `curl -X POST http://localhost:8202/load -d '{"agent": "AgentName"}'` goes to the
HEALTH port and sends no Content-Type: the body is parsed as JSON whatever its type. /load is
served on both ports (route(listener="both")).
"""
from __future__ import annotations

import socket
import threading
import time
from collections import deque

from unified_agents import Agent, HTTPError, route
from unified_agents.metrics import hist_add, hist_lines

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_PROBE = (b"GET /health HTTP/1.1\r\nHost: lazyloader\r\nUser-Agent: unified-lazyloader\r\n"
          b"Connection: close\r\n\r\n")


def _both_ports(method: str, path: str):
    """route() on the agent AND the health port (the runbook POSTs /load to 8202); a load
    starts services, so it is a mutating route (local callers or the token)."""
    return route(method, path, listener="both", mutating=True)


class LoadError(Exception):
    def __init__(self, status: int, message: str, **fields):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


class _Flight:
    """One activation in progress; requests for the same agent wait on it."""

    def __init__(self):
        self.done = threading.Event()
        self.result = None
        self.error = None


class Loader:
    """The load logic, independent of HTTP (tests drive it with a fake FleetView)."""

    def __init__(self, view, *, log=None, probe=None, clock=time.monotonic,
                 auto_restart=lambda: True, history: int = 200, view_ttl: float = 5.0):
        self.view = view
        self.log = log
        if probe is None:
            from unified_core.health import probe
        self.probe = probe
        self.clock = clock
        self.auto_restart = auto_restart
        self.view_ttl = view_ttl      # how stale /health's loaded/dormant lists may be
        ll = view.snap.catalog.lazy_loader
        self.slots = threading.BoundedSemaphore(ll.max_concurrent_loads)
        self.lock = threading.Lock()
        self.flights: dict[str, _Flight] = {}
        self.running: set = set()
        self.history: deque = deque(maxlen=history)
        self.last: dict = {}
        self.slow: dict = {}          # agent -> slow loads
        self.outcomes: dict = {}      # (agent, outcome) -> count
        self.hist: dict = {}          # source -> buckets + sum + count
        self.seen_pid: dict = {}      # agent -> main PID last seen active (observer)
        self.observed_once = False

    # ------------------------------------------------------------ the API
    @property
    def queue_size(self) -> int:
        """Activations in progress or waiting for a slot (distinct agents)."""
        return len(self.flights)

    def load(self, name: str, timeout: float | None = None) -> dict:
        # Always the catalog as it is now (three stat calls): a switch the watcher has not
        # seen yet may have added the agent, or taken it out (then starting it would run an
        # agent outside the profile until the next switch stops it as a stray).
        snap = self.view.current()
        cat = snap.catalog
        sla = cat.lazy_loader.load_timeout_s
        limit = sla if timeout is None else min(float(timeout), sla)
        if name not in cat.agents:
            close = snap.close_names(name)
            raise LoadError(404, f"unknown agent {name!r}"
                                 + (f"; did you mean {', '.join(close)}?" if close else ""),
                            did_you_mean=close, agents=sorted(cat.agents))
        if name not in snap.members:
            profiles = list(snap.profiles_of[name])
            raise LoadError(409, f"{name} is not in the current profile {snap.profile}; "
                                 f"profiles with it: {', '.join(profiles)} "
                                 f"(unified-ctl profile switch NAME)",
                            agent=name, profile=snap.profile, profiles=profiles)
        with self.lock:
            flight = self.flights.get(name)
            joined = flight is not None
            if flight is None:
                flight = self.flights[name] = _Flight()
        if joined:
            if not flight.done.wait(limit):
                raise LoadError(504, f"{name}: the activation in progress did not finish "
                                     f"within {limit:g} s", agent=name)
            if flight.error is not None:
                raise flight.error
            return dict(flight.result, joined=True)
        try:
            flight.result = self._load(name, limit)
            return flight.result
        except LoadError as e:
            flight.error = e
            raise
        except Exception as e:  # never leave joiners hanging on a bug
            flight.error = LoadError(500, f"loading {name} failed: {type(e).__name__}: {e}")
            raise flight.error from e
        finally:
            with self.lock:
                self.flights.pop(name, None)
            flight.done.set()

    # ------------------------------------------------------------ one load
    def _load(self, name: str, limit: float) -> dict:
        from unified_core.catalog import dependency_closure, dependency_order

        from unified_core.units import UNKNOWN

        t0 = self.clock()
        deadline = t0 + limit
        snap = self.view.snap
        cat = snap.catalog
        chain = dependency_order({n for n in dependency_closure({name}, cat.agents)
                                  if n in snap.members}, cat.agents)
        states, _, error = self.view.states(max_age=0.2)
        states = {n: states.get(n, UNKNOWN) for n in chain}
        st = states[name]
        if st.state == "active":
            h = self.probe(snap.host, cat.agents[name].health_port, min(1.0, limit))
            if h.ok:
                return {"agent": name, "ok": True, "already_loaded": True, "state": "active",
                        "health": h.status, "duration_s": round(self.clock() - t0, 3),
                        "activated": [], "profile": snap.profile}
        need = [n for n in chain if states[n].state != "active"]
        for n in need:
            self._check_loadable(n, states[n], name, error)
        if not self.slots.acquire(timeout=max(0.0, deadline - self.clock())):
            self._count(name, "timeout")
            raise LoadError(504, f"{name}: no load slot free within {limit:g} s "
                                 f"({cat.lazy_loader.max_concurrent_loads} loads at a time)",
                            agent=name)
        with self.lock:
            self.running.add(name)
        try:
            times = self._activate(snap, need, deadline, t0)
            health = self._wait_healthy(snap, name, deadline, limit)
        except LoadError:
            self._count(name, "failed")
            raise
        finally:
            self.slots.release()
            with self.lock:
                self.running.discard(name)
        seconds = self.clock() - t0
        slow = seconds > cat.lazy_loader.slow_load_threshold_s
        self._record(name, seconds, "requested", slow, activated=need)
        self._count(name, "ok")
        self._forget_pid(name)
        return {"agent": name, "ok": True, "already_loaded": not need, "state": "active",
                "health": health, "duration_s": round(seconds, 3), "activated": need,
                "activation_s": times, "slow": slow, "profile": snap.profile}

    def _check_loadable(self, n: str, st, target: str, error: str) -> None:
        what = n if n == target else f"{target}'s dependency {n}"
        if st.state == "unknown":
            raise LoadError(503, f"cannot read {what}'s state from systemd: {error}", agent=n)
        if st.socket.startswith("failed"):
            raise LoadError(503, f"{what}: its socket failed ({st.result or 'failed'}, e.g. a "
                                 f"crash loop hit the start limit); restarting it needs root: "
                                 f"unified-ctl agent start {n}", agent=n, state=st.state)
        if st.state == "stopped":
            raise LoadError(409, f"{what} is in profile {self.view.snap.profile} but its socket "
                                 f"is not listening (stopped by hand?); unified-ctl agent start "
                                 f"{n}", agent=n, state=st.state)
        if st.state == "failed" and not self.auto_restart():
            raise LoadError(409, f"{what} failed ({st.result}) and auto-restart is disabled "
                                 f"(DISABLE_AUTO_RESTART): it stays down until `unified-ctl "
                                 f"auto-restart enable` or `unified-ctl agent start {n}`",
                            agent=n, state=st.state)

    def _activate(self, snap, need: list, deadline: float, t0: float) -> dict:
        """Connect to every agent port at once, then wait for each to answer."""
        conns, times = {}, {}
        try:
            for n in need:
                port = snap.catalog.agents[n].port
                try:
                    s = socket.create_connection((snap.host, port),
                                                 timeout=max(0.1, deadline - self.clock()))
                    s.sendall(_PROBE)
                except OSError as e:
                    raise LoadError(503 if isinstance(e, ConnectionRefusedError) else 502,
                                    f"{n}: cannot connect to its agent port {port}: "
                                    f"{e.strerror or e}", agent=n) from None
                conns[n] = s
            for n, s in conns.items():
                left = deadline - self.clock()
                err: OSError | None = None  # why it did not answer
                try:
                    if left <= 0:
                        raise socket.timeout()
                    s.settimeout(left)
                    first = s.recv(64)
                except (socket.timeout, TimeoutError):
                    raise LoadError(504, f"{n} did not start within "
                                         f"{deadline - t0:g} s (its start job is still "
                                         f"running or it hangs; unified-ctl logs {n})",
                                    agent=n) from None
                except OSError as e:
                    first, err = b"", e
                else:
                    err = None
                if not first.startswith(b"HTTP/"):
                    why = f"{type(err).__name__}" if err else "closed the connection"
                    raise LoadError(502, f"{n} was activated but {why} before answering: "
                                         f"it probably failed to start (unified-ctl logs {n})",
                                    agent=n)
                times[n] = round(self.clock() - t0, 3)
        finally:
            for s in conns.values():
                s.close()
        return times

    def _wait_healthy(self, snap, name: str, deadline: float, limit: float) -> str:
        port = snap.catalog.agents[name].health_port
        last = "unreachable"
        while True:
            left = deadline - self.clock()
            h = self.probe(snap.host, port, max(0.05, min(1.0, left)))
            if h.ok:
                return h.status
            last = h.status
            if deadline - self.clock() <= 0:
                raise LoadError(504, f"{name} answers but is not healthy within {limit:g} s "
                                     f"(health: {last})", agent=name, health=last)
            time.sleep(min(0.05, max(0.0, deadline - self.clock())))

    # ------------------------------------------------------------ bookkeeping
    def _record(self, name: str, seconds: float, source: str, slow: bool, **extra) -> None:
        entry = {"agent": name, "seconds": round(seconds, 3), "source": source,
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "slow": slow, **extra}
        with self.lock:
            self.history.append(entry)
            self.last[name] = entry
            if slow:
                self.slow[name] = self.slow.get(name, 0) + 1
            hist_add(self.hist, source, seconds, BUCKETS)
        if slow and self.log:
            self.log.warning(f"slow load: {name} took {seconds:.2f} s", agent=name,
                             source=source,
                             threshold_s=self.view.snap.catalog.lazy_loader.slow_load_threshold_s)

    def _count(self, name: str, outcome: str) -> None:
        with self.lock:
            self.outcomes[(name, outcome)] = self.outcomes.get((name, outcome), 0) + 1

    def _forget_pid(self, name: str) -> None:
        """Our own load: the observer must not count the new process again."""
        states, _, _ = self.view.states(max_age=0)
        st = states.get(name)
        if st is not None and st.pid:
            with self.lock:
                self.seen_pid[name] = st.pid

    def observe(self, states) -> None:
        """Record activations we did not request: a new main PID of an active agent."""
        if states is None:
            return
        threshold = self.view.snap.catalog.lazy_loader.slow_load_threshold_s
        new = []
        with self.lock:
            for n, st in states.items():
                if st.state != "active" or not st.pid:
                    continue
                if n not in self.view.snap.members:
                    continue
                if self.seen_pid.get(n) != st.pid:
                    if self.observed_once and st.startup_s is not None:
                        new.append((n, st.startup_s))
                    self.seen_pid[n] = st.pid
            self.observed_once = True
        for n, secs in new:
            self._record(n, secs, "observed", secs > threshold)

    def view_info(self) -> dict:
        snap = self.view.snap
        states, age, error = self.view.states_nowait(self.view_ttl)
        self.observe(states)
        with self.lock:
            info = {"queue_size": len(self.flights), "loading": sorted(self.running),
                    "waiting": len(self.flights) - len(self.running)}
            last = {n: {"seconds": e["seconds"], "source": e["source"], "at": e["at"],
                        "slow": e["slow"]} for n, e in sorted(self.last.items())}
            slow_total = sum(self.slow.values())
        members = [n for n in snap.catalog.agents if n in snap.members]
        if states is not None:
            by = lambda s: [n for n in members if n in states and states[n].state == s]  # noqa
            info.update(loaded=by("active"), dormant=by("dormant"), failed=by("failed"),
                        states_age_s=round(age, 1))
        else:
            info.update(loaded=None, dormant=None, failed=None, states_age_s=None)
        if error:
            info["systemd_error"] = error
        ll = snap.catalog.lazy_loader
        info.update(last_loads=last, slow_loads_total=slow_total, profile=snap.profile,
                    auto_restart=self.auto_restart(), load_timeout_s=ll.load_timeout_s,
                    slow_load_threshold_s=ll.slow_load_threshold_s,
                    max_concurrent_loads=ll.max_concurrent_loads)
        return info


class LazyLoader(Agent):
    def on_start(self) -> None:
        from unified_core.fleetview import FleetView

        self.view = FleetView(self.config.catalog, log=self.log)
        self.view.start_watching()
        disabled_env = self.config.env.boolean("DISABLE_AUTO_RESTART", False)

        def auto_restart() -> bool:
            if disabled_env:
                return False
            from unified_core.runtime import auto_restart_disabled

            return not auto_restart_disabled()

        self.loader = Loader(self.view, log=self.log, auto_restart=auto_restart,
                             view_ttl=self.config.env.number("LAZYLOADER_VIEW_TTL_S",
                                                             5.0, 0.0, 300))

    @_both_ports("POST", "/load")
    def load(self, request):
        body = request.json()  # no Content-Type check: the runbook's curl sends none
        if not isinstance(body, dict) or not isinstance(body.get("agent"), str) \
                or not body["agent"]:
            raise HTTPError(400, 'expected a JSON object {"agent": "NAME"} '
                                 '(optional "timeout": seconds)')
        timeout = body.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or
                                    not isinstance(timeout, (int, float)) or timeout <= 0):
            raise HTTPError(400, f'"timeout" must be a positive number of seconds, not {timeout!r}')
        name = body["agent"]
        self.log.info(f"load {name} requested", request.request_id, listener=request.listener)
        try:
            result = self.loader.load(name, timeout)
        except LoadError as e:
            if e.status >= 500:
                self.log.warning(f"load {name} failed: {e.message}", request.request_id)
            raise HTTPError(e.status, e.message, **e.fields) from None
        self.log.info(f"{name} loaded in {result['duration_s']} s", request.request_id,
                      activated=",".join(result.get("activated") or []) or "-")
        return result

    @route("GET", "/loads")
    def loads(self, request):
        self.loader.observe(self.view.states_nowait(self.loader.view_ttl)[0])
        with self.loader.lock:
            return {"loads": list(self.loader.history)[::-1]}

    def health_checks(self) -> dict:
        return self.view.health_checks()

    def health_info(self) -> dict:
        return self.loader.view_info()

    def metrics_text(self) -> str:
        ld = self.loader
        ld.observe(self.view.states_nowait(ld.view_ttl)[0])
        # `target`: the agent loaded (`agent` is the file_sd target label: LazyLoader)
        out = ["# HELP unified_lazyloader_queue_size Activations in progress or waiting.",
               "# TYPE unified_lazyloader_queue_size gauge",
               f"unified_lazyloader_queue_size {ld.queue_size}"]
        with ld.lock:
            slow = sorted(ld.slow.items())
            last = sorted(ld.last.items())
            outcomes = sorted(ld.outcomes.items())
            hist = {k: list(v) for k, v in sorted(ld.hist.items())}
        out += ["# HELP unified_lazyloader_slow_loads_total Loads slower than "
                "lazy_loader.slow_load_threshold.",
                "# TYPE unified_lazyloader_slow_loads_total counter"]
        out += [f'unified_lazyloader_slow_loads_total{{target="{n}"}} {c}' for n, c in slow]
        out += ["# HELP unified_lazyloader_last_load_seconds Duration of each agent's last load.",
                "# TYPE unified_lazyloader_last_load_seconds gauge"]
        out += [f'unified_lazyloader_last_load_seconds{{target="{n}",source="{e["source"]}"}} '
                f'{e["seconds"]}' for n, e in last]
        out += ["# HELP unified_lazyloader_loads_total Requested loads by outcome.",
                "# TYPE unified_lazyloader_loads_total counter"]
        out += [f'unified_lazyloader_loads_total{{target="{n}",outcome="{o}"}} {c}'
                for (n, o), c in outcomes]
        out += ["# HELP unified_lazyloader_load_seconds Activation to healthy (requested) or "
                "start job to READY=1 (observed).",
                "# TYPE unified_lazyloader_load_seconds histogram"]
        out += hist_lines("unified_lazyloader_load_seconds",
                          ((f'source="{src}"', h) for src, h in hist.items()), BUCKETS)
        return "\n".join(out) + "\n"


AGENT = LazyLoader
