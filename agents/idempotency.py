"""At most once for POST /task: the `Idempotency-Key` header.

A caller names one task with a key (RequestCoordinator always sends one: the caller's own, or
a new uuid4 it keeps on its retries). The agent remembers the answer of every keyed task that
succeeded and answers a repeat of the key with that FIRST answer (same status and body, plus
`Idempotency-Replayed: true`) instead of running the task again:

  * same key, different body           → 422 (a key names one task, never two)
  * same key while the first still runs → 409 + Retry-After: 1 ("in progress": the caller
    retries and then gets the first answer; waiting here would hold a worker thread and the
    caller's connection for as long as the task takes)
  * a task that failed (4xx/5xx) is not remembered: it changed nothing, a repeat runs again
  * a key: 1-200 visible ASCII characters, else 400

Where the answer is remembered decides what "at most once" survives:
  * every agent: in memory, the last MEMORY_KEYS keys of this process (answers of at most
    MEMORY_BYTES together). Enough for effects that die with the process (a timer, a cache):
    after a kill -9 they are gone anyway.
  * agents whose effects outlive the process (a Store: agents/store.py) declare
    `idempotency_store = self.store` in on_start(). A keyed task then runs as ONE write
    transaction of that store: the handler's writes, the key and the answer commit together
    or not at all. A kill -9 before the COMMIT leaves nothing (the retry runs the task); after
    it, the retry finds the key and gets the first answer; the effect never happens twice.
    Only tasks that changed a row leave their key there (a lookup reads again). Kept
    STORE_TTL_S (24 h) and at most STORE_KEYS keys (pruned as keys are added). Such an
    agent's keyed tasks take the store's write lock for the whole handler: they queue behind
    each other and behind other writes (a handler must not wait for another thread's write).
    Async handlers get the in-memory guarantee only (the transaction is per thread).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict

from .server import HTTPError, Response

HEADER = "Idempotency-Key"
REPLAYED = "Idempotency-Replayed"
MEMORY_KEYS = 1024
MEMORY_BYTES = 16 << 20    # answers kept in memory, all keys together
STORE_TTL_S = 24 * 3600.0
STORE_KEYS = 10_000
PRUNE_EVERY = 100          # keys recorded between two prunes of the store's table
_KEY_OK = frozenset(chr(c) for c in range(0x21, 0x7f))

TABLE = """
CREATE TABLE IF NOT EXISTS unified_idempotency(
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
    content_type TEXT, body BLOB NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS unified_idempotency_created ON unified_idempotency(created);
"""


def key_of(req) -> str | None:
    """The request's Idempotency-Key (None without one); 400 when malformed."""
    key = req.header(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not all(ch in _KEY_OK for ch in key):
        raise HTTPError(400, f"{HEADER} {key[:40]!r} is invalid; allowed: 1-200 visible ASCII "
                             "characters (a uuid4 is typical)")
    return key


def fingerprint(body: bytes) -> str:
    import hashlib  # here: 2 ms of OpenSSL at import, paid by keyed tasks only

    return hashlib.sha256(body or b"").hexdigest()


def replay(status: int, body: bytes, content_type: str | None) -> Response:
    return Response(status, bytes(body), content_type, {REPLAYED: "true"})


def _other_body(key: str) -> HTTPError:
    return HTTPError(422, f"{HEADER} {key!r} was already used for a different task body; "
                          "allowed: a new key for a new task, the same body for a retry")


class _Claim:
    __slots__ = ("fp", "hit", "resp")

    def __init__(self, fp: str):
        self.fp = fp
        self.hit: Response | None = None
        self.resp: Response | None = None


class Keys:
    """The agent's remembered keys: in memory (every agent) and, when the agent declares
    one, in its store. One per Runtime."""

    def __init__(self, max_keys: int = MEMORY_KEYS, max_bytes: int = MEMORY_BYTES,
                 clock=time.monotonic):
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.bytes = 0
        self.clock = clock
        self.lock = threading.Lock()
        self.done: OrderedDict = OrderedDict()   # key -> (fingerprint, status, body, ctype)
        self.running: dict = {}                   # key -> fingerprint
        self.replayed = 0
        self._ready_stores: set = set()           # id() of stores whose table exists
        self._recorded = 0

    # ------------------------------------------------------------ in memory
    def _begin(self, key: str, fp: str) -> Response | None:
        with self.lock:
            hit = self.done.get(key)
            if hit is not None:
                if hit[0] != fp:
                    raise _other_body(key)
                self.done.move_to_end(key)
                self.replayed += 1
                return replay(*hit[1:])
            if key in self.running:
                if self.running[key] != fp:
                    raise _other_body(key)
                raise HTTPError(409, f"the task with {HEADER} {key!r} is still running; "
                                     "retry to get its answer", headers={"Retry-After": "1"})
            self.running[key] = fp
        return None

    def _end(self, key: str, fp: str, resp: Response | None) -> None:
        with self.lock:
            self.running.pop(key, None)
            if resp is not None and 200 <= resp.status < 300:
                self.done[key] = (fp, resp.status, resp.body, resp.content_type)
                self.bytes += len(resp.body)
                while len(self.done) > self.max_keys or self.bytes > self.max_bytes:
                    self.bytes -= len(self.done.popitem(last=False)[1][2])

    # ------------------------------------------------------------ the task
    def run(self, key: str, body: bytes, handle, store=None) -> Response:
        """handle() → the task's Response, run at most once per key (see the module doc).
        store: the agent's Store when its effects are durable (idempotency_store)."""
        with self._claim(key, body) as claim:
            if claim.hit is not None:
                return claim.hit
            claim.resp = handle() if store is None else \
                self._run_in_store(store, key, claim.fp, handle)
            return claim.resp

    async def run_async(self, key: str, body: bytes, handle) -> Response:
        """run() for an async handler (await handle()): the in-memory guarantee only."""
        with self._claim(key, body) as claim:
            if claim.hit is not None:
                return claim.hit
            claim.resp = await handle()
            return claim.resp

    @contextlib.contextmanager
    def _claim(self, key: str, body: bytes):
        """→ a claim: .hit (the remembered answer) or the key marked running until the block
        ends; the block sets .resp, remembered when 2xx."""
        claim = _Claim(fingerprint(body))
        claim.hit = self._begin(key, claim.fp)
        try:
            yield claim
        finally:
            if claim.hit is None:
                self._end(key, claim.fp, claim.resp)

    def _run_in_store(self, store, key: str, fp: str, handle) -> Response:
        self._ensure_table(store)
        with store.transaction() as c:
            row = c.execute("SELECT fingerprint, status, content_type, body FROM "
                            "unified_idempotency WHERE key = ?", (key,)).fetchone()
            if row is not None:
                if row[0] != fp:
                    raise _other_body(key)
                with self.lock:
                    self.replayed += 1
                return replay(row[1], row[3], row[2])
            before = c.total_changes
            resp = handle()
            if 200 <= resp.status < 300 and c.total_changes != before:
                # it changed something: the key commits with it (a task that only read, a
                # lookup or a search, leaves no row: a repeat reads again)
                c.execute("INSERT INTO unified_idempotency(key, fingerprint, status, "
                          "content_type, body, created) VALUES (?,?,?,?,?,?)",
                          (key, fp, resp.status, resp.content_type, bytes(resp.body),
                           time.time()))
                self._recorded += 1
                if self._recorded % PRUNE_EVERY == 1:
                    prune(c)
            elif not 200 <= resp.status < 300:
                # a non-2xx answer the handler returned (not raised): its writes stay out
                c.execute("ROLLBACK TO task")
            return resp

    def _ensure_table(self, store) -> None:
        if id(store) not in self._ready_stores:
            store.ensure(TABLE)
            self._ready_stores.add(id(store))


def prune(c, now: float | None = None, ttl_s: float = STORE_TTL_S,
          max_keys: int = STORE_KEYS) -> None:
    """Forget keys older than ttl_s, and the oldest beyond max_keys."""
    now = time.time() if now is None else now
    c.execute("DELETE FROM unified_idempotency WHERE created < ?", (now - ttl_s,))
    c.execute("DELETE FROM unified_idempotency WHERE key IN (SELECT key FROM "
              "unified_idempotency ORDER BY created DESC LIMIT -1 OFFSET ?)", (max_keys,))
