"""ENABLE_DATA_OPTIMIZER: upkeep of an agent's SQLite database while it is idle.

Once the store has seen no write for DATA_OPTIMIZER_IDLE_S seconds (and has written
something since the last run), one run does, on the optimizer's own connection:

1. `PRAGMA incremental_vacuum`: pages freed by deletes go back to the file system
   (needs auto_vacuum=INCREMENTAL, which Store gives every new file; see below for old ones);
2. `ANALYZE` with `PRAGMA analysis_limit` (bounded cost on big tables): fresh statistics for
   the query planner;
3. `PRAGMA wal_checkpoint(TRUNCATE)`: the WAL's content goes into the database file and
   the WAL shrinks to zero bytes.

Why it is safe: the whole run holds the store's write lock, so no write of this process is
in flight and none starts until it ends (a write waits, it is never refused). Each step is
an ordinary SQLite transaction or checkpoint: kill -9 at any point leaves every committed
(acknowledged) write in the database or in the WAL, which the next open replays. A
checkpoint another process's reader blocks (a backup, the sqlite3 shell) gives up after
BUSY_MS instead of stalling writers, and the run is tried again at the next tick.

A database created before auto_vacuum=INCREMENTAL was the default cannot return pages
without a one-time VACUUM (it rewrites the file; also transactional, kill -9 safe). The
optimizer does it at its first run when the file is at most CONVERT_MAX_BYTES and the file
system has twice its size free; otherwise it logs once why not, and the run does the rest.
"""
from __future__ import annotations

import os
import time

from .periodic import Periodic
from .store import DISK_FULL_BELOW, disk_free

CONVERT_MAX_BYTES = 256 << 20
BUSY_MS = 1000
ANALYSIS_LIMIT = 1000   # rows ANALYZE looks at per index (sqlite.org/lang_analyze.html)


def _file_bytes(path: str) -> int:
    total = 0
    for side in ("", "-wal"):
        try:
            total += os.path.getsize(path + side)
        except OSError:
            pass
    return total


class DataOptimizer:
    """Runs `run()` on a Periodic once the store is idle; counters for /metrics and health."""

    def __init__(self, store, idle_s: float, log=None):
        self.store = store
        self.idle_s = idle_s
        self.log = log
        self.runs = 0
        self.busy = 0                  # checkpoints another process's reader blocked
        self.last_seconds = 0.0
        self.reclaimed_bytes = 0       # database + WAL bytes given back, all runs
        self.last: dict = {}
        self._done_at_writes = -1      # store.writes when the last full run ended
        self._conversion_refused = False
        self._timer: Periodic | None = None

    def start(self) -> "DataOptimizer":
        # look a few times per idle period, so a run starts soon after the store went idle
        interval = max(0.2, min(self.idle_s / 4, 15.0))
        name = os.path.basename(self.store.path) + "-optimizer"
        self._timer = Periodic(name, interval, self.tick, self.log).start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def due(self) -> bool:
        st = self.store
        return st.writes != self._done_at_writes and \
            time.monotonic() - st.last_write >= self.idle_s

    def tick(self) -> None:
        if self.due():
            self.run()

    def run(self) -> dict:
        """One upkeep run (the write lock held throughout). → what it did."""
        st = self.store
        t0 = time.monotonic()
        with st.write_lock:
            writes = st.writes
            c = st.conn()
            c.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            page = c.execute("PRAGMA page_size").fetchone()[0]
            before = _file_bytes(st.path)
            free_before = c.execute("PRAGMA freelist_count").fetchone()[0]
            converted = self._convert_if_needed(c, before)
            c.executescript("PRAGMA incremental_vacuum;")   # all pages (see vacuum_free)
            c.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
            c.execute("ANALYZE")
            busy, wal_frames, moved = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            free_after = c.execute("PRAGMA freelist_count").fetchone()[0]
            c.execute(f"PRAGMA busy_timeout={int(st.busy_timeout_s * 1000)}")
        after = _file_bytes(st.path)
        seconds = time.monotonic() - t0
        self.runs += 1
        self.last_seconds = seconds
        self.reclaimed_bytes += max(0, before - after)
        if busy:
            self.busy += 1       # WAL not truncated: a reader elsewhere; try again next tick
        else:
            self._done_at_writes = writes
        self.last = {"at": time.time(), "seconds": round(seconds, 4),
                     "bytes_before": before, "bytes_after": after,
                     "free_pages_reclaimed": max(0, free_before - free_after),
                     "page_size": page, "checkpoint_busy": bool(busy),
                     "converted_to_incremental": converted}
        if self.log:
            self.log.info(f"data optimizer: {os.path.basename(st.path)} {before} -> {after} "
                          f"bytes in {seconds * 1000:.1f} ms", path=st.path,
                          checkpoint="busy" if busy else "truncated")
        return self.last

    def _convert_if_needed(self, c, size: int) -> bool:
        if c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:   # already INCREMENTAL
            return False
        if self._conversion_refused:
            return False
        free = disk_free(os.path.dirname(os.path.abspath(self.store.path)))
        why = ""
        if size > CONVERT_MAX_BYTES:
            why = f"it is {size >> 20} MiB, over {CONVERT_MAX_BYTES >> 20} MiB"
        elif free is not None and free < 2 * size + DISK_FULL_BELOW:
            why = f"the file system has {free >> 20} MiB free, under twice its size"
        if why:
            self._conversion_refused = True
            if self.log:
                self.log.warning(
                    f"data optimizer: {self.store.path} has auto_vacuum=NONE (created by an "
                    f"older version) and is not converted because {why}: freed pages are "
                    "reused but not returned; convert it while the agent is stopped with "
                    "sqlite3 FILE 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM'", path=self.store.path)
            return False
        c.execute("PRAGMA auto_vacuum=INCREMENTAL")
        c.execute("VACUUM")
        if self.log:
            self.log.info(f"data optimizer: converted {self.store.path} to "
                          "auto_vacuum=INCREMENTAL (one VACUUM)", path=self.store.path)
        return True

    def as_dict(self) -> dict:
        return {"idle_s": self.idle_s, "runs": self.runs, "checkpoints_busy": self.busy,
                "reclaimed_bytes": self.reclaimed_bytes, "last": self.last or None}

    def metrics_lines(self, prefix: str, lab: str) -> list[str]:
        p = f"{prefix}_db_optimizer"
        return [
            f"# HELP {p}_runs_total Idle-time upkeep runs (ENABLE_DATA_OPTIMIZER).",
            f"# TYPE {p}_runs_total counter", f"{p}_runs_total{lab} {self.runs}",
            f"# HELP {p}_last_run_seconds Duration of the last upkeep run.",
            f"# TYPE {p}_last_run_seconds gauge",
            f"{p}_last_run_seconds{lab} {self.last_seconds:.6f}",
            f"# HELP {p}_reclaimed_bytes_total Database and WAL bytes given back to the "
            "file system.",
            f"# TYPE {p}_reclaimed_bytes_total counter",
            f"{p}_reclaimed_bytes_total{lab} {self.reclaimed_bytes}",
            f"# HELP {p}_checkpoint_busy_total Runs whose WAL checkpoint another process's "
            "reader blocked.",
            f"# TYPE {p}_checkpoint_busy_total counter",
            f"{p}_checkpoint_busy_total{lab} {self.busy}",
        ]
