"""SystemDigitalTwin (7220/8220): the system's state and history, in SQLite (twin.db).

    GET  /state                   selected profile, every agent's last known state, last snapshot
    GET  /history/profiles        profile changes        ?since ?until ?limit ?after_id
    GET  /history/lifecycle       agent state changes     ?since ?until ?agent ?limit ?after_id
    GET  /history/snapshots       resource snapshots      ?since ?until ?agent ?limit ?after_id
    POST /snapshots               take a resource snapshot now
    POST /memory                  {"session", "role", "content", "meta"?}: add a conversation turn
    GET  /memory?session=S        the session's turns (last ?limit, or ?after_id onwards);
                                  without ?session: the sessions
    POST /memory/clear            clear all conversation memory (no body needed: the runbook's
                                  `curl -X POST http://localhost:7220/memory/clear`);
                                  {"session": S} or ?session=S clears one session
    POST /task                    {"type": "system_state", "data": {"op": "state" | ...}}

Times are accepted as unix seconds, ISO 8601 (2024-05-01T12:00:00Z) or an age ("7d", "24h",
"30m", "90s": that long ago); they are returned as `ts` (unix seconds) and `at` (ISO UTC).

Where the facts come from: a timer (TWIN_POLL_S, 5 s) asks systemd through the FleetView
the registry and the hub use too (unified_core/fleetview.py: one list-units of our units +
one `systemctl show` of the loaded ones) and re-reads the selected profile; every difference
from the last recorded state is a row. The last state is read back from the database at
start, so changes that happened while the twin was down (its own kill -9 included) are
recorded too, stamped with systemd's state-change time. Resource snapshots (TWIN_SNAPSHOT_S,
120 s) record memory/CPU per running agent (cgroup, else psutil over the unit's PIDs:
unified_core.fleet.cgroup_memory), VRAM per agent and GPU totals from `unified_agents.gpu` (NVML; no GPU is no GPU data, never an error). Retention runs
hourly. Schema and retention: docs/STATE.md.
"""
from __future__ import annotations

import json
import threading
import time

from unified_agents import Agent, HTTPError, route
from unified_agents.periodic import Periodic
from unified_agents.store import Store, agent_store
from unified_agents.validate import check_query, field_str, json_body, need_object, query_int
from unified_core.poller import Poller
from unified_core.timefmt import iso

from .twin_memory import NAME_CHARS, ConversationMemory

DB_FILE = "twin.db"
RUNNING = ("active", "starting", "stopping")
MIGRATIONS = [
    """
    CREATE TABLE profile_history(
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, profile TEXT NOT NULL, previous TEXT,
        reason TEXT NOT NULL);
    CREATE INDEX profile_history_ts ON profile_history(ts);
    CREATE TABLE lifecycle_events(
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, agent TEXT NOT NULL,
        event TEXT NOT NULL, state TEXT NOT NULL, previous TEXT,
        pid INTEGER, restarts INTEGER NOT NULL DEFAULT 0, result TEXT,
        service TEXT, socket TEXT);
    CREATE INDEX lifecycle_events_ts ON lifecycle_events(ts);
    CREATE INDEX lifecycle_events_agent ON lifecycle_events(agent, id);
    CREATE TABLE snapshots(
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, profile TEXT,
        active INTEGER NOT NULL, dormant INTEGER NOT NULL, failed INTEGER NOT NULL,
        memory_bytes INTEGER, cpu_seconds REAL, gpu TEXT);
    CREATE INDEX snapshots_ts ON snapshots(ts);
    CREATE TABLE snapshot_agents(
        snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
        agent TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER, memory_bytes INTEGER,
        cpu_seconds REAL, cpu_percent REAL, vram_mb REAL, restarts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY(snapshot_id, agent)) WITHOUT ROWID;
    CREATE INDEX snapshot_agents_agent ON snapshot_agents(agent, snapshot_id);
    CREATE TABLE conversation_turns(
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, session TEXT NOT NULL, role TEXT NOT NULL,
        content TEXT NOT NULL, meta TEXT);
    CREATE INDEX conversation_turns_session ON conversation_turns(session, id);
    """,
]


# ---------------------------------------------------------------------- time values


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(name: str, v: str, now: float) -> float:
    """unix seconds | ISO 8601 | an age such as 7d/24h/30m/90s (→ now - age)."""
    s = v.strip()
    try:
        return float(s)
    except ValueError:
        pass
    if len(s) >= 2 and s[-1] in _UNITS and s[:-1].replace(".", "", 1).isdigit():
        return now - float(s[:-1]) * _UNITS[s[-1]]
    from datetime import datetime, timezone

    try:
        d = datetime.fromisoformat(s)
    except ValueError:
        raise HTTPError(400, f"?{name}={v!r} is not a time; allowed: unix seconds, ISO 8601 "
                             "(2024-05-01T12:00:00Z) or an age such as 7d, 24h, 30m") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def time_range(request, now: float) -> tuple[float, float]:
    q = request.query
    since = parse_time("since", q["since"], now) if q.get("since") else 0.0
    until = parse_time("until", q["until"], now) if q.get("until") else now + 86400 * 365
    if since > until:
        raise HTTPError(400, f"?since= ({iso(since)}) is after ?until= ({iso(until)})")
    return since, until


# ---------------------------------------------------------------------- the database
class TwinDB:
    """Everything the twin reads and writes, as plain methods over a Store."""

    def __init__(self, store: Store):
        self.store = store
        self.memory = ConversationMemory(store)

    # -- profile history
    def last_profile(self):
        r = self.store.query("SELECT profile, ts FROM profile_history ORDER BY id DESC LIMIT 1")
        return (r[0]["profile"], r[0]["ts"]) if r else (None, None)

    def record_profile(self, ts: float, profile: str, previous, reason: str) -> None:
        self.store.write(lambda c: c.execute(
            "INSERT INTO profile_history(ts, profile, previous, reason) VALUES (?,?,?,?)",
            (ts, profile, previous, reason)))

    # -- lifecycle
    def last_states(self) -> dict:
        rows = self.store.query(
            "SELECT agent, state, pid, restarts, ts FROM lifecycle_events WHERE id IN "
            "(SELECT max(id) FROM lifecycle_events GROUP BY agent)")
        return {r["agent"]: (r["state"], r["pid"], r["restarts"], r["ts"]) for r in rows}

    def record_events(self, events: list) -> None:
        if not events:
            return
        self.store.write(lambda c: c.executemany(
            "INSERT INTO lifecycle_events(ts, agent, event, state, previous, pid, restarts, "
            "result, service, socket) VALUES (:ts,:agent,:event,:state,:previous,:pid,"
            ":restarts,:result,:service,:socket)", events))

    # -- snapshots
    def record_snapshot(self, snap: dict) -> int:
        def tx(c):
            cur = c.execute(
                "INSERT INTO snapshots(ts, profile, active, dormant, failed, memory_bytes, "
                "cpu_seconds, gpu) VALUES (?,?,?,?,?,?,?,?)",
                (snap["ts"], snap["profile"], snap["active"], snap["dormant"], snap["failed"],
                 snap["memory_bytes"], snap["cpu_seconds"],
                 json.dumps(snap["gpu"]) if snap.get("gpu") is not None else None))
            sid = cur.lastrowid
            c.executemany(
                "INSERT INTO snapshot_agents(snapshot_id, agent, state, pid, memory_bytes, "
                "cpu_seconds, cpu_percent, vram_mb, restarts) VALUES (?,?,?,?,?,?,?,?,?)",
                [(sid, a["agent"], a["state"], a["pid"], a["memory_bytes"], a["cpu_seconds"],
                  a["cpu_percent"], a["vram_mb"], a["restarts"]) for a in snap["agents"]])
            return sid
        return self.store.write(tx)

    def snapshots(self, since, until, agent=None, limit=100, after_id=0) -> list:
        def rd(c):
            heads = c.execute(
                "SELECT * FROM snapshots WHERE ts >= ? AND ts <= ? AND id > ? "
                "ORDER BY id LIMIT ?", (since, until, after_id, limit)).fetchall()
            out = []
            for h in heads:
                sql = "SELECT * FROM snapshot_agents WHERE snapshot_id = ?"
                args = [h["id"]]
                if agent:
                    sql += " AND agent = ?"
                    args.append(agent)
                rows = c.execute(sql + " ORDER BY agent", args).fetchall()
                out.append(_snapshot_dict(h, rows))
            return out
        return self.store.read(rd)

    def resources(self, since, until, agent=None, limit=200000) -> list:
        """Flat per-agent rows of the snapshots in [since, until], oldest first."""
        sql = ("SELECT s.ts AS ts, a.* FROM snapshots s JOIN snapshot_agents a "
               "ON a.snapshot_id = s.id WHERE s.ts >= ? AND s.ts <= ?")
        args: list = [since, until]
        if agent:
            sql += " AND a.agent = ?"
            args.append(agent)
        rows = self.store.query(sql + " ORDER BY s.id, a.agent LIMIT ?", args + [limit])
        return [_resource(r, r["ts"]) for r in rows]

    def last_snapshot(self):
        def rd(c):
            h = c.execute("SELECT * FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
            if h is None:
                return None
            rows = c.execute("SELECT * FROM snapshot_agents WHERE snapshot_id = ? "
                             "ORDER BY agent", (h["id"],)).fetchall()
            return _snapshot_dict(h, rows)
        return self.store.read(rd)

    # -- history reads
    def profiles(self, since, until, limit=100, after_id=0) -> list:
        rows = self.store.query(
            "SELECT * FROM profile_history WHERE ts >= ? AND ts <= ? AND id > ? "
            "ORDER BY id LIMIT ?", (since, until, after_id, limit))
        return [{"id": r["id"], "ts": r["ts"], "at": iso(r["ts"]), "profile": r["profile"],
                 "previous": r["previous"], "reason": r["reason"]} for r in rows]

    def lifecycle(self, since, until, agent=None, limit=100, after_id=0) -> list:
        sql = "SELECT * FROM lifecycle_events WHERE ts >= ? AND ts <= ? AND id > ?"
        args: list = [since, until, after_id]
        if agent:
            sql += " AND agent = ?"
            args.append(agent)
        rows = self.store.query(sql + " ORDER BY id LIMIT ?", args + [limit])
        return [{"id": r["id"], "ts": r["ts"], "at": iso(r["ts"]), "agent": r["agent"],
                 "event": r["event"], "state": r["state"], "previous": r["previous"],
                 "pid": r["pid"], "restarts": r["restarts"], "result": r["result"],
                 "service": r["service"], "socket": r["socket"]} for r in rows]

    # -- retention
    def prune(self, now: float, snapshot_days: float, event_days: float, profile_days: float,
              memory_days: float, memory_max_turns: int) -> dict:
        def tx(c):
            out = {}
            for key, sql, days in (
                    ("snapshots", "DELETE FROM snapshots WHERE ts < ?", snapshot_days),
                    ("lifecycle_events", "DELETE FROM lifecycle_events WHERE ts < ? AND id NOT "
                     "IN (SELECT max(id) FROM lifecycle_events GROUP BY agent)", event_days),
                    ("profile_history", "DELETE FROM profile_history WHERE ts < ? AND id < "
                     "(SELECT max(id) FROM profile_history)", profile_days)):
                if days > 0:  # 0 = keep forever; the last state of each kind always stays
                    out[key] = c.execute(sql, (now - days * 86400,)).rowcount
            if memory_days > 0 or memory_max_turns > 0:
                out["conversation_turns"] = self.memory.prune(c, now, memory_days,
                                                              memory_max_turns)
            return out
        removed = self.store.write(tx)
        if sum(removed.values()):
            self.store.vacuum_free()
        return removed

    def counts(self) -> dict:
        return {t: self.store.query(f"SELECT count(*) FROM {t}")[0][0]
                for t in ("profile_history", "lifecycle_events", "snapshots",
                          "conversation_turns")}


def _snapshot_dict(h, rows) -> dict:
    return {"id": h["id"], "ts": h["ts"], "at": iso(h["ts"]), "profile": h["profile"],
            "active": h["active"], "dormant": h["dormant"], "failed": h["failed"],
            "memory_bytes": h["memory_bytes"], "cpu_seconds": h["cpu_seconds"],
            "gpu": json.loads(h["gpu"]) if h["gpu"] else None,
            "agents": [_resource(r) for r in rows]}


def _resource(r, ts=None) -> dict:
    d = {"agent": r["agent"], "state": r["state"], "pid": r["pid"],
         "memory_bytes": r["memory_bytes"], "cpu_seconds": r["cpu_seconds"],
         "cpu_percent": r["cpu_percent"], "vram_mb": r["vram_mb"], "restarts": r["restarts"]}
    if ts is not None:
        d = {"ts": ts, "at": iso(ts), "snapshot_id": r["snapshot_id"], **d}
    return d


# ---------------------------------------------------------------------- the observer
class Observer(Poller):
    """Polls systemd and the selected profile; turns every difference into rows. A Poller
    (unified_core/poller.py), like the hub's systemd collector: the same timer, error count
    and staleness rule; `poll()` is one run that returns the events it recorded.

    `view` is a unified_core.fleetview.FleetView: the catalog + selected profile (reloaded
    when their files change) and systemd's state of every agent (`view.read()`, the same
    reader as the registry's and the hub's)."""

    name = "systemd"

    def __init__(self, db: TwinDB, view, log=None, gpu=None, interval_s: float = 5.0):
        super().__init__(interval_s, log=log)
        self.db = db
        self.view = view
        self.log = log
        self.gpu = gpu
        self.lock = threading.Lock()       # one poll at a time (timer vs POST /snapshots)
        self.current: dict = {}            # agent -> last known state (for GET /state)
        self.units: dict = {}              # agent -> AgentUnit (unified_core.units) of the last poll
        self.polled_at: float | None = None
        self.error = ""
        self.profile, self.profile_since = db.last_profile()
        self.known = db.last_states()      # agent -> (state, pid, restarts, ts)
        self.polls = self.events = 0
        self.gpu_reason = ""
        self.gpu_available: bool | None = None   # None: no snapshot yet (GET /health shows it)
        self._cpu_prev: dict = {}          # agent -> (pid, cpu seconds, monotonic) of last snapshot

    def collect(self) -> None:
        self.poll()

    def poll(self) -> list:
        with self.lock:
            return self._poll()

    def _poll(self) -> list:
        self.view.refresh_catalog()
        snap = self.view.snap
        now = time.time()
        if snap.profile != self.profile:
            reason = "startup" if self.profile is None else "switched"
            self.db.record_profile(now, snap.profile, self.profile, reason)
            if self.log:
                self.log.info("profile recorded", profile=snap.profile, previous=self.profile)
            self.profile, self.profile_since = snap.profile, now
        try:
            snap, units = self.view.read()
        except Exception as e:  # logged by the Poller (once per distinct error)
            self.error = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise
        self.error = ""
        events, current = [], {}
        for a in snap.catalog.agents.values():
            u = units[a.name]
            state, pid, since = u.state, u.pid, u.since_wall
            row = {"agent": a.name, "state": state, "pid": pid, "restarts": u.restarts,
                   "result": u.result or None, "service": u.service, "socket": u.socket}
            current[a.name] = dict(row, since=since)
            old = self.known.get(a.name)
            if old is None:
                event, previous = "observed", None
            elif old[0] != state:
                event, previous = "state", old[0]
            elif state == "active" and pid is not None and old[1] is not None and pid != old[1]:
                event, previous = "restarted", old[0]  # e.g. kill -9 and Restart= within a poll
            else:
                continue
            # systemd's own time of the change (when it is after what we knew), else now
            ts = since if (since and event != "observed" and since > (old[3] if old else 0)
                           and since <= now) else now
            events.append(dict(row, ts=ts, event=event, previous=previous))
        self.db.record_events(events)
        for ev in events:
            self.known[ev["agent"]] = (ev["state"], ev["pid"], ev["restarts"], ev["ts"])
        self.current, self.units, self.polled_at = current, units, now
        self.polls += 1
        self.events += len(events)
        return events

    def snapshot(self) -> dict:
        """Record memory/CPU/VRAM of every running agent (systemd data of the last poll)."""
        with self.lock:
            if self.polled_at is None or time.time() - self.polled_at > 2.0:
                self._poll()
            from unified_core.fleet import cgroup_memory

            gpu, vram = self._gpu()
            now_mono = time.monotonic()
            agents, counts = [], {"active": 0, "dormant": 0, "failed": 0}
            total_mem, total_cpu = 0, 0.0
            for name, cur in self.current.items():
                st = cur["state"]
                if st in counts:
                    counts[st] += 1
                if st not in RUNNING:
                    continue
                u = self.units.get(name)
                mem = u.memory_current if u else None
                if mem is None and u is not None:
                    try:
                        mem = cgroup_memory(u.cgroup)
                    except Exception:  # psutil missing or a PID gone: no number, no crash
                        mem = None
                cpu_s = u.cpu_ns / 1e9 if u and u.cpu_ns is not None \
                    else _process_cpu(cur["pid"])
                cpu_pct = None
                prev = self._cpu_prev.get(name)
                if cpu_s is not None:
                    if prev and prev[0] == cur["pid"] and now_mono > prev[2]:
                        cpu_pct = round(max(0.0, cpu_s - prev[1]) / (now_mono - prev[2]) * 100, 2)
                    self._cpu_prev[name] = (cur["pid"], cpu_s, now_mono)
                total_mem += mem or 0
                total_cpu += cpu_s or 0.0
                agents.append({"agent": name, "state": st, "pid": cur["pid"],
                               "memory_bytes": mem, "cpu_seconds": cpu_s, "cpu_percent": cpu_pct,
                               "vram_mb": round(vram[name] / 2**20, 1) if name in vram else None,
                               "restarts": cur["restarts"]})
            snap = {"ts": time.time(), "profile": self.profile, **counts,
                    "memory_bytes": total_mem, "cpu_seconds": round(total_cpu, 3),
                    "gpu": gpu, "agents": agents}
            snap["id"] = self.db.record_snapshot(snap)
            snap["at"] = iso(snap["ts"])
            return snap

    def _gpu(self):
        """(GPU totals for the snapshot or None, {agent: VRAM bytes}) via unified_agents.gpu;
        no GPU (or no NVML bindings) is simply no GPU data: the reason is logged once and shown
        in GET /health (checks.gpu)."""
        if self.gpu is None:
            return None, {}
        try:
            g = self.gpu.read_snapshot()
        except Exception as e:  # NoGpu and NVML errors alike
            if self.log and not self.gpu_reason:
                self.log.info(f"snapshots without GPU data: {e}")
            self.gpu_reason = str(e) or type(e).__name__
            self.gpu_available = False
            return None, {}
        self.gpu_reason = ""
        self.gpu_available = True
        return ({"total_bytes": g.total_bytes, "used_bytes": g.used_bytes,
                 "gpus": [{"index": x.index, "name": x.name, "used_bytes": x.used_bytes,
                           "total_bytes": x.total_bytes,
                           "utilization_percent": x.utilization_percent} for x in g.gpus]},
                g.by_agent())


def _process_cpu(pid):
    """CPU seconds of one process (where systemd's CPUUsageNSec is not set: hybrid cgroups)."""
    if not pid:
        return None
    import psutil  # a Depends of the package: missing is an error, not silently no CPU data

    try:
        t = psutil.Process(pid).cpu_times()
        return round(t.user + t.system, 3)
    except (psutil.Error, OSError):  # gone or hidden
        return None


# ---------------------------------------------------------------------- the agent
class SystemDigitalTwin(Agent):
    def on_start(self) -> None:
        env = self.config.env
        self.store = agent_store(self.config, DB_FILE, MIGRATIONS, log=self.log)
        # POST /task with an Idempotency-Key: the writes, the key and the answer commit
        # together, so a retry after a crash answers the first result (idempotency.py)
        self.idempotency_store = self.store
        self.db = TwinDB(self.store)
        self.max_content = env.integer("TWIN_MEMORY_MAX_CHARS", 32768, 1, 1 << 20)
        self.retention = {
            "snapshot_days": env.number("TWIN_SNAPSHOT_DAYS", 35.0, 0.0),
            "event_days": env.number("TWIN_EVENT_DAYS", 400.0, 0.0),
            "profile_days": env.number("TWIN_PROFILE_DAYS", 0.0, 0.0),
            "memory_days": env.number("TWIN_MEMORY_DAYS", 0.0, 0.0),
            "memory_max_turns": env.integer("TWIN_MEMORY_MAX_TURNS", 100_000, 0),
        }
        from unified_agents import gpu  # imports NVML only when reading: no GPU is no error
        from unified_core.fleetview import FleetView

        view = FleetView(self.config.catalog, log=self.log)
        self.observer = Observer(self.db, view, self.log, gpu,
                                 interval_s=env.number("TWIN_POLL_S", 5.0, 0.5, 3600))
        # The state at start, before READY; systemd unreachable: serve history anyway, the
        # timer retries.
        self.observer.run_once()
        self.observer.start()
        self.timers = [
            Periodic("twin-snapshot", env.number("TWIN_SNAPSHOT_S", 120.0, 1.0, 86400),
                     self.observer.snapshot, self.log, first_delay=5.0).start(),
            Periodic("twin-retention", 3600.0, self.prune, self.log, first_delay=60.0).start(),
        ]

    def on_stop(self) -> None:
        self.observer.stop(5.0)
        for t in self.timers:
            t.stop()
        self.store.close()

    def prune(self) -> dict:
        removed = self.db.prune(time.time(), **self.retention)
        if sum(removed.values()):
            self.log.info("retention removed rows", **removed)
        return removed

    # ------------------------------------------------------------ state and history
    @route("GET", "/state")
    def state(self, request):
        check_query(request, ())
        return self.state_doc()

    def state_doc(self) -> dict:
        o = self.observer
        agents = {n: dict(c, since=iso(c["since"])) for n, c in sorted(o.current.items())}
        counts: dict = {}
        for c in o.current.values():
            counts[c["state"]] = counts.get(c["state"], 0) + 1
        return {"profile": o.profile, "profile_since": iso(o.profile_since),
                "polled_at": iso(o.polled_at), "systemd_error": o.error or None,
                "counts": counts, "agents": agents, "last_snapshot": self.db.last_snapshot()}

    @route("GET", "/history/profiles")
    def history_profiles(self, request):
        check_query(request, ("since", "until", "limit", "after_id"))
        since, until = time_range(request, time.time())
        rows = self.db.profiles(since, until, query_int(request, "limit", 100, 1, 10000),
                                query_int(request, "after_id", 0, 0, 2**62))
        return {"count": len(rows), "profiles": rows}

    @route("GET", "/history/lifecycle")
    @route("GET", "/history/events")
    def history_lifecycle(self, request):
        q = check_query(request, ("since", "until", "agent", "limit", "after_id"))
        since, until = time_range(request, time.time())
        rows = self.db.lifecycle(since, until, self._agent(q.get("agent")),
                                 query_int(request, "limit", 100, 1, 10000),
                                 query_int(request, "after_id", 0, 0, 2**62))
        return {"count": len(rows), "events": rows}

    @route("GET", "/history/snapshots")
    def history_snapshots(self, request):
        q = check_query(request, ("since", "until", "agent", "limit", "after_id"))
        since, until = time_range(request, time.time())
        rows = self.db.snapshots(since, until, self._agent(q.get("agent")),
                                 query_int(request, "limit", 100, 1, 1000),
                                 query_int(request, "after_id", 0, 0, 2**62))
        return {"count": len(rows), "snapshots": rows}

    def _agent(self, name):
        if name is None or name == "":
            return None
        if name not in self.observer.view.snap.catalog.agents:
            raise HTTPError(404, f"unknown agent {name!r}; GET http://localhost:7200/agents "
                                 "lists them")
        return name

    @route("GET", "/history/resources")
    def history_resources(self, request):
        """One row per agent per snapshot (what reports chart): ts, agent, memory_bytes,
        cpu_percent, vram_mb ..."""
        q = check_query(request, ("since", "until", "agent", "limit"))
        since, until = time_range(request, time.time())
        rows = self.db.resources(since, until, self._agent(q.get("agent")),
                                 query_int(request, "limit", 200000, 1, 1000000))
        return {"count": len(rows), "resources": rows}

    @route("POST", "/snapshots")
    def take_snapshot(self, request):
        json_body(request, optional=True)  # no body needed; a bad one is still a 400
        return 201, self.observer.snapshot()

    # ------------------------------------------------------------ conversation memory
    @route("POST", "/memory")
    def memory_add(self, request):
        return 201, self.db.memory.add_turn(need_object(request.json()), self.max_content)

    @route("GET", "/memory")
    def memory_get(self, request):
        q = check_query(request, ("session", "limit", "after_id"))
        limit = query_int(request, "limit", 100, 1, 10000)
        if not q.get("session"):
            return {"sessions": self.db.memory.sessions(limit)}
        after = query_int(request, "after_id", -1, 0, 2**62) if "after_id" in q else None
        turns = self.db.memory.get(q["session"], limit, after)
        return {"session": q["session"], "count": len(turns), "turns": turns}

    @route("POST", "/memory/clear", mutating=True)
    def memory_clear(self, request):
        q = check_query(request, ("session",))
        body = json_body(request, optional=True)
        session = q.get("session") or None
        if body is not None:
            session = field_str(need_object(body), "session", required=False, max_len=128,
                                allowed=NAME_CHARS) or session
        out = self.db.memory.clear(session)
        self.log.info("conversation memory cleared", scope=session or "all", **out)
        return dict(out, scope=session or "all")

    # ------------------------------------------------------------ tasks
    def handle_task(self, task: dict):
        data = task.get("data")
        data = {"op": data} if isinstance(data, str) else (data or {"op": "state"})
        need_object(data, '"data"')
        op = data.get("op", "state")
        if op == "state":
            return self.state_doc()
        if op == "memory_add":
            return self.db.memory.add_turn({k: v for k, v in data.items() if k != "op"},
                                           self.max_content)
        if op == "memory_get":
            session = field_str(data, "session", max_len=128, allowed=NAME_CHARS)
            return {"session": session, "turns": self.db.memory.get(session, 100)}
        if op == "memory_clear":
            self.authorize()  # the same rule as POST /memory/clear
            return self.db.memory.clear(field_str(data, "session", required=False,
                                                  max_len=128, allowed=NAME_CHARS))
        raise HTTPError(400, f"unknown op {op!r}; allowed: state, memory_add, memory_get, "
                             "memory_clear")

    # ------------------------------------------------------------ health and metrics
    def health_checks(self) -> dict:
        checks = {"database": self.store.health()}
        o = self.observer
        age = None if o.polled_at is None else time.time() - o.polled_at
        poll_s = self.observer.interval_s
        if o.error or age is None or age > 3 * poll_s + 5:
            checks["systemd"] = {"status": "degraded", "error": o.error or "no recent poll",
                                 "last_poll_age_s": None if age is None else round(age, 1)}
        else:
            checks["systemd"] = {"status": "ok", "last_poll_age_s": round(age, 1)}
        # optional: snapshots without GPU data are fine, but say so and why
        checks["gpu"] = {"status": "ok", "available": o.gpu_available, "reason": o.gpu_reason or None}
        return checks

    def health_info(self) -> dict:
        return {"profile": self.observer.profile, "rows": self.db.counts()}

    def metrics_text(self) -> str:
        o = self.observer
        lines = self.store.metrics_lines("unified_twin")
        lines += ["# HELP unified_twin_polls_total systemd polls by the twin.",
                  "# TYPE unified_twin_polls_total counter", f"unified_twin_polls_total {o.polls}",
                  "# HELP unified_twin_lifecycle_events_total Lifecycle events recorded.",
                  "# TYPE unified_twin_lifecycle_events_total counter",
                  f"unified_twin_lifecycle_events_total {o.events}",
                  "# HELP unified_twin_rows Rows per table.", "# TYPE unified_twin_rows gauge"]
        lines += [f'unified_twin_rows{{table="{t}"}} {n}' for t, n in self.db.counts().items()]
        return "\n".join(lines) + "\n"


AGENT = SystemDigitalTwin
