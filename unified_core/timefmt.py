"""Time formats every JSON answer and metric shares: one spelling of an instant, one boot time.

`iso(t)`: unix seconds → "2024-05-01T12:00:00.123Z" (UTC, milliseconds), None stays None; the
registry, the twin, the hub, the SDK's traces and breakers all answer with it, so a client
parses one format. `boot_time()`: the kernel's boot time from /proc/stat (a process's start
time in /proc/PID/stat counts ticks since then; journalctl --since needs it as a time).
Standard library only: agents import this on their start path.
"""
from __future__ import annotations

import time

_btime: float | None = None


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def boot_time() -> float:
    """The kernel's boot time (epoch seconds, /proc/stat btime); 0 when unknown. Read once:
    it does not change while the machine runs."""
    global _btime
    if _btime is None:
        _btime = 0.0
        try:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        _btime = float(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            pass
    return _btime
