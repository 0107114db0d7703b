"""ServiceRegistry (7200/8200): the directory of agents, from the catalog and systemd.

    GET  /agents            every catalog agent; filters: ?state= ?group= ?profile=
                            ?task_type= ?required= ?in_profile=; ?health=false skips probes
    GET  /agents/NAME       one agent (404 with close names)
    POST /task              {"type": "registry_lookup", "data": "NAME" | {"name": N} |
                            {"task_type": T}}

Fed from the catalog (reloaded when one of its files changes) and from systemd (unit states
through unified_core.systemd, cached for a second so a burst of requests runs systemctl once),
never by agents phoning home: a crashed agent cannot claim to be up. Health is probed on the
HEALTH port of active agents only; a dormant agent's agent port would wake it (and its health
port is not even bound).

`FleetView` (catalog + systemd + health, thread-safe, cached) is the registry's engine;
LazyLoader and RequestCoordinator use it in-process too.

Known gap: the catalog is read from UNIFIED_CATALOG as the generator set it when this process
started; an edit is picked up when the file changes, even before `unified-ctl apply` makes
systemd use it (ports of already listening sockets change only then).
"""
from __future__ import annotations

import os
import threading
import time

from unified_agents import Agent, HTTPError, route

STATES = ("active", "starting", "dormant", "failed", "stopping", "stopped", "unknown")
_PROPS = ("Id", "ActiveState", "SubState", "Result", "MainPID", "NRestarts",
          "StateChangeTimestampMonotonic", "InactiveExitTimestampMonotonic",
          "ActiveEnterTimestampMonotonic")
_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def connect_host(bind: str) -> str:
    """Where to connect to an agent bound to `bind` (a wildcard is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)


class Snapshot:
    """One catalog + the selected profile, with the indexes every consumer needs. Immutable
    once built: readers take `view.snap` (one attribute read) and never lock."""

    def __init__(self, cat, profile: str, version: int, problem: str = ""):
        self.catalog = cat
        self.profile = profile
        self.version = version
        self.problem = problem  # why the last reload failed (the previous catalog is kept)
        self.host = connect_host(cat.settings.bind_address)
        prof = cat.profiles[profile]
        self.members = frozenset(prof.agents)
        self.autoload = frozenset(prof.autoload)
        self.profiles_of = {n: tuple(p.name for p in cat.profiles.values() if n in p.agents)
                            for n in cat.agents}
        by_task: dict = {}
        for a in cat.agents.values():
            for t in a.task_types:
                by_task.setdefault(t, []).append(a.name)
        self.by_task = {t: tuple(v) for t, v in by_task.items()}

    def close_names(self, name: str, n: int = 3) -> list[str]:
        import difflib

        names = list(self.catalog.agents)
        close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
        low = name.lower()
        close += [x for x in names if low and low in x.lower() and x not in close]
        return close[:n]


class UnitState:
    """One agent as systemd sees it. `startup_s`: the last start, from the start job
    (for a dormant agent: the connection that activated it) to READY=1."""

    __slots__ = ("state", "service", "socket", "pid", "restarts", "result", "since_wall",
                 "startup_s")

    def __init__(self, state, service, socket, pid, restarts, result, since_wall,
                 startup_s=None):
        self.state = state
        self.service = service
        self.socket = socket
        self.pid = pid
        self.restarts = restarts
        self.result = result
        self.since_wall = since_wall
        self.startup_s = startup_s


UNKNOWN = UnitState("unknown", "?", "?", None, 0, "", None)


def _int(v) -> int:
    try:
        n = int(v or 0)
    except ValueError:
        return 0
    return n if 0 <= n < 2**63 - 1 else 0


class FleetView:
    """The catalog and systemd's view of the fleet, cached and thread-safe.

    snap            the current Snapshot (swapped whole when the catalog or profile changes)
    states()        {agent: UnitState}: one list-units + one show of the loaded units, at
                    most once per state_ttl (concurrent callers share one refresh)
    health(names)   {agent: status} probing health ports, cached per agent for health_ttl
                    (None: the catalog's settings.health.interval), each probe waiting at
                    most settings.health.timeout
    """

    def __init__(self, catalog_path: str, *, systemd=None, probe=None, log=None,
                 state_ttl: float = 1.0, health_ttl: float | None = None,
                 watch_every: float = 2.0,
                 clock=time.monotonic):
        self.path = catalog_path
        self.log = log
        self.state_ttl = state_ttl
        self.health_ttl = health_ttl
        self.watch_every = watch_every
        self.clock = clock
        self._sd = systemd        # built on first use: the coordinator never asks systemd
        self._probe = probe
        self._lock = threading.Lock()          # catalog reloads
        self._state_lock = threading.Lock()    # single-flight systemctl refresh
        self._health_lock = threading.Lock()
        self._states: dict = {}
        self._states_at = None
        self._states_error = ""
        self._health: dict = {}                # agent -> (status, checked_at, pid)
        self._pool = None
        self._stamp = None
        self.counters = {"systemd_queries": 0, "systemd_errors": 0, "catalog_reloads": 0,
                         "catalog_errors": 0, "health_probes": 0}
        self.snap: Snapshot = self._load(version=1)  # raises when no catalog can be read
        self._stamp = self._files_stamp()

    @property
    def sd(self):
        if self._sd is None:
            from unified_core.systemd import Systemd

            self._sd = Systemd()
        return self._sd

    @property
    def probe(self):
        if self._probe is None:
            from unified_core.health import probe

            self._probe = probe
        return self._probe

    # ------------------------------------------------------------ catalog
    def _load(self, version: int) -> Snapshot:
        from unified_core.catalog import load_catalog
        from unified_core.errors import UnifiedError
        from unified_core.profiles import current_profile

        try:
            cat = load_catalog(self.path, env={})
            problem = ""
        except UnifiedError as e:
            problem = str(e)
            if getattr(self, "snap", None) is not None:
                raise _ReloadFailed(problem) from None
            from unified_core import paths

            last = os.path.join(paths.last_good_dir(), "unified.yaml")
            try:
                cat = load_catalog(last, env={})  # the generator's own fallback
            except UnifiedError as e2:
                raise RuntimeError(f"no usable catalog: {problem} -- and the last good one "
                                   f"{last}: {e2}") from None
            problem = f"{self.path} is invalid, using the last good catalog: {problem}"
        return Snapshot(cat, current_profile(cat), version, problem)

    def _files_stamp(self):
        from unified_core import paths

        files = list(self.snap.catalog.sources) + [paths.selected_profile_file()]
        confd = os.path.join(os.path.dirname(os.path.abspath(self.path)), "conf.d")
        stamp = []
        for f in files + [confd]:
            try:
                st = os.stat(f)
                stamp.append((f, st.st_mtime_ns, st.st_size))
            except OSError:
                stamp.append((f, None, None))
        return tuple(stamp)

    def refresh_catalog(self) -> bool:
        """Reload when a catalog file, a drop-in or the selected profile changed. → reloaded?"""
        with self._lock:
            stamp = self._files_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                snap = self._load(self.snap.version + 1)
            except _ReloadFailed as e:
                self.counters["catalog_errors"] += 1
                old = self.snap
                self.snap = Snapshot(old.catalog, old.profile, old.version,
                                     f"catalog change not applied (kept the previous): {e}")
                if self.log:
                    self.log.error("catalog reload failed; keeping the previous one",
                                   problem=str(e).splitlines()[0] if str(e) else "")
                return False
            self.counters["catalog_reloads"] += 1
            old, self.snap = self.snap, snap
        if self.log:
            self.log.info("catalog reloaded", profile=snap.profile, previous_profile=old.profile,
                          agents=len(snap.catalog.agents))
        self.invalidate()
        return True

    def current(self) -> Snapshot:
        """The snapshot with every file change made before this call, for a request about to
        refuse on the one it read earlier (409 "not in the current profile"). Not
        refresh_catalog()'s answer: False also means that another thread (the watcher) took
        the new stamp first and may be reloading right now; waiting for the reload lock and
        reading `snap` after it sees that thread's result."""
        self.refresh_catalog()
        return self.snap

    def start_watching(self) -> None:
        """A daemon thread stats the catalog files every watch_every seconds (three stat
        calls: nothing at rest) so that requests never pay for a reload."""
        def loop():
            while True:
                time.sleep(self.watch_every)
                try:
                    self.refresh_catalog()
                except Exception as e:  # never let the watcher die
                    if self.log:
                        self.log.exception("catalog watcher", e)

        threading.Thread(target=loop, name="catalog-watch", daemon=True).start()

    # ------------------------------------------------------------ systemd
    def invalidate(self) -> None:
        self._states_at = None

    def states(self, max_age: float | None = None):
        """→ ({agent: UnitState}, age_s, error). Unknown states when systemd cannot be asked."""
        ttl = self.state_ttl if max_age is None else max_age
        now = self.clock()
        at = self._states_at
        if at is not None and now - at <= ttl:
            return self._states, now - at, self._states_error
        with self._state_lock:
            at = self._states_at
            now = self.clock()
            if at is not None and now - at <= ttl:  # another thread refreshed meanwhile
                return self._states, now - at, self._states_error
            try:
                self.refresh_catalog()  # a profile switch just now: states match the profile
            except Exception as e:
                if self.log:
                    self.log.exception("catalog check failed", e)
            snap = self.snap
            try:
                states = self._query(snap)
                error = ""
            except Exception as e:  # SystemdError, timeouts: serve the catalog anyway
                self.counters["systemd_errors"] += 1
                states = {n: UNKNOWN for n in snap.catalog.agents}
                error = str(e).splitlines()[0] if str(e) else type(e).__name__
                if self.log and error != self._states_error:
                    self.log.warning("cannot read unit states from systemd", error=error)
            self._states, self._states_error = states, error
            self._states_at = self.clock()
            return states, 0.0, error

    def states_nowait(self, max_age: float = 5.0):
        """Like states() but never waits for systemctl: a stale (or empty, at first) answer
        comes back at once and a refresh runs in the background. For /health, which must
        answer within a readiness probe's timeout even while systemd is busy."""
        at = self._states_at
        if at is not None and self.clock() - at <= max_age:
            return self._states, self.clock() - at, self._states_error
        if not self._state_lock.locked():
            threading.Thread(target=self.states, args=(max_age,), daemon=True).start()
        if at is None:
            return None, None, self._states_error
        return self._states, self.clock() - at, self._states_error

    def _query(self, snap: Snapshot) -> dict:
        from unified_core.fleet import classify

        cat = snap.catalog
        self.counters["systemd_queries"] += 1
        loaded = {r["unit"] for r in self.sd.list_units(["unified-agent@*.service",
                                                         "unified-agent@*.socket"])}
        # Only loaded units are shown: naming unloaded instances makes systemd load them
        # (and their drop-ins) just to report them inactive.
        units = [u for a in cat.agents.values() for u in (a.service, a.socket) if u in loaded]
        props = self.sd.show(units, _PROPS) if units else {}
        now_wall, now_mono = time.time(), time.clock_gettime(time.CLOCK_MONOTONIC)
        out = {}
        for a in cat.agents.values():
            svc, sock = props.get(a.service, {}), props.get(a.socket, {})
            state = classify(svc, sock)
            running = state in ("active", "starting", "stopping")
            changed = max(_int(svc.get("StateChangeTimestampMonotonic")),
                          _int(sock.get("StateChangeTimestampMonotonic")))
            since = now_wall - (now_mono - changed / 1e6) if changed else None
            exited = _int(svc.get("InactiveExitTimestampMonotonic"))
            entered = _int(svc.get("ActiveEnterTimestampMonotonic"))
            startup = round((entered - exited) / 1e6, 3) if state == "active" and \
                entered >= exited > 0 else None
            out[a.name] = UnitState(
                state, f"{svc.get('ActiveState', 'inactive')}/{svc.get('SubState', 'dead')}",
                f"{sock.get('ActiveState', 'inactive')}/{sock.get('SubState', 'dead')}",
                (_int(svc.get("MainPID")) or None) if running else None,
                _int(svc.get("NRestarts")), svc.get("Result", ""), since, startup)
        return out

    # ------------------------------------------------------------ health
    def health(self, names, states: dict) -> dict:
        """{agent: status} for the given agents: probed (health port) when active, else
        None. Probes run in parallel, each cached for health_ttl."""
        out = {n: None for n in names}
        active = [n for n in names if states.get(n, UNKNOWN).state == "active"]
        if not active:
            return out
        now = self.clock()
        todo = []
        ttl = self.health_ttl
        if ttl is None:
            ttl = self.snap.catalog.settings.health.interval_s
        for n in active:
            h = self._health.get(n)
            if h is not None and now - h[1] <= ttl and h[2] == states[n].pid:
                out[n] = h[0]
            else:
                todo.append(n)
        if todo:
            with self._health_lock:
                snap = self.snap
                ports = [(n, snap.catalog.agents[n].health_port) for n in todo
                         if n in snap.catalog.agents]
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(8, thread_name_prefix="health-probe")
                timeout = snap.catalog.settings.health.timeout_s
                results = self._pool.map(lambda np: self.probe(snap.host, np[1], timeout),
                                         ports)
                checked = self.clock()
                for (n, _), r in zip(ports, results):
                    self.counters["health_probes"] += 1
                    self._health[n] = (r.status, checked, states[n].pid)
                    out[n] = r.status
        return out

    # ------------------------------------------------------------ views
    def entry(self, name: str, st: UnitState, health=None, with_health=False) -> dict:
        snap = self.snap
        a = snap.catalog.agents[name]
        e = {
            "name": a.name, "group": a.group, "host": snap.catalog.settings.host,
            "address": snap.host, "port": a.port, "health_port": a.health_port,
            "url": f"http://{_hostport(snap.host, a.port)}",
            "health_url": f"http://{_hostport(snap.host, a.health_port)}/health",
            "required": a.required, "depends_on": list(a.depends_on),
            "task_types": list(a.task_types), "profiles": list(snap.profiles_of[name]),
            "in_profile": name in snap.members,
            "autoload": name in snap.autoload,
            "state": st.state, "service": st.service, "socket": st.socket,
            "pid": st.pid, "restarts": st.restarts, "result": st.result,
            "since": iso(st.since_wall), "startup_s": st.startup_s,
            "since_s": round(time.time() - st.since_wall, 1) if st.since_wall else None,
        }
        if with_health:
            e["health"] = health
        return e

    def health_checks(self) -> dict:
        snap = self.snap
        checks = {"catalog": {"status": "degraded" if snap.problem else "ok",
                              "path": snap.catalog.path, "agents": len(snap.catalog.agents)}}
        if snap.problem:
            checks["catalog"]["problem"] = snap.problem[:500]
        if self._states_at is not None:
            checks["systemd"] = ({"status": "degraded", "error": self._states_error}
                                 if self._states_error else {"status": "ok"})
        return checks


class _ReloadFailed(Exception):
    pass


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def flag(request, name: str, default: bool) -> bool:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    if v.lower() in _TRUE:
        return True
    if v.lower() in _FALSE:
        return False
    raise HTTPError(400, f"?{name}={v!r} is invalid; allowed: true or false")


class ServiceRegistry(Agent):
    """The directory. Handlers are plain def: systemctl and probes block briefly."""

    def on_start(self) -> None:
        env = self.config.env
        self.view = FleetView(self.config.catalog, log=self.log,
                              state_ttl=env.number("REGISTRY_STATE_TTL_S", 1.0, 0.0, 60),
                              health_ttl=env.number("REGISTRY_HEALTH_TTL_S", None, 0.0, 60))
        self.view.start_watching()
        self.requests_by_route = {"list": 0, "get": 0, "lookup": 0}
        self._count_lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._count_lock:
            self.requests_by_route[kind] += 1

    # ------------------------------------------------------------ HTTP
    @route("GET", "/agents")
    def list_agents(self, request):
        self._count("list")
        # A few stat() calls: a profile switch a moment ago is never reported stale.
        self.view.refresh_catalog()
        snap = self.view.snap
        q = request.query
        names = list(snap.catalog.agents)
        for key in q:
            if key not in ("state", "group", "profile", "task_type", "required", "in_profile",
                           "health"):
                raise HTTPError(400, f"unknown filter ?{key}=; allowed: state, group, profile, "
                                     "task_type, required, in_profile, health")
        if "group" in q:
            groups = snap.catalog.groups
            if q["group"] not in groups:
                raise HTTPError(400, f"unknown group {q['group']!r}; allowed: "
                                     + ", ".join(sorted(groups)))
            names = [n for n in names if snap.catalog.agents[n].group == q["group"]]
        if "profile" in q:
            if q["profile"] not in snap.catalog.profiles:
                raise HTTPError(400, f"unknown profile {q['profile']!r}; allowed: "
                                     + ", ".join(snap.catalog.profiles))
            members = set(snap.catalog.profiles[q["profile"]].agents)
            names = [n for n in names if n in members]
        if "task_type" in q:
            names = [n for n in names if q["task_type"] in snap.catalog.agents[n].task_types]
        if "required" in q:
            req = flag(request, "required", True)
            names = [n for n in names if snap.catalog.agents[n].required == req]
        if "in_profile" in q:
            inp = flag(request, "in_profile", True)
            names = [n for n in names if (n in snap.members) == inp]
        if "state" in q and q["state"] not in STATES:
            raise HTTPError(400, f"unknown state {q['state']!r}; allowed: " + ", ".join(STATES))
        states, age, error = self.view.states()
        if "state" in q:
            names = [n for n in names if states.get(n, UNKNOWN).state == q["state"]]
        with_health = flag(request, "health", True)
        health = self.view.health(names, states) if with_health else {}
        agents = [self.view.entry(n, states.get(n, UNKNOWN), health.get(n), with_health)
                  for n in names]
        out = {"host": snap.catalog.settings.host, "profile": snap.profile,
               "catalog": snap.catalog.path, "count": len(agents),
               "states_age_s": round(age, 3), "agents": agents}
        if error:
            out["systemd_error"] = error
        return out

    @route("GET", "/agents/{name}")
    def get_agent(self, request):
        self._count("get")
        self.view.refresh_catalog()
        return self.lookup(request.params["name"], flag(request, "health", True))

    def lookup(self, name: str, with_health: bool = True) -> dict:
        snap = self.view.snap
        if name not in snap.catalog.agents:
            close = snap.close_names(name)
            raise HTTPError(404, f"unknown agent {name!r}"
                                 + (f"; did you mean {', '.join(close)}?" if close else "")
                                 + f" ({len(snap.catalog.agents)} agents: GET /agents lists them)",
                            did_you_mean=close)
        states, _, error = self.view.states()
        st = states.get(name, UNKNOWN)
        health = self.view.health([name], states).get(name) if with_health else None
        e = self.view.entry(name, st, health, with_health)
        if error:
            e["systemd_error"] = error
        return e

    def handle_task(self, task: dict):
        self._count("lookup")
        data = task.get("data")
        if isinstance(data, str):
            return self.lookup(data)
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return self.lookup(data["name"])
        if isinstance(data, dict) and isinstance(data.get("task_type"), str):
            snap = self.view.snap
            names = snap.by_task.get(data["task_type"], ())
            states, _, _ = self.view.states()
            return {"task_type": data["task_type"],
                    "agents": [self.view.entry(n, states.get(n, UNKNOWN)) for n in names]}
        raise HTTPError(400, 'registry_lookup needs "data": an agent name, {"name": NAME} or '
                             '{"task_type": TYPE}')

    # ------------------------------------------------------------ health and metrics
    def health_checks(self) -> dict:
        return self.view.health_checks()

    def health_info(self) -> dict:
        snap = self.view.snap
        return {"agents": len(snap.catalog.agents), "profile": snap.profile,
                "catalog": snap.catalog.path, "catalog_version": snap.version}

    def metrics_text(self) -> str:
        v = self.view
        lines = []
        for key, help_ in (("systemd_queries", "systemctl state queries (cache misses)."),
                           ("systemd_errors", "Failed systemctl state queries."),
                           ("catalog_reloads", "Catalog reloads after a file changed."),
                           ("catalog_errors", "Catalog changes refused as invalid."),
                           ("health_probes", "Health-port probes of active agents.")):
            name = f"unified_registry_{key}_total"
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter",
                      f"{name} {v.counters[key]}"]
        lines += ["# HELP unified_registry_requests_total Directory requests by kind.",
                  "# TYPE unified_registry_requests_total counter"]
        lines += [f'unified_registry_requests_total{{kind="{k}"}} {n}'
                  for k, n in sorted(self.requests_by_route.items())]
        if v._states_at is not None:
            counts = {s: 0 for s in STATES}
            for st in v._states.values():
                counts[st.state] = counts.get(st.state, 0) + 1
            lines += ["# HELP unified_registry_agents Catalog agents by state (last systemd read).",
                      "# TYPE unified_registry_agents gauge"]
            lines += [f'unified_registry_agents{{state="{s}"}} {n}' for s, n in counts.items()]
        return "\n".join(lines) + "\n"


AGENT = ServiceRegistry
