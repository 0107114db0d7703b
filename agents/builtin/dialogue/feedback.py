"""FeedbackHandler (5636/6636, task `feedback`): ratings and corrections of the assistant's
answers, stored with the turn they belong to, for the learning agents (feedback.db).

    POST /task {"type": "feedback", "op": "rate", "session", "turn_id", "rating": 1..5,
                "comment"?}
    POST /task {"type": "feedback", "op": "correct", "session", "turn_id",
                "text": "set a timer for five minutes"}          ("no, I meant ...")
      → {"id", "kind", "session", "turn_id", "rating"|"correction", "turn": {"user",
         "assistant", "intent", "tier"}}
    POST /task {"type": "feedback", "op": "list", "session"?, "kind"?, "after_id"?, "limit"?}
      → {"items": [...], "last_id"}        (what a learning agent reads, in order)

The turn is looked up in SessionMemoryAgent (`session_memory`, through RequestCoordinator)
when the feedback arrives: it must be an assistant turn of that session (else 404), and what
was asked and answered is copied into the record, so the feedback still means something
after the session expired. Sessions: `unified-ctl ask --session` (docs/DIALOGUE.md).
"""
from __future__ import annotations

import json
import time

from unified_agents import Agent, HTTPError
from unified_agents.store import agent_store
from unified_agents.validate import field_int, field_str

from .peers import DEFAULT_URL, Peers, Unavailable

MIGRATIONS = [
    """
    CREATE TABLE feedback(
        id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, session TEXT NOT NULL,
        turn_id INTEGER NOT NULL, rating INTEGER, correction TEXT, comment TEXT,
        turn TEXT NOT NULL);
    CREATE INDEX feedback_session ON feedback(session, turn_id);
    """,
]


def _item(r) -> dict:
    out = {"id": r["id"], "ts": r["ts"], "kind": r["kind"], "session": r["session"],
           "turn_id": r["turn_id"], "turn": json.loads(r["turn"])}
    if r["kind"] == "rating":
        out["rating"] = r["rating"]
        out["comment"] = r["comment"]
    else:
        out["correction"] = r["correction"]
    return out


class FeedbackHandler(Agent):
    version = "1.0.0"
    task_types = ("feedback",)

    def on_start(self) -> None:
        env = self.config.env
        self.peers = Peers(env.string("DIALOGUE_COORDINATOR_URL", DEFAULT_URL),
                           env.number("DIALOGUE_TIMEOUT_S", 30.0, 0.1, 600))
        self.store = agent_store(self.config, "feedback.db", MIGRATIONS, log=self.log)
        self.idempotency_store = self.store

    def on_stop(self) -> None:
        self.store.close()

    def handle_task(self, task: dict):
        op = task.get("op")
        if op == "list":
            return self.list_(task)
        if op not in ("rate", "correct"):
            raise HTTPError(400, f"op {op!r} is invalid; allowed: rate, correct, list")
        session = field_str(task, "session", max_len=128)
        turn_id = field_int(task, "turn_id", required=True, lo=1)
        rating = correction = comment = None
        if op == "rate":
            rating = field_int(task, "rating", required=True, lo=1, hi=5)
            comment = field_str(task, "comment", required=False, max_len=2000)
        else:
            correction = field_str(task, "text", max_len=2000)
        turn = self._turn(session, turn_id)
        kind = "rating" if op == "rate" else "correction"
        now = time.time()
        fid = self.store.write(lambda c: c.execute(
            "INSERT INTO feedback(ts, kind, session, turn_id, rating, correction, comment, turn) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, kind, session, turn_id, rating, correction, comment, json.dumps(turn))).lastrowid)
        self.log.info(f"{kind} of turn {turn_id} stored", session=session, id=fid)
        rows = self.store.query("SELECT * FROM feedback WHERE id = ?", (fid,))
        return _item(rows[0])

    def _turn(self, session: str, turn_id: int) -> dict:
        """The assistant turn `turn_id` of the session and the user turn before it."""
        try:
            s, _ = self.peers.task("session_memory", {"data": {"op": "get", "session": session,
                                                               "limit": 1000}})
        except Unavailable as e:
            if e.status == 404:
                raise HTTPError(404, f"no session {session!r} (expired or never started)") \
                    from None
            raise HTTPError(502, f"cannot read the session: {e.why}") from None
        hist = s.get("history") or []
        for i, t in enumerate(hist):
            if t.get("id") == turn_id:
                if t.get("role") != "assistant":
                    raise HTTPError(400, f"turn {turn_id} is the user's; allowed: the id of "
                                         "an answer (\"turn_id\" of the ask)")
                user = hist[i - 1]["content"] if i and hist[i - 1].get("role") == "user" \
                    else None
                meta = t.get("meta") or {}
                return {"user": user, "assistant": t.get("content"),
                        "intent": meta.get("intent"), "tier": meta.get("tier")}
        raise HTTPError(404, f"session {session!r} has no turn {turn_id}")

    def list_(self, task: dict) -> dict:
        where, args = ["id > ?"], [field_int(task, "after_id", default=0, lo=0)]
        if task.get("session") is not None:
            where.append("session = ?")
            args.append(field_str(task, "session", max_len=128))
        if task.get("kind") is not None:
            kind = task["kind"]
            if kind not in ("rating", "correction"):
                raise HTTPError(400, f"kind {kind!r}; allowed: rating, correction")
            where.append("kind = ?")
            args.append(kind)
        limit = field_int(task, "limit", default=100, lo=1, hi=1000)
        rows = self.store.query(f"SELECT * FROM feedback WHERE {' AND '.join(where)} "
                                "ORDER BY id LIMIT ?", (*args, limit))
        items = [_item(r) for r in rows]
        return {"items": items, "last_id": items[-1]["id"] if items else None}

    def health_checks(self) -> dict:
        return {"database": self.store.health()}

    def health_info(self) -> dict:
        n = self.store.query("SELECT kind, COUNT(*) FROM feedback GROUP BY kind")
        return {"stored": {r[0]: r[1] for r in n}}
