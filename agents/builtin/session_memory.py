"""SessionMemoryAgent (5574/6574): conversation sessions that expire (sessions.db).

    POST   /sessions                 {"id"?, "ttl_s"?, "metadata"?} → 201 the session
    GET    /sessions                 live sessions, most recently active first ?limit
    GET    /sessions/{id}            the session and its last ?limit turns (oldest first)
    DELETE /sessions/{id}            end it now
    POST   /sessions/{id}/turns      {"role", "content", "meta"?} → 201; renews the expiry
    POST   /sessions/{id}/touch      {"ttl_s"?} (or no body): renews the expiry
    POST   /task                     {"type": "session_memory", "data": {"op": "create" |
                                      "append" | "get" | "delete", "session", ...}}

Expiry is sliding: a session lives `ttl_s` (default SESSION_TTL_S, 1 h; 1 s-30 d)
after its last write (create, turn, touch); reading does not renew it. An expired session
answers 404 at once, even before the purge timer (SESSION_PURGE_S, 60 s) deletes it
with its turns. Bounds: SESSION_MAX_SESSIONS (10,000 live sessions: a new one beyond
it is 507), SESSION_MAX_TURNS (1,000 per session: the oldest turns are dropped, a
conversation window), content SESSION_MAX_CHARS (32 Ki), meta/metadata 4 KiB JSON.
"""
from __future__ import annotations

import json
import os
import time

from unified_agents import Agent, HTTPError, route
from unified_agents.periodic import Periodic
from unified_agents.store import Store, StoreFull, agent_store, count, counter_sql
from unified_agents.validate import (check_query, field_int, field_str, json_body, need_object,
                                     query_int)

DB_FILE = "sessions.db"
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-"
MAX_TTL_S = 30 * 86400

MIGRATIONS = [
    """
    CREATE TABLE sessions(
        id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,
        expires REAL NOT NULL, ttl_s REAL NOT NULL, metadata TEXT,
        turns INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX sessions_expires ON sessions(expires);
    CREATE INDEX sessions_updated ON sessions(updated);
    CREATE TABLE turns(
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        ts REAL NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, meta TEXT);
    CREATE INDEX turns_session ON turns(session_id, id);
    """ + counter_sql("sessions", "sessions"),
]


def _json_field(d: dict, name: str, limit: int = 4096):
    v = d.get(name)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise HTTPError(400, f'"{name}" must be a JSON object')
    s = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if len(s.encode()) > limit:
        raise HTTPError(413, f'"{name}" is {len(s.encode())} bytes as JSON; allowed: {limit}')
    return s


def _only(d: dict, allowed: tuple) -> None:
    unknown = set(d) - set(allowed)
    if unknown:
        raise HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: "
                             + ", ".join(allowed))


class SessionDB:
    def __init__(self, store: Store, *, default_ttl: float, max_sessions: int, max_turns: int,
                 max_chars: int, clock=time.time):
        self.store = store
        self.default_ttl = default_ttl
        self.max_sessions = max_sessions
        self.max_turns = max_turns
        self.max_chars = max_chars
        self.clock = clock
        self.purged = 0

    def _ttl(self, d: dict) -> float:
        return field_int(d, "ttl_s", default=self.default_ttl, lo=1, hi=MAX_TTL_S)

    def create(self, d: dict) -> dict:
        _only(d, ("id", "ttl_s", "metadata"))
        sid = field_str(d, "id", required=False, max_len=128, allowed=ID_CHARS) or \
            os.urandom(12).hex()
        ttl = self._ttl(d)
        meta = _json_field(d, "metadata")
        now = self.clock()

        def tx(c):
            old = c.execute("SELECT expires FROM sessions WHERE id = ?", (sid,)).fetchone()
            if old is not None:
                if old["expires"] > now:
                    raise HTTPError(409, f"session {sid!r} exists; allowed: a new id, or "
                                         "DELETE it first")
                c.execute("DELETE FROM sessions WHERE id = ?", (sid,))  # expired: reuse id
            n = count(c, "sessions")
            if n >= self.max_sessions:
                # expired ones not yet purged do not count against live sessions
                n -= c.execute("DELETE FROM sessions WHERE expires <= ?", (now,)).rowcount
                if n >= self.max_sessions:
                    raise StoreFull(f"{n} live sessions (SESSION_MAX_SESSIONS="
                                    f"{self.max_sessions}); end some first; nothing stored")
            c.execute("INSERT INTO sessions(id, created, updated, expires, ttl_s, metadata) "
                      "VALUES (?,?,?,?,?,?)", (sid, now, now, now + ttl, ttl, meta))
        self.store.write(tx)
        return {"id": sid, "created": now, "expires": now + ttl, "ttl_s": ttl,
                "metadata": json.loads(meta) if meta else None, "turns": 0}

    def _live(self, c, sid: str, now: float):
        row = c.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        if row is None:
            raise HTTPError(404, f"no session {sid!r}")
        if row["expires"] <= now:
            raise HTTPError(404, f"session {sid!r} expired {now - row['expires']:.0f} s ago",
                            expired=True)
        return row

    def append(self, sid: str, d: dict) -> dict:
        _only(d, ("role", "content", "meta"))
        role = field_str(d, "role", max_len=32, allowed=ID_CHARS)
        content = field_str(d, "content", min_len=0, max_len=self.max_chars)
        meta = _json_field(d, "meta")
        now = self.clock()

        def tx(c):
            row = self._live(c, sid, now)
            tid = c.execute("INSERT INTO turns(session_id, ts, role, content, meta) "
                            "VALUES (?,?,?,?,?)", (sid, now, role, content, meta)).lastrowid
            n = row["turns"] + 1
            if n > self.max_turns:  # keep the newest max_turns: a sliding window
                n -= c.execute("DELETE FROM turns WHERE session_id = ? AND id <= (SELECT id "
                               "FROM turns WHERE session_id = ? ORDER BY id DESC LIMIT 1 "
                               "OFFSET ?)", (sid, sid, self.max_turns)).rowcount
            expires = now + row["ttl_s"]
            c.execute("UPDATE sessions SET updated = ?, expires = ?, turns = ? WHERE id = ?",
                      (now, expires, n, sid))
            return tid, expires, n
        tid, expires, n = self.store.write(tx)
        return {"id": tid, "session": sid, "role": role, "ts": now, "expires": expires,
                "turns": n}

    def touch(self, sid: str, d: dict) -> dict:
        _only(d, ("ttl_s",))
        now = self.clock()

        def tx(c):
            row = self._live(c, sid, now)
            ttl = self._ttl(d) if "ttl_s" in d else row["ttl_s"]
            c.execute("UPDATE sessions SET updated = ?, expires = ?, ttl_s = ? WHERE id = ?",
                      (now, now + ttl, ttl, sid))
            return ttl
        ttl = self.store.write(tx)
        return {"id": sid, "expires": now + ttl, "ttl_s": ttl}

    def get(self, sid: str, limit: int = 100) -> dict:
        now = self.clock()

        def rd(c):
            row = self._live(c, sid, now)
            turns = c.execute("SELECT * FROM (SELECT * FROM turns WHERE session_id = ? ORDER BY "
                              "id DESC LIMIT ?) ORDER BY id", (sid, limit)).fetchall()
            return row, turns
        row, turns = self.store.read(rd)
        out = _session(row)
        out["turns_returned"] = len(turns)
        out["history"] = [{"id": t["id"], "ts": t["ts"], "role": t["role"],
                           "content": t["content"],
                           "meta": json.loads(t["meta"]) if t["meta"] else None}
                          for t in turns]
        return out

    def delete(self, sid: str) -> dict:
        n = self.store.write(lambda c: c.execute("DELETE FROM sessions WHERE id = ?",
                                                 (sid,)).rowcount)
        if not n:
            raise HTTPError(404, f"no session {sid!r}")
        return {"deleted": True, "id": sid}

    def list(self, limit: int) -> list:
        rows = self.store.query("SELECT * FROM sessions WHERE expires > ? ORDER BY updated "
                                "DESC LIMIT ?", (self.clock(), limit))
        return [_session(r) for r in rows]

    def purge(self) -> int:
        """Delete expired sessions (their turns go with them: ON DELETE CASCADE)."""
        n = self.store.write(lambda c: c.execute("DELETE FROM sessions WHERE expires <= ?",
                                                 (self.clock(),)).rowcount)
        self.purged += n
        return n

    def count(self) -> int:
        return self.store.read(lambda c: count(c, "sessions"))


def _session(r) -> dict:
    return {"id": r["id"], "created": r["created"], "updated": r["updated"],
            "expires": r["expires"], "ttl_s": r["ttl_s"], "turns": r["turns"],
            "metadata": json.loads(r["metadata"]) if r["metadata"] else None}


def _sid(request) -> str:
    return field_str({"id": request.params["id"]}, "id", max_len=128, allowed=ID_CHARS)


class SessionMemoryAgent(Agent):
    def on_start(self) -> None:
        env = self.config.env
        self.store = agent_store(self.config, DB_FILE, MIGRATIONS, log=self.log)
        # POST /task with an Idempotency-Key: the writes, the key and the answer commit
        # together, so a retry after a crash answers the first result (idempotency.py)
        self.idempotency_store = self.store
        self.db = SessionDB(
            self.store,
            default_ttl=env.integer("SESSION_TTL_S", 3600, 1, MAX_TTL_S),
            max_sessions=env.integer("SESSION_MAX_SESSIONS", 10_000, 1),
            max_turns=env.integer("SESSION_MAX_TURNS", 1000, 1),
            max_chars=env.integer("SESSION_MAX_CHARS", 32768, 1, 1 << 20))
        self.db.purge()
        self.purger = Periodic("session-purge", env.number("SESSION_PURGE_S", 60.0,
                                                            0.1, 86400),
                               self.db.purge, self.log).start()

    def on_stop(self) -> None:
        self.purger.stop()
        self.store.close()

    @route("POST", "/sessions")
    def create(self, request):
        return 201, self.db.create(need_object(json_body(request, optional=True) or {}))

    @route("GET", "/sessions")
    def list_sessions(self, request):
        check_query(request, ("limit",))
        rows = self.db.list(query_int(request, "limit", 100, 1, 1000))
        return {"count": len(rows), "sessions": rows}

    @route("GET", "/sessions/{id}")
    def get(self, request):
        check_query(request, ("limit",))
        return self.db.get(_sid(request), query_int(request, "limit", 100, 1, 10000))

    @route("DELETE", "/sessions/{id}", mutating=True)
    def delete(self, request):
        return self.db.delete(_sid(request))

    @route("POST", "/sessions/{id}/turns")
    def append(self, request):
        return 201, self.db.append(_sid(request), need_object(request.json()))

    @route("POST", "/sessions/{id}/touch")
    def touch(self, request):
        return self.db.touch(_sid(request), need_object(json_body(request, optional=True) or {}))

    def handle_task(self, task: dict):
        d = need_object(task.get("data"), '"data"')
        op = d.get("op")
        rest = {k: v for k, v in d.items() if k not in ("op", "session")}
        if op == "create":
            if "session" in d:
                rest["id"] = d["session"]
            return self.db.create(rest)
        sid = field_str(d, "session", max_len=128, allowed=ID_CHARS)
        if op == "append":
            return self.db.append(sid, rest)
        if op == "get":
            return self.db.get(sid, field_int(rest, "limit", default=100, lo=1, hi=10000))
        if op == "delete":
            self.authorize()  # the same rule as DELETE /sessions/ID
            return self.db.delete(sid)
        raise HTTPError(400, f"unknown op {op!r}; allowed: create, append, get, delete")

    def health_checks(self) -> dict:
        checks = {"database": self.store.health()}
        if self.purger.last_error:
            checks["purge"] = {"status": "degraded", "error": self.purger.last_error}
        return checks

    def health_info(self) -> dict:
        return {"sessions": self.db.count(), "max_sessions": self.db.max_sessions,
                "purged": self.db.purged}

    def metrics_text(self) -> str:
        lines = self.store.metrics_lines("unified_sessions")
        lines += ["# HELP unified_sessions_stored Sessions stored (expired ones until purged).",
                  "# TYPE unified_sessions_stored gauge",
                  f"unified_sessions_stored {self.db.count()}",
                  "# HELP unified_sessions_purged_total Expired sessions purged.",
                  "# TYPE unified_sessions_purged_total counter",
                  f"unified_sessions_purged_total {self.db.purged}"]
        return "\n".join(lines) + "\n"


AGENT = SessionMemoryAgent
