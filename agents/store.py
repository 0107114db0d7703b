"""SQLite for agents that keep state: one database file per agent under STATE_DIRECTORY.

    from unified_agents.store import Store, db_path

    MIGRATIONS = [
        "CREATE TABLE items(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)",   # version 1
        "ALTER TABLE items ADD COLUMN tags TEXT",                              # version 2
    ]
    store = Store(db_path(self.config, "items.db"), MIGRATIONS, max_bytes=256 << 20)
    store.write(lambda c: c.execute("INSERT INTO items(k, v) VALUES (?, ?)", (k, v)))
    rows = store.query("SELECT k, v FROM items WHERE k > ?", (after,))

What every agent's database gets, and why:

* WAL journal: readers (a backup, a report, health checks) never block the writer and the
  writer never blocks them.
* synchronous=FULL: `write()` returns only after COMMIT, and under FULL the commit has been
  fsync'ed into the WAL. A write an agent acknowledged survives kill -9 of the agent (for
  that, NORMAL would do: a committed WAL frame is in the OS page cache, which a dying process
  does not take with it) and also a power cut or kernel crash (which NORMAL may roll back).
  Measured here: 0.26 ms per commit under FULL, 0.02 ms under NORMAL: cheap enough to be
  strict. SQLITE_SYNCHRONOUS=NORMAL trades that for speed (docs/STATE.md).
* One connection per thread (sqlite3 connections must not be shared across threads without
  care) and one process-wide lock around write transactions: writers queue on a Python lock
  instead of sleeping in SQLite's busy handler. busy_timeout still covers other processes
  (a restore, the sqlite3 shell).
* Schema migrations by `PRAGMA user_version`: MIGRATIONS[i] brings the schema to version i+1,
  each in its own transaction together with the version bump. A database newer than the code
  is refused (never written by code that does not know its schema).
* An integrity check (`PRAGMA quick_check`) at open. A corrupt file is moved aside
  (NAME.corrupt-TIMESTAMP, with its -wal/-shm) and a fresh database is created, so the
  agent, which others depend on, keeps running; `quarantined` says so, health turns degraded
  and the log names the file to restore from a backup. (on_corrupt="fail" raises instead.)
* Bounded size: `max_bytes` becomes PRAGMA max_page_count; a write past it (or onto a full
  disk) raises StoreFull, an HTTP 507 with a clear message, never a crash.

Errors are HTTPError subclasses so that a handler may simply let them propagate.

The state agents' other shared helpers have a module each: validate.py (request fields),
periodic.py (timers), fts.py (full-text search).
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time

from .server import HTTPError

TYPE_CHECKING = False  # typing's constant without importing typing (cold start)
if TYPE_CHECKING:
    from .optimizer import DataOptimizer

SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")


# Below this much free space a SQLITE_FULL is the disk's, not max_page_count's: SQLite
# needs a few pages of WAL per transaction, so a "full" disk still shows a little room.
DISK_FULL_BELOW = 4 << 20


def disk_free(directory: str) -> int | None:
    """Bytes an unprivileged writer may still use under directory (None: unknown)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


class StoreError(HTTPError):
    """The store cannot do what was asked (HTTP status in .status)."""

    def __init__(self, status: int, message: str, **fields):
        super().__init__(status, message, **fields)


class StoreFull(StoreError):
    def __init__(self, message: str, **fields):
        super().__init__(507, message, **fields)


class StoreBusy(StoreError):
    def __init__(self, message: str):
        super().__init__(503, message, headers={"Retry-After": "1"})


class StoreOpenError(StoreError):
    def __init__(self, message: str):
        super().__init__(500, message)


def db_path(config, filename: str) -> str:
    """Where an agent's database lives: $STATE_DB_PATH (per agent, from the catalog's
    `environment:`), else $STATE_DIRECTORY/filename (systemd's StateDirectory=, i.e.
    /var/lib/unified), else /var/lib/unified/filename."""
    env = config.env
    explicit = env.string("STATE_DB_PATH")
    if explicit:
        return explicit
    base = getattr(config, "state_directory", None) or env.string("STATE_DIRECTORY") \
        or "/var/lib/unified"
    # StateDirectory= may list several paths separated by ':'; ours is the first
    return os.path.join(base.split(":")[0], filename)


def agent_store(config, filename: str, migrations, *, log=None, max_mb: int = 512) -> "Store":
    """The database of a state agent, as its settings say: STATE_DB_MAX_MB (size bound),
    SQLITE_SYNCHRONOUS (FULL/NORMAL/EXTRA), ENABLE_DATA_OPTIMIZER with DATA_OPTIMIZER_IDLE_S
    (idle-time upkeep, agents/optimizer.py)."""
    env = config.env
    store = Store(db_path(config, filename), migrations, log=log,
                  max_bytes=env.integer("STATE_DB_MAX_MB", max_mb, 1) << 20,
                  synchronous=env.choice("SQLITE_SYNCHRONOUS", SYNCHRONOUS, "FULL"))
    if config.enable_data_optimizer:
        store.optimize_when_idle(env.number("DATA_OPTIMIZER_IDLE_S", 60.0, lo=0.5, hi=86400))
    return store


class Store:
    def __init__(self, path: str, migrations, *, max_bytes: int | None = None,
                 busy_timeout_s: float = 5.0, synchronous: str = "FULL", log=None,
                 on_corrupt: str = "quarantine", check: bool = True):
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous={synchronous!r}; allowed: {', '.join(SYNCHRONOUS)}")
        self.path = path
        self.migrations = list(migrations)
        self.max_bytes = max_bytes
        self.busy_timeout_s = busy_timeout_s
        self.synchronous = synchronous.upper()
        self.log = log
        self.on_corrupt = on_corrupt
        self.quarantined: str | None = None   # where a corrupt file was moved at open
        self.last_error: str = ""            # last unexpected SQLite error (health)
        self.writes = 0
        self.write_seconds = 0.0
        self.last_write = time.monotonic()   # when the last write committed (optimizer)
        self.optimizer: DataOptimizer | None = None  # when ENABLE_DATA_OPTIMIZER
        self._local = threading.local()
        self._conns: list = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._open(check)

    # ------------------------------------------------------------------ open
    def _open(self, check: bool) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise StoreOpenError(f"cannot create the state directory {d}: {e.strerror}; "
                                 "allowed: a writable STATE_DIRECTORY or STATE_DB_PATH") \
                from None
        try:
            self._init_file(check)
        except sqlite3.DatabaseError as e:
            if getattr(e, "sqlite_errorname", "") not in ("SQLITE_NOTADB", "SQLITE_CORRUPT") \
                    and not isinstance(e, _Corrupt):
                raise StoreOpenError(f"cannot open {self.path}: {e}") from None
            if self.on_corrupt != "quarantine":
                raise StoreOpenError(f"{self.path} is corrupt ({e}); restore it from a backup "
                                     "(unified-ctl backup restore)") from None
            self._quarantine(str(e))
            self._init_file(check=False)

    def _init_file(self, check: bool) -> None:
        c = self._new_conn()
        try:
            if check:
                bad = [r[0] for r in c.execute("PRAGMA quick_check(5)")]
                if bad != ["ok"]:
                    raise _Corrupt("quick_check: " + "; ".join(bad))
            if not c.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                # a new file: let retention give pages back (PRAGMA incremental_vacuum);
                # settable only before the first table exists and before WAL mode
                c.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreOpenError(f"{self.path}: journal_mode WAL refused (got {mode}); "
                                     "the file system must support shared memory maps")
            self._migrate(c)
        finally:
            c.close()

    def _quarantine(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest = f"{self.path}.corrupt-{stamp}"
        for side in ("", "-wal", "-shm"):
            try:
                os.replace(self.path + side, dest + side)
            except FileNotFoundError:
                pass
        self.quarantined = dest
        if self.log:
            self.log.error(f"database {self.path} is corrupt ({why}); moved it to {dest} and "
                           "started an empty one: restore it from a backup "
                           "(unified-ctl backup restore)", path=self.path, moved_to=dest)

    def _migrate(self, c: sqlite3.Connection) -> None:
        have = c.execute("PRAGMA user_version").fetchone()[0]
        want = len(self.migrations)
        if have > want:
            raise StoreOpenError(f"{self.path} has schema version {have}, newer than this "
                                 f"code knows ({want}); allowed: the software version that "
                                 "wrote it, or a backup taken before the upgrade")
        for version in range(have + 1, want + 1):
            step = self.migrations[version - 1]
            try:
                if callable(step):
                    c.execute("BEGIN IMMEDIATE")
                    step(c)
                    c.execute(f"PRAGMA user_version={version}")
                    c.execute("COMMIT")
                else:
                    # the script and the version bump commit together or not at all
                    c.executescript(f"BEGIN IMMEDIATE;\n{step};\n"
                                    f"PRAGMA user_version={version};\nCOMMIT;")
            except sqlite3.Error as e:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise StoreOpenError(f"{self.path}: migration to schema version {version} "
                                     f"failed: {e}") from None
            if self.log:
                self.log.info(f"database {os.path.basename(self.path)} at schema version "
                              f"{version}", path=self.path)

    def _new_conn(self) -> sqlite3.Connection:
        try:
            c = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreOpenError(f"cannot open {self.path}: {e}; allowed: a writable "
                                 "STATE_DIRECTORY or STATE_DB_PATH") from None
        c.row_factory = sqlite3.Row
        c.execute(f"PRAGMA synchronous={self.synchronous}")
        c.execute("PRAGMA foreign_keys=ON")
        # the WAL is truncated to this after a checkpoint instead of staying at its peak
        c.execute("PRAGMA journal_size_limit=67108864")
        if self.max_bytes:
            page = c.execute("PRAGMA page_size").fetchone()[0]
            c.execute(f"PRAGMA max_page_count={max(1, self.max_bytes // page)}")
        return c

    @property
    def write_lock(self) -> threading.Lock:
        """Held by every write transaction of this process (upkeep holds it too)."""
        return self._write_lock

    def optimize_when_idle(self, idle_s: float) -> "Store":
        """Start the idle-time upkeep (agents/optimizer.py); stopped by close()."""
        from .optimizer import DataOptimizer

        self.optimizer = DataOptimizer(self, idle_s, self.log).start()
        return self

    # ------------------------------------------------------------------ use
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        c = getattr(self._local, "conn", None)
        if c is None:
            if self._closed:
                raise StoreBusy(f"{os.path.basename(self.path)} is closed (agent stopping)")
            c = self._new_conn()
            self._local.conn = c
            with self._conns_lock:
                self._conns.append(c)
        return c

    def write(self, fn, *args):
        """Run fn(conn, *args) in one write transaction; → its result once COMMIT returned
        (durable). Any exception rolls the whole transaction back and propagates.
        Inside transaction() (same thread): part of that one, committed with it."""
        c = self.conn()
        if getattr(self._local, "tx", False):
            return self._nested(c, fn, *args)
        with self._immediate(c):
            return fn(c, *args)

    @staticmethod
    def _nested(c, fn, *args):
        """write() inside transaction(): a savepoint, so that an exception the caller catches
        undoes this write only."""
        c.execute("SAVEPOINT w")
        try:
            result = fn(c, *args)
        except BaseException:
            c.execute("ROLLBACK TO w")
            c.execute("RELEASE w")
            raise
        c.execute("RELEASE w")
        return result

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction around several steps of this thread: → the connection.
        write() and read() called inside it (same thread) join it; it commits when the block
        ends and rolls back when it raises. Holds the write lock throughout: other threads'
        writes wait (never wait in here for one of them). Savepoint "task" is open: ROLLBACK
        TO task undoes the block's writes so far. Used for keyed tasks (idempotency.py)."""
        c = self.conn()
        with self._immediate(c, "SAVEPOINT task"):
            self._local.tx = True
            try:
                yield c
            finally:
                self._local.tx = False

    @contextlib.contextmanager
    def _immediate(self, c, *first):
        """BEGIN IMMEDIATE (+ the statements `first`) under the write lock; COMMIT when the
        block ends (→ durable), ROLLBACK when it raises (SQLite errors as StoreError)."""
        t0 = time.monotonic()
        with self._write_lock:
            try:
                c.execute("BEGIN IMMEDIATE")
                for sql in first:
                    c.execute(sql)
            except sqlite3.OperationalError as e:
                raise self._translate(e) from None
            try:
                yield
                c.execute("COMMIT")
            except BaseException as e:
                if c.in_transaction:
                    try:
                        c.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if isinstance(e, sqlite3.Error):
                    raise self._translate(e) from None
                raise
            self.writes += 1
            self.last_write = time.monotonic()
            self.write_seconds += self.last_write - t0

    def ensure(self, sql: str) -> None:
        """Statements that are harmless to repeat (CREATE ... IF NOT EXISTS), outside the
        versioned MIGRATIONS: tables the SDK keeps in an agent's database."""
        stmts = [x.strip() for x in sql.split(";") if x.strip()]
        self.write(lambda c: [c.execute(x) for x in stmts])

    def read(self, fn, *args):
        """Run fn(conn, *args) in one read transaction: every query sees the same snapshot."""
        c = self.conn()
        if getattr(self._local, "tx", False):
            return fn(c, *args)
        try:
            c.execute("BEGIN")
            try:
                return fn(c, *args)
            finally:
                if c.in_transaction:
                    c.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._translate(e) from None

    def query(self, sql: str, params=()) -> list:
        """One statement outside any transaction; → list of sqlite3.Row."""
        try:
            return self.conn().execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self._translate(e) from None

    def _translate(self, e: sqlite3.Error) -> StoreError:
        name = getattr(e, "sqlite_errorname", "")
        base = os.path.basename(self.path)
        if name == "SQLITE_FULL":
            free = disk_free(os.path.dirname(self.path) or ".")
            # SQLITE_FULL means either max_page_count or the file system: say which.
            if free is not None and free < DISK_FULL_BELOW:
                if self.log:
                    self.log.error(f"the file system holding {base} is full", path=self.path,
                                   free_bytes=free)
                return StoreFull(f"the file system holding {self.path} is full "
                                 f"({free >> 10} KiB free): free space there; "
                                 f"the write was not stored")
            limit = f" (limit {self.max_bytes >> 20} MiB)" if self.max_bytes else ""
            return StoreFull(f"{base} is full{limit}: delete data or raise the limit; "
                             f"the write was not stored")
        if name in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return StoreBusy(f"{base} is locked by another writer; retry")
        self.last_error = f"{name or type(e).__name__}: {e}"
        if self.log:
            self.log.error(f"SQLite error on {base}: {e}", error=name)
        return StoreError(500, f"database error on {base}: {e}")

    # ------------------------------------------------------------------ upkeep
    def checkpoint(self, mode: str = "PASSIVE") -> tuple:
        """Copy WAL content into the database file (→ busy, wal_frames, checkpointed)."""
        return tuple(self.conn().execute(f"PRAGMA wal_checkpoint({mode})").fetchone())

    def vacuum_free(self, pages: int = 2000) -> None:
        """Give free pages back to the file system (after retention deleted rows)."""
        with self._write_lock:
            # executescript: the sqlite3 module steps a statement without result columns
            # once, and incremental_vacuum frees one page per step (measured: 1 of 99)
            self.conn().executescript(f"PRAGMA incremental_vacuum({int(pages)});")

    def stats(self) -> dict:
        c = self.conn()
        page = c.execute("PRAGMA page_size").fetchone()[0]
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        free = c.execute("PRAGMA freelist_count").fetchone()[0]
        try:
            wal = os.path.getsize(self.path + "-wal")
        except OSError:
            wal = 0
        return {"path": self.path, "bytes": page * pages, "free_bytes": page * free,
                "wal_bytes": wal, "max_bytes": self.max_bytes,
                "schema_version": c.execute("PRAGMA user_version").fetchone()[0],
                "journal_mode": "wal", "synchronous": self.synchronous,
                "writes": self.writes,
                "optimizer": self.optimizer.as_dict() if self.optimizer else None}

    def health(self) -> dict:
        """A /health check: fail if the database cannot be read, degraded if quarantined,
        over 90 % of max_bytes, or after an unexpected SQLite error."""
        try:
            st = self.stats()
            self.conn().execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except Exception as e:
            return {"status": "fail", "path": self.path, "error": str(e)}
        st["status"] = "ok"
        if self.quarantined:
            st["status"] = "degraded"
            st["quarantined"] = self.quarantined
        if self.max_bytes and st["bytes"] - st["free_bytes"] > 0.9 * self.max_bytes:
            st["status"] = "degraded"
            st["problem"] = "over 90 % of max_bytes"
        free = disk_free(os.path.dirname(self.path) or ".")
        if free is not None and free < DISK_FULL_BELOW:   # read live: clears once freed
            st["status"] = "degraded"
            st["problem"] = f"file system full ({free >> 10} KiB free)"
        if self.last_error:
            st["status"] = "degraded"
            st["last_error"] = self.last_error
        return st

    def metrics_lines(self, prefix: str, labels: str = "") -> list[str]:
        """Prometheus lines: size, WAL size, committed write transactions."""
        st = self.stats()
        lab = "{" + labels + "}" if labels else ""
        return [
            f"# HELP {prefix}_db_bytes Size of the SQLite database file (pages in use + free).",
            f"# TYPE {prefix}_db_bytes gauge", f"{prefix}_db_bytes{lab} {st['bytes']}",
            f"# HELP {prefix}_db_wal_bytes Size of the write-ahead log.",
            f"# TYPE {prefix}_db_wal_bytes gauge", f"{prefix}_db_wal_bytes{lab} {st['wal_bytes']}",
            f"# HELP {prefix}_db_writes_total Committed write transactions.",
            f"# TYPE {prefix}_db_writes_total counter",
            f"{prefix}_db_writes_total{lab} {self.writes}",
            f"# HELP {prefix}_db_write_seconds_total Time in write transactions (incl. fsync).",
            f"# TYPE {prefix}_db_write_seconds_total counter",
            f"{prefix}_db_write_seconds_total{lab} {self.write_seconds:.6f}",
            f"# HELP {prefix}_db_free_bytes Free pages inside the database file.",
            f"# TYPE {prefix}_db_free_bytes gauge", f"{prefix}_db_free_bytes{lab} {st['free_bytes']}",
        ] + (self.optimizer.metrics_lines(prefix, lab) if self.optimizer else [])

    def close(self) -> None:
        """Checkpoint (so the .db file alone is complete) and close every connection."""
        if self.optimizer is not None:
            self.optimizer.stop()
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for i, c in enumerate(conns):
            try:
                if i == 0:
                    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                c.close()
            except sqlite3.Error:
                pass


class _Corrupt(sqlite3.DatabaseError):
    sqlite_errorname = "SQLITE_CORRUPT"


def counter_sql(table: str, counter: str) -> str:
    """SQL keeping counters(name=counter) equal to the row count of `table` by triggers, so a
    limit check is one primary-key read instead of count(*) over the table."""
    return f"""
    CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters(name, n) SELECT '{counter}', count(*) FROM {table};
    CREATE TRIGGER {counter}_count_ins AFTER INSERT ON {table} BEGIN
        UPDATE counters SET n = n + 1 WHERE name = '{counter}'; END;
    CREATE TRIGGER {counter}_count_del AFTER DELETE ON {table} BEGIN
        UPDATE counters SET n = n - 1 WHERE name = '{counter}'; END;
    """


def count(conn, counter: str) -> int:
    r = conn.execute("SELECT n FROM counters WHERE name = ?", (counter,)).fetchone()
    return r[0] if r else 0
