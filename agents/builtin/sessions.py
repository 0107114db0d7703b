"""A bounded table of live sessions, for the streaming speech agents (recognition sessions,
synthesis streams, playbacks, barge-in watches): a client that opens sessions and walks away
must not grow the agent without end.

Bounded three ways: count (`max_count`; the next open is a 429 with Retry-After), idle time
(`idle_s` without a call: expired, its resources freed) and age (`max_age_s` since it opened,
however busy). An expired or unknown id is a 404 naming what happened. Expiry is checked on
every call, so no reaper thread is needed; `close(obj)` is called once for each entry that
leaves the table by expiry or eviction (not by pop(), whose caller owns the object then).
An entry whose object says `busy` (a playback still playing) does not expire by idle time;
one that says `finished` (a playback that ended) is evicted first when the table is full.
"""
from __future__ import annotations

import secrets
import threading
import time

from unified_agents import HTTPError


class SessionTable:
    def __init__(self, what: str, max_count: int, idle_s: float, max_age_s: float,
                 close=None, setting: str = ""):
        self.what = what  # "session", "stream", ... for the messages
        self.max_count = max_count
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self._close = close
        self.setting = setting  # the variable that sets max_count, named in the 429
        self._lock = threading.Lock()
        self._items: dict[str, list] = {}  # id → [obj, opened, last used]
        self._gone: dict[str, str] = {}  # recently expired ids → why (bounded), for the 404
        self.expired = 0

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self, now: float) -> list:
        out = []
        for sid, (obj, opened, used) in list(self._items.items()):
            idle = now - used > self.idle_s and not getattr(obj, "busy", False)
            why = ("idle for more than %g s" % self.idle_s if idle else
                   "older than %g s" % self.max_age_s if now - opened > self.max_age_s else "")
            if why:
                del self._items[sid]
                self._forget(sid, why)
                out.append(obj)
        return out

    def _forget(self, sid: str, why: str) -> None:
        self.expired += 1
        self._gone[sid] = why
        while len(self._gone) > 1000:
            del self._gone[next(iter(self._gone))]

    def _closing(self, objs: list) -> None:
        for obj in objs:
            if self._close is not None:
                self._close(obj)

    def purge(self) -> None:
        """Expire what is due now (their close() runs)."""
        with self._lock:
            dropped = self._expire(time.monotonic())
        self._closing(dropped)

    def add(self, obj, sid: str | None = None) -> str:
        """Register `obj`; its new id. 429 when `max_count` live entries remain after expiry."""
        now = time.monotonic()
        with self._lock:
            dropped = self._expire(now)
            if len(self._items) >= self.max_count:
                done = [k for k, v in self._items.items() if getattr(v[0], "finished", False)]
                if done:
                    dropped.append(self._items.pop(done[0])[0])
                    self._forget(done[0], "evicted (finished) to make room")
            full = len(self._items) >= self.max_count
            if not full:
                sid = sid or secrets.token_hex(8)
                self._items[sid] = [obj, now, now]
        self._closing(dropped)
        if full:
            self.refuse()
        assert sid is not None
        return sid

    def refuse(self):
        """The 429 of a full table, with the seconds until an entry expires at the latest."""
        now = time.monotonic()
        with self._lock:
            soonest = min((max(0.0, min(used + self.idle_s, opened + self.max_age_s) - now)
                           for _, opened, used in self._items.values()), default=0.0)
        retry = max(1, int(soonest + 0.999))
        raise HTTPError(429, f"{self.max_count} {self.what}s are open, the most allowed "
                             f"({self.setting}); retry in {retry} s or finish one",
                        headers={"Retry-After": str(retry)}, retry_after_s=retry)

    def get(self, sid, field: str = "session"):
        """The object of `sid` (its idle clock restarted), or 404/400 naming why not."""
        if not isinstance(sid, str) or not 1 <= len(sid) <= 64:
            raise HTTPError(400, f'"{field}"={sid!r}; allowed: the id a previous answer gave')
        now = time.monotonic()
        with self._lock:
            dropped = self._expire(now)
            entry = self._items.get(sid)
            if entry is not None:
                entry[2] = now
            why = self._gone.get(sid)
        self._closing(dropped)
        if entry is None:
            raise HTTPError(404, f'{self.what} "{sid}" ' + (
                f"expired: {why}" if why else "is unknown (never opened, or closed)"))
        return entry[0]

    def replace(self, sid: str, obj) -> None:
        with self._lock:
            if sid in self._items:
                self._items[sid][0] = obj

    def pop(self, sid: str):
        with self._lock:
            entry = self._items.pop(sid, None)
        return entry[0] if entry else None

    def items(self) -> list:
        with self._lock:
            return [(k, v[0]) for k, v in self._items.items()]
