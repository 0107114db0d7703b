"""Run a program on a pseudo-terminal, typing keys when its output shows a text (unit tests
only): what an operator's terminal does, which CliRunner cannot."""
from __future__ import annotations

import os
import pty
import re
import select
import signal
import termios
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(raw: bytes) -> str:
    """The text without terminal control sequences."""
    return ANSI.sub("", raw.decode(errors="replace"))


class PtyRun:
    def __init__(self, argv: list[str], cwd: str, size=(40, 140)):
        pid, fd = pty.fork()
        if pid == 0:  # the child: a session leader with the pty as its controlling terminal
            os.chdir(cwd)
            os.execvpe(argv[0], argv, {**os.environ, "TERM": "xterm", "COLUMNS": str(size[1]),
                                       "LINES": str(size[0])})
        self.pid, self.fd = pid, fd
        termios.tcsetwinsize(fd, size)
        self.out = b""
        self.rc: int | None = None

    def modes(self) -> int:
        """The terminal's local modes now (termios lflag: ICANON, ECHO, ...)."""
        return termios.tcgetattr(self.fd)[3]

    def read_until(self, text: str, timeout: float = 20.0) -> str:
        """Read until `text` shows (in the plain text); the plain text so far."""
        end = time.monotonic() + timeout
        while text not in plain(self.out):
            left = end - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} never showed; got:\n{plain(self.out)[-2000:]}")
        return plain(self.out)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the terminal (it exited)
            return False
        self.out += chunk
        return bool(chunk)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, timeout: float = 20.0) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self._read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
                    pass
                self.rc = os.waitstatus_to_exitcode(status)
                return self.rc
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError(f"still running after {timeout} s; output:\n{plain(self.out)[-2000:]}")

    def close(self) -> None:
        if self.rc is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)
