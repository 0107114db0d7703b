"""A timer thread for an agent's periodic chores (retention, purges, the twin's snapshot).

The same timer as the fleet pollers' (unified_core.poller.Poller: one thread, error count,
a failure logged once per distinct error and the next round run anyway); a chore only adds
a name, a function and a first delay (a purge at start would compete with the start itself).
"""
from __future__ import annotations

from unified_core.poller import Poller


class Periodic(Poller):
    """Run fn() every `interval` seconds on a daemon thread until stop(); the first run after
    `first_delay` (default: one interval)."""

    failed_message = "failed; the next round runs anyway"

    def __init__(self, name: str, interval: float, fn, log=None, first_delay: float | None = None):
        super().__init__(interval, min_gap_s=0.0, log=log,
                         first_delay_s=interval if first_delay is None else first_delay)
        self.name = name
        self.fn = fn

    def collect(self) -> None:
        self.fn()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop, waiting up to `timeout` for a round in progress (its owner closes what the
        chore writes to next)."""
        super().stop(timeout)
