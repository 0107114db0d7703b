"""A collector (of the ObservabilityHub, the twin's systemd poll, anyone polling the fleet): one
source, its own timer and thread, cached result.

Every source the hub reads (systemd, cgroups, peers' JSON, ...) is a Poller: `collect()`
runs every `interval_s` on a daemon thread and stores its result on the instance; readers
(/metrics, /health/summary, the dashboard) only read the last result, so a slow or failing
source never slows or fails a request. A failure keeps the previous result, counts, and is
reported by `status()` (the part of the view it feeds is marked stale, the hub carries on).

`wake()` asks for an early run (e.g. the journal saw systemd start or stop one of our
units); bursts of wake-ups are coalesced to at most one run per `min_gap_s`.
"""
from __future__ import annotations

import threading
import time

TYPE_CHECKING = False  # typing's constant without importing typing (agents' cold start)
if TYPE_CHECKING:
    from typing import Self


def describe(e: BaseException) -> str:
    s = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {s}" if s else type(e).__name__


class Poller:
    name = "poller"

    failed_message = "collector failed; serving its last result"

    def __init__(self, interval_s: float, *, min_gap_s: float = 1.0, on_update=None,
                 log=None, clock=time.monotonic, first_delay_s: float = 0.0):
        if not interval_s > 0:
            raise ValueError(f"{self.name}: interval_s={interval_s!r}; allowed: a number > 0")
        self.interval_s = float(interval_s)
        self.min_gap_s = float(min_gap_s)
        self.first_delay_s = float(first_delay_s)  # before the first run (a chore, not a view)
        self.log = log
        self.clock = clock
        self.on_update = on_update     # called after each successful run (e.g. re-evaluate)
        self.runs = 0
        self.errors = 0
        self.last_error = ""
        self.last_ok: float | None = None       # clock() of the last successful run
        self.last_ok_wall: float | None = None
        self.last_duration_s = 0.0
        self.total_duration_s = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- to override
    def collect(self) -> None:
        raise NotImplementedError

    # -------------------------------------------------------------- running
    def run_once(self) -> bool:
        """One collection now (the thread calls this; tests call it directly)."""
        t0 = self.clock()
        try:
            self.collect()
        except Exception as e:  # a failing source degrades its part of the view only
            self.errors += 1
            msg = describe(e)
            if self.log is not None and msg != self.last_error:
                self.log.warning(f"{self.name} {self.failed_message}", error=msg)
            self.last_error = msg
            return False
        finally:
            self.runs += 1
            self.last_duration_s = self.clock() - t0
            self.total_duration_s += self.last_duration_s
        if self.last_error and self.log is not None:
            self.log.info(f"{self.name} recovered")
        self.last_error = ""
        self.last_ok = self.clock()
        self.last_ok_wall = time.time()
        if self.on_update is not None:
            try:
                self.on_update()
            except Exception as e:  # a consumer's bug must not stop the collector
                if self.log is not None:
                    self.log.exception(f"after the {self.name} collector", e)
        return True

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"poll-{self.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; with `timeout`, wait that long for a run in progress to end (an
        owner about to close what collect() writes to)."""
        self._stop.set()
        self._wake.set()
        t = self._thread
        if timeout and t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        if self.first_delay_s > 0:
            self._stop.wait(self.first_delay_s)
        while not self._stop.is_set():
            started = self.clock()
            self.run_once()
            self._wake.wait(self.interval_s)
            self._wake.clear()
            gap = self.min_gap_s - (self.clock() - started)
            if gap > 0 and not self._stop.is_set():
                self._stop.wait(gap)  # coalesce a burst of wake-ups into one run

    # -------------------------------------------------------------- reporting
    def age_s(self) -> float | None:
        return None if self.last_ok is None else max(0.0, self.clock() - self.last_ok)

    def stale(self) -> bool:
        """No good result, or none within three intervals (the view it feeds is old)."""
        age = self.age_s()
        return age is None or age > 3 * self.interval_s + 5.0

    def status(self) -> dict:
        age = self.age_s()
        return {"ok": not self.stale() and not self.last_error,
                "age_s": None if age is None else round(age, 1),
                "interval_s": self.interval_s, "runs": self.runs, "errors": self.errors,
                "error": self.last_error or None,
                "last_ms": round(self.last_duration_s * 1000, 2)}
