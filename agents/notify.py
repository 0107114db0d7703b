"""sd_notify(3) without a library: one datagram per message to $NOTIFY_SOCKET.

Why not python3-sdnotify (so the package does not depend on it)? Its import cost is the
same (both need only `socket`), but it connect()s once and swallows every error with a bare
`except:`; systemd's own sd_notify sends each message unconnected (survives a
`systemctl daemon-reexec`) and we want a failed READY=1 to be visible in the log. It is ~20
lines, handles abstract sockets ('@' prefix), and costs nothing when NOTIFY_SOCKET is unset.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None, log=None):
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.log = log
        self.sock = None
        self.address = None
        self.failed = False
        if address:
            self.address = "\0" + address[1:] if address[0] == "@" else address
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, *lines: str) -> bool:
        """Send `READY=1`, `STATUS=...`, `WATCHDOG=1`, ... in one datagram."""
        if self.sock is None or self.address is None:  # (both set, or neither)
            return False
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as e:
            if not self.failed and self.log is not None:
                self.log.warning(f"sd_notify to {self.address!r} failed: {e}")
            self.failed = True
            return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when the watchdog
    is off or meant for another process (WATCHDOG_PID)."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        n = int(usec)
    except ValueError:
        return None
    if n <= 0:
        return None
    return n / 2e6
