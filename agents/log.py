"""One line per event on stderr, with a journald priority prefix under systemd.

Under systemd stderr is a stream to journald (systemd sets JOURNAL_STREAM) and
SyslogLevelPrefix=yes (the default) turns a leading `<N>` into the entry's PRIORITY. By hand
the line starts with a timestamp and the level name instead. Each line is one os.write, so
lines from worker threads never interleave. The stdlib `logging` module (15 ms to import)
is not used; if an agent imports it anyway, `bridge_stdlib_logging()` routes its records here.
"""
from __future__ import annotations

import os
import sys
import time

PRIORITIES = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
_NAMES = {7: "DEBUG", 6: "INFO", 5: "NOTICE", 4: "WARNING", 3: "ERROR", 2: "CRITICAL"}


def _to_journal() -> bool:
    """True when stderr is the journal stream systemd set up (JOURNAL_STREAM=dev:inode)."""
    js = os.environ.get("JOURNAL_STREAM")
    if not js:
        return False
    try:
        dev, ino = js.split(":")
        st = os.fstat(2)
        return st.st_dev == int(dev) and st.st_ino == int(ino)
    except (ValueError, OSError):
        return False


def _one_line(text: str) -> str:
    if "\n" in text or "\r" in text:
        text = text.replace("\r\n", " | ").replace("\n", " | ").replace("\r", " | ")
    return text


class Logger:
    """`log.info("loaded model", rid=request.request_id, model="x")` → one line."""

    def __init__(self, agent: str = "unified-agent", level: str = "INFO",
                 journal: bool | None = None, fd: int = 2):
        self.agent = agent
        self.threshold = PRIORITIES.get(level, 6)
        self.journal = _to_journal() if journal is None else journal
        self.fd = fd

    def set_level(self, level: str) -> None:
        self.threshold = PRIORITIES.get(level, 6)

    def enabled(self, priority: int) -> bool:
        return priority <= self.threshold

    def log(self, priority: int, msg: str, rid: str | None = None, **fields) -> None:
        if priority > self.threshold:
            return
        parts = [self.agent]
        if rid:
            parts.append(f"[{rid}]")
        parts.append(msg)
        for k, v in fields.items():
            v = str(v)
            if not v or " " in v or "=" in v or '"' in v:
                v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            parts.append(f"{k}={v}")
        line = _one_line(" ".join(parts))
        if self.journal:
            out = f"<{priority}>{line}\n"
        else:
            t = time.time()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))
            out = f"{stamp}.{int(t % 1 * 1000):03d} {_NAMES.get(priority, priority)} {line}\n"
        data = out.encode("utf-8", "backslashreplace")
        try:
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
        except OSError:
            pass  # stderr gone (journald restarting): never let logging kill the agent

    def debug(self, msg: str, rid: str | None = None, **fields) -> None:
        if self.threshold >= 7:
            self.log(7, msg, rid, **fields)

    def info(self, msg: str, rid: str | None = None, **fields) -> None:
        self.log(6, msg, rid, **fields)

    def warning(self, msg: str, rid: str | None = None, **fields) -> None:
        self.log(4, msg, rid, **fields)

    def error(self, msg: str, rid: str | None = None, **fields) -> None:
        self.log(3, msg, rid, **fields)

    def critical(self, msg: str, rid: str | None = None, **fields) -> None:
        self.log(2, msg, rid, **fields)

    def exception(self, msg: str, exc: BaseException, rid: str | None = None, **fields) -> None:
        """ERROR with the exception and where it came from, on one line (full traceback
        frames joined with ' < ' at DEBUG level)."""
        self.log(3, f"{msg}: {describe_exception(exc, self.threshold >= 7)}", rid, **fields)


def describe_exception(exc: BaseException, full: bool = False) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        co = tb.tb_frame.f_code
        frames.append(f"{os.path.basename(co.co_filename)}:{tb.tb_lineno} in {co.co_name}")
        tb = tb.tb_next
    if frames:
        if not full:
            where = frames[-1]
        else:
            inner = list(reversed(frames))
            where = " < ".join(inner[:8])
            if len(inner) > 8:
                where += f" < ... {len(inner) - 8} more"
        text += " (at " + where + ")"
    return text


def bridge_stdlib_logging(logger: Logger) -> bool:
    """If the agent imported `logging`, send its records through `logger` (same format,
    same priorities, request id when one is current). Returns True when installed."""
    if sys.modules.get("logging") is None:
        return False
    import logging  # (imported already: no cost)
    root = logging.getLogger()
    if any(getattr(h, "_unified", False) for h in root.handlers):
        return True

    class _Handler(logging.Handler):
        _unified = True

        def emit(self, record):
            try:
                from .request_context import current_request_id

                msg = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    msg += ": " + describe_exception(record.exc_info[1], logger.threshold >= 7)
                prio = 2 if record.levelno >= 50 else 3 if record.levelno >= 40 else \
                    4 if record.levelno >= 30 else 6 if record.levelno >= 20 else 7
                logger.log(prio, f"{record.name}: {msg}", current_request_id())
            except Exception:  # pragma: no cover - never raise from logging
                pass

    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_Handler())
    level = {7: "DEBUG", 6: "INFO", 4: "WARNING", 3: "ERROR", 2: "CRITICAL"}[logger.threshold]
    root.setLevel(level)
    return True
