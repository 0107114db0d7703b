"""Timers that survive a restart of the agent: rows in its store (timers.db), fired by one
thread of the agent.

A timer is a row (id, due as wall-clock epoch seconds, state pending|fired|cancelled). The
firing thread sleeps until the earliest pending due time or until a timer is added or
cancelled (a Condition); at start it loads every pending row, so a timer that fell due
while the agent was down fires at once, late, and says by how much. Firing = the row set to
fired (committed first: a crash right after never fires it twice) and then on_fire(timer):
the journal line "timer ID fired" and the spoken reminder (commands.py).
"""
from __future__ import annotations

import threading
import time

MIGRATIONS = [
    """
    CREATE TABLE timers(
        id TEXT PRIMARY KEY, session TEXT, label TEXT NOT NULL, seconds REAL NOT NULL,
        created REAL NOT NULL, due REAL NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
        fired_at REAL);
    CREATE INDEX timers_pending ON timers(state, due);
    """,
]


def _row(r) -> dict:
    return {"id": r["id"], "session": r["session"], "label": r["label"],
            "seconds": r["seconds"], "created": r["created"], "due": r["due"],
            "state": r["state"], "fired_at": r["fired_at"]}


class Timers:
    def __init__(self, store, on_fire, log, clock=time.time):
        self.store = store
        self.on_fire = on_fire
        self.log = log
        self.clock = clock
        self.cond = threading.Condition()
        self.stopping = False
        self.fired = 0
        self.n_pending = 0   # read by the agent's holds_work() on the serving loop
        self.thread = threading.Thread(target=self._run, name="timers", daemon=True)

    def start(self) -> "Timers":
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.thread.join(5)

    # ------------------------------------------------------------ operations
    def add(self, seconds: float, label: str, session: str | None) -> dict:
        now = self.clock()

        def tx(c):
            n = c.execute("SELECT COUNT(*) FROM timers").fetchone()[0]
            tid = f"t{n + 1}"
            c.execute("INSERT INTO timers(id, session, label, seconds, created, due) "
                      "VALUES (?, ?, ?, ?, ?, ?)", (tid, session, label, seconds, now, now + seconds))
            return tid

        tid = self.store.write(tx)
        with self.cond:
            self.cond.notify_all()
        return self.get(tid)

    def get(self, tid: str) -> dict:
        rows = self.store.query("SELECT * FROM timers WHERE id = ?", (tid,))
        return _row(rows[0]) if rows else {}

    def pending(self, session: str | None = None) -> list[dict]:
        sql = "SELECT * FROM timers WHERE state = 'pending'"
        args: tuple = ()
        if session is not None:
            sql += " AND session IS ?"
            args = (session,)
        return [_row(r) for r in self.store.query(sql + " ORDER BY due", args)]

    def cancel(self, session: str | None = None) -> list[dict]:
        """Cancel the pending timers (of `session` when given) → those cancelled."""
        gone = self.pending(session)
        if gone:
            ids = [t["id"] for t in gone]
            self.store.write(lambda c: c.executemany(
                "UPDATE timers SET state = 'cancelled' WHERE id = ? AND state = 'pending'",
                [(i,) for i in ids]))
            with self.cond:
                self.cond.notify_all()
        return gone

    # ------------------------------------------------------------ the firing thread
    def _next_due(self) -> float | None:
        rows = self.store.query("SELECT MIN(due), COUNT(*) FROM timers WHERE state = 'pending'")
        self.n_pending = rows[0][1] if rows else 0
        return rows[0][0] if rows else None

    def _run(self) -> None:
        while True:
            with self.cond:
                if self.stopping:
                    return
                try:
                    due = self._next_due()
                except Exception as e:  # the store failing must not kill the thread
                    self.log.error(f"timers: cannot read the store: {e}")
                    due = None
                    self.cond.wait(5)
                    continue
                now = self.clock()
                if due is None or due > now:
                    self.cond.wait(None if due is None else min(due - now, 3600))
                    continue
            self._fire_due()

    def _fire_due(self) -> None:
        now = self.clock()

        def tx(c):
            rows = c.execute("SELECT * FROM timers WHERE state = 'pending' AND due <= ? "
                             "ORDER BY due", (now,)).fetchall()
            c.executemany("UPDATE timers SET state = 'fired', fired_at = ? WHERE id = ?",
                          [(now, r["id"]) for r in rows])
            return [_row(r) for r in rows]

        for t in self.store.write(tx):
            t["state"], t["fired_at"] = "fired", now
            self.fired += 1
            try:
                self.on_fire(t, now - t["due"])
            except Exception as e:
                self.log.error(f"timer {t['id']}: reminder failed: {type(e).__name__}: {e}")
