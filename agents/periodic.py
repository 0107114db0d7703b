"""A timer thread for an agent's periodic chores (retention, purges, the twin's poll)."""
from __future__ import annotations

import threading
import time


class Periodic:
    """Run fn() every `interval` seconds on a daemon thread until stop(); an exception is
    logged and the next round runs anyway (a timer that dies silently is worse than none).
    Retention, purges and pollers of the state agents run on these."""

    def __init__(self, name: str, interval: float, fn, log=None, first_delay: float | None = None):
        self.name = name
        self.interval = interval
        self.fn = fn
        self.log = log
        self.runs = 0
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._first = interval if first_delay is None else first_delay
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "Periodic":
        self._thread.start()
        return self

    def _loop(self) -> None:
        delay = self._first
        while not self._stop.wait(delay):
            t0 = time.monotonic()
            try:
                self.fn()
                self.last_error = ""
            except Exception as e:
                self.errors += 1
                msg = f"{type(e).__name__}: {e}"
                if self.log and msg != self.last_error:  # once per distinct error
                    self.log.error(f"{self.name} failed: {msg}")
                self.last_error = msg
            self.runs += 1
            delay = max(0.0, self.interval - (time.monotonic() - t0))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
