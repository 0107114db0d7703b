"""The twin's conversation memory: `conversation_turns` in twin.db (POST/GET /memory, POST
/memory/clear of SystemDigitalTwin; the runbook clears it with
`curl -X POST http://localhost:7220/memory/clear`).

Why not SessionMemoryAgent: its sessions expire (sliding TTL, at most 30 days) and must be
created first; this is the durable record of conversations, kept until an operator clears it
(or TWIN_MEMORY_DAYS / TWIN_MEMORY_MAX_TURNS), in the database the twin already backs up with
the rest of the system's history. And SessionMemoryAgent depends on the twin (it starts after
it): the twin calling it would make the dependency a cycle. docs/ARCHITECTURE.md says this too.
"""
from __future__ import annotations

import json
import time

from unified_agents import HTTPError
from unified_agents.validate import field_str
from unified_core.timefmt import iso

NAME_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-"


class ConversationMemory:
    """Turns by session, over the twin's Store (the table is in the twin's MIGRATIONS)."""

    def __init__(self, store):
        self.store = store

    def add_turn(self, d: dict, max_content: int) -> dict:
        """A request's turn {"session", "role", "content", "meta"?} → stored, its id."""
        session = field_str(d, "session", max_len=128, allowed=NAME_CHARS)
        role = field_str(d, "role", max_len=32, allowed=NAME_CHARS)
        content = field_str(d, "content", max_len=max_content, min_len=0)
        meta = d.get("meta")
        if meta is not None:
            if not isinstance(meta, dict):
                raise HTTPError(400, '"meta" must be a JSON object')
            meta = json.dumps(meta, separators=(",", ":"))
            if len(meta) > 4096:
                raise HTTPError(413, f'"meta" is {len(meta)} bytes as JSON; allowed: 4096')
        unknown = set(d) - {"session", "role", "content", "meta"}
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: "
                                 "session, role, content, meta")
        ts = time.time()
        tid = self.add(ts, session, role, content, meta)
        return {"id": tid, "session": session, "role": role, "ts": ts, "at": iso(ts)}

    def add(self, ts, session, role, content, meta) -> int:
        return self.store.write(lambda c: c.execute(
            "INSERT INTO conversation_turns(ts, session, role, content, meta) VALUES (?,?,?,?,?)",
            (ts, session, role, content, meta)).lastrowid)

    def get(self, session, limit, after_id=None) -> list:
        if after_id is not None:
            rows = self.store.query(
                "SELECT * FROM conversation_turns WHERE session = ? AND id > ? "
                "ORDER BY id LIMIT ?", (session, after_id, limit))
        else:  # the last `limit` turns, oldest first
            rows = self.store.query(
                "SELECT * FROM (SELECT * FROM conversation_turns WHERE session = ? "
                "ORDER BY id DESC LIMIT ?) ORDER BY id", (session, limit))
        return [_turn(r) for r in rows]

    def sessions(self, limit) -> list:
        rows = self.store.query(
            "SELECT session, count(*) AS turns, min(ts) AS first, max(ts) AS last "
            "FROM conversation_turns GROUP BY session ORDER BY last DESC LIMIT ?", (limit,))
        return [{"session": r["session"], "turns": r["turns"], "first": iso(r["first"]),
                 "last": iso(r["last"])} for r in rows]

    def clear(self, session=None) -> dict:
        def tx(c):
            if session is None:
                n_s = c.execute("SELECT count(DISTINCT session) FROM conversation_turns"
                                ).fetchone()[0]
                n = c.execute("DELETE FROM conversation_turns").rowcount
            else:
                n = c.execute("DELETE FROM conversation_turns WHERE session = ?",
                              (session,)).rowcount
                n_s = 1 if n else 0
            return {"cleared_turns": n, "cleared_sessions": n_s}
        return self.store.write(tx)

    @staticmethod
    def prune(c, now: float, days: float, max_turns: int) -> int:
        """Retention inside the twin's retention transaction (`c`): turns older than `days`
        (0: keep), then all but the newest `max_turns` (0: no bound). → rows removed."""
        n = 0
        if days > 0:
            n += c.execute("DELETE FROM conversation_turns WHERE ts < ?",
                           (now - days * 86400,)).rowcount
        if max_turns > 0:
            n += c.execute("DELETE FROM conversation_turns WHERE id <= (SELECT id FROM "
                           "conversation_turns ORDER BY id DESC LIMIT 1 OFFSET ?)",
                           (max_turns,)).rowcount
        return n


def _turn(r) -> dict:
    return {"id": r["id"], "ts": r["ts"], "at": iso(r["ts"]), "session": r["session"],
            "role": r["role"], "content": r["content"],
            "meta": json.loads(r["meta"]) if r["meta"] else None}
