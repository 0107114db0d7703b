"""One fleet-changing operation at a time (profile switch, apply, agent start/stop/restart/
load, config rollback/promote/abort, backup restore, recover, overrides clear).

Two switches a moment apart each plan from what runs when they start: the later one does not
see the agents the earlier one is still starting, and those keep running under a profile
that does not have them. So these commands hold /run/unified/fleet.lock (flock: the kernel
drops it when its holder dies, even by SIGKILL, so a stale file never blocks) and write who
holds it into it, for the others' message. A second command waits, saying for whom, up to
--lock-timeout seconds (0: refuse at once, naming the holder).

emergency-stop never waits: it ends the holder (SIGTERM, then SIGKILL) and takes the lock
for its own stop; a command that was waiting when it began gives up instead of starting
agents again after it (the emergency marker is newer than the command).
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from unified_core import paths
from unified_core.errors import NeedsRoot, UnifiedError

DEFAULT_TIMEOUT = 300.0  # longer than a profile's start_timeout: a waiting switch outlasts one


class FleetBusy(UnifiedError):
    """Another fleet operation holds the lock (exit 75, EX_TEMPFAIL: try again later)."""

    exit_code = 75


def lock_file() -> str:
    return os.path.join(paths.run_dir(), "fleet.lock")


def emergency_file() -> str:
    return os.path.join(paths.run_dir(), "emergency-stop")


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    since: float
    emergency: bool = False

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command}, since {time.strftime('%H:%M:%S', time.localtime(self.since))})"


def command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv if argv is None else argv
    return " ".join([os.path.basename(argv[0] or "unified-ctl"), *argv[1:]])


def read_holder() -> Holder | None:
    try:
        with open(lock_file()) as f:
            d = json.load(f)
        return Holder(int(d["pid"]), str(d["command"]), float(d["since"]), bool(d.get("emergency")))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # nobody wrote it yet (or an old, emptied file)


def current_holder() -> Holder | None:
    """Who changes the fleet right now (for `status`), None when nobody does. Needs only
    read access: a shared lock taken and dropped at once tells whether it is held."""
    try:
        fd = os.open(lock_file(), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return read_holder() or Holder(0, "unknown", time.time())
    finally:
        os.close(fd)


def _open() -> int:
    try:
        os.makedirs(paths.run_dir(), mode=0o755, exist_ok=True)
        return os.open(lock_file(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError as e:
        # as any other root-only write: one line, exit 77 (cli.main names the command)
        raise NeedsRoot(f"{e.strerror}: {lock_file()}") from None
    except OSError as e:
        raise UnifiedError(f"cannot open the fleet lock {lock_file()}: {e.strerror}") from None


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _claim(fd: int, command: str, emergency: bool = False) -> None:
    data = json.dumps({"pid": os.getpid(), "command": command, "since": time.time(),
                       "emergency": emergency}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data + b"\n", 0)


def _release(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)  # the next reader sees nobody rather than us
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _who(holder: Holder | None) -> str:
    return str(holder) if holder else "another process"


_held = 0  # nesting depth in this process: `recover` switches while it holds the lock


@contextmanager
def hold(command: str | None = None, timeout: float = DEFAULT_TIMEOUT, on_wait=None):
    """Hold the fleet lock for the block. Waits up to `timeout` s for another holder
    (on_wait(holder) is called once, to say so); timeout 0 refuses at once (FleetBusy)."""
    global _held
    if _held:
        _held += 1
        try:
            yield
        finally:
            _held -= 1
        return
    command = command or command_line()
    began = time.time()
    fd = _open()
    try:
        t0, told = time.monotonic(), False
        while not _try(fd):
            holder = read_holder()
            if timeout <= 0 or time.monotonic() - t0 >= timeout:
                waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
                raise FleetBusy(f"another fleet operation is running: {_who(holder)}; nothing was changed"
                                f"{waited}. Try again when it is done (or wait longer: "
                                f"unified-ctl --lock-timeout SECONDS ...)")
            if not told and on_wait:
                on_wait(holder)
                told = True
            time.sleep(0.05)
        if emergency_since() > began:
            raise UnifiedError("an emergency-stop ran while this command waited for the fleet lock; "
                               "nothing was changed (run it again if it is still wanted)")
    except BaseException:
        os.close(fd)  # (closing drops the flock if it was taken)
        raise
    _claim(fd, command)
    _held = 1
    try:
        yield
    finally:
        _held = 0
        _release(fd)


def emergency_since() -> float:
    try:
        return os.stat(emergency_file()).st_mtime
    except OSError:
        return 0.0


@contextmanager
def preempt(command: str | None = None, grace: float = 3.0):
    """emergency-stop: mark the emergency, end whoever holds the lock (SIGTERM; SIGKILL
    after `grace` s) and hold it for the block. Never refuses: without the lock after all
    that (a holder that does not die), the block runs anyway. Yields the holder ended."""
    global _held
    fd = _open()
    with open(emergency_file(), "w") as f:
        f.write(f"{time.time()} {os.getpid()} {command or command_line()}\n")
    ended, got = None, _try(fd)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        if got:
            break
        holder = read_holder()
        # another emergency-stop is doing the same job: wait for it, do not end it
        if holder and holder.pid != os.getpid() and not holder.emergency:
            ended = holder
            try:
                os.kill(holder.pid, sig)
            except ProcessLookupError:
                pass
        t0 = time.monotonic()
        while not (got := _try(fd)) and time.monotonic() - t0 < wait:
            time.sleep(0.05)
    if got:
        _claim(fd, command or command_line(), emergency=True)
    _held = 1
    try:
        yield ended
    finally:
        _held = 0
        if got:
            _release(fd)
        else:
            os.close(fd)
