"""The fleet as one process sees it: the catalog (reloaded when its files change), systemd's
state of every agent (cached, one read at a time) and health probes of the active ones.

FleetView is the engine of ServiceRegistry's directory and what LazyLoader,
RequestCoordinator, SystemDigitalTwin and ObservabilityHub read the fleet through: one
catalog policy (a watcher stats the files; requests never pay for a reload), one way to ask
systemd (units.UnitReader), one cache (`states(max_age)`; `read()` for a timer that wants a
fresh answer or the error). It never connects to an agent port: a dormant agent's would wake
it, and a health port is probed only when systemd says the agent is active.

Known gap: the catalog is read from the path given (UNIFIED_CATALOG as the generator set it
when the process started); an edit is picked up when the file changes, even before
`unified-ctl apply` makes systemd use it (ports of already listening sockets change only then).
"""
from __future__ import annotations

import os
import threading
import time
from functools import cached_property

from .units import UNKNOWN

TYPE_CHECKING = False  # typing's constant without importing typing (agents' cold start)
if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


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


class FleetView:
    """The catalog and systemd's view of the fleet, cached and thread-safe.

    snap            the current Snapshot (swapped whole when the catalog or profile changes)
    states()        {agent: AgentUnit} (unified_core.units), read at most once per
                    state_ttl (concurrent callers share one read); unknown states when
                    systemd cannot be asked
    read()          ask systemd now (raises when it cannot be asked); the answer is also
                    what states() serves next: the hub's timer and the twin's poll use it
    reader          the UnitReader (units.py): which units are shown on each read
    health(names)   {agent: status} probing health ports, cached per agent for health_ttl
                    (None: the catalog's settings.health.interval), each probe waiting at
                    most settings.health.timeout
    """

    def __init__(self, catalog_path: str, *, systemd=None, probe=None, log=None,
                 state_ttl: float = 1.0, health_ttl: float | None = None,
                 watch_every: float = 2.0, events_ok=None, full_every_s: float = 60.0,
                 clock=time.monotonic):
        self.path = catalog_path
        self.log = log
        self.state_ttl = state_ttl
        self.health_ttl = health_ttl
        self.watch_every = watch_every
        self.clock = clock
        if systemd is not None:
            self.sd = systemd
        if probe is not None:
            self.probe = probe
        self._reader_args = {"events_ok": events_ok, "full_every_s": full_every_s,
                             "clock": clock}
        self._lock = threading.Lock()          # catalog reloads
        self._state_lock = threading.Lock()    # single-flight systemctl refresh
        self._health_lock = threading.Lock()
        self._states: dict = {}
        self._states_at = None
        self._states_error = ""
        self._health: dict = {}                # agent -> (status, checked_at, pid)
        self._pool: ThreadPoolExecutor | None = None
        self._stamp = None
        self.counters = {"systemd_queries": 0, "systemd_errors": 0, "catalog_reloads": 0,
                         "catalog_errors": 0, "health_probes": 0}
        self.snap: Snapshot = self._load(version=1)  # raises when no catalog can be read
        self._stamp = self._files_stamp()

    # Built on first use (a test passes its own): the coordinator never asks systemd, and
    # most of these agents never probe.
    @cached_property
    def sd(self):
        from .systemd import Systemd

        return Systemd()

    @cached_property
    def reader(self):
        from .units import UnitReader

        return UnitReader(self.sd, **self._reader_args)

    @cached_property
    def probe(self):
        from .health import probe

        return probe

    # ------------------------------------------------------------ catalog
    def _load(self, version: int) -> Snapshot:
        from .catalog import load_catalog
        from .errors import UnifiedError
        from .profiles import current_profile

        try:
            cat = load_catalog(self.path, env={})
            problem = ""
        except UnifiedError as e:
            problem = str(e)
            if getattr(self, "snap", None) is not None:
                raise _ReloadFailed(problem) from None
            from . import paths

            last = os.path.join(paths.last_good_dir(), "unified.yaml")
            try:
                cat = load_catalog(last, env={})  # the generator's own fallback
            except UnifiedError as e2:
                raise RuntimeError(f"no usable catalog: {problem} -- and the last good one "
                                   f"{last}: {e2}") from None
            problem = f"{self.path} is invalid, using the last good catalog: {problem}"
        return Snapshot(cat, current_profile(cat), version, problem)

    def _files_stamp(self):
        from . import paths

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
        """→ ({agent: AgentUnit}, age_s, error). Unknown states when systemd cannot be asked."""
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
                self._read()
            except Exception as e:  # SystemdError, timeouts: serve the catalog anyway
                error = str(e).splitlines()[0] if str(e) else type(e).__name__
                if self.log and error != self._states_error:
                    self.log.warning("cannot read unit states from systemd", error=error)
                self._states = {n: UNKNOWN for n in self.snap.catalog.agents}
                self._states_error = error
                self._states_at = self.clock()
            return self._states, 0.0, self._states_error

    def read(self):
        """Ask systemd now → (the Snapshot read for, {agent: AgentUnit}); raises when systemd
        cannot be asked (the cache keeps its last answer then)."""
        with self._state_lock:
            return self._read()

    def _read(self):
        try:
            self.refresh_catalog()  # a profile switch just now: states match the profile
        except Exception as e:
            if self.log:
                self.log.exception("catalog check failed", e)
        snap = self.snap
        self.counters["systemd_queries"] += 1
        try:
            units = self.reader.read(snap.catalog)
        except Exception:
            self.counters["systemd_errors"] += 1
            raise
        self._states, self._states_error = units, ""
        self._states_at = self.clock()
        return snap, units

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
