"""User-facing errors: raised by library code, printed once by the CLI.

They are plain exceptions with an exit code: the agents raise and catch them too, and must not
load click for it (a cold start's budget is 100 ms; click costs ~20 ms). The CLI maps them to
click once, at its edge (unified_ctl.cli.context.UnifiedGroup).

The exit statuses of unified-ctl are EXIT_STATUS below; its man page's EXIT STATUS section
lists the same (tests/unit/test_exit_status.py keeps them equal)."""
from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1          # UnifiedError: something the operator can fix, said in one line
EXIT_USAGE = 2          # Click: unknown command or option, bad argument
EXIT_SYSTEMD = 3        # SystemdError
EXIT_INTERNAL = 70      # EX_SOFTWARE (sysexits.h): a bug of ours
EXIT_NOPERM = 77        # EX_NOPERM (sysexits.h): needs root
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

EXIT_STATUS = {
    EXIT_OK: "success",
    EXIT_ERROR: "an error the operator can fix, e.g. an invalid catalog (one line names "
                "file, field and value); also `health`: degraded",
    EXIT_USAGE: "usage error: unknown command or option, bad argument; also `health`: critical",
    EXIT_SYSTEMD: "systemctl or journalctl failed, or systemd is not running",
    EXIT_INTERNAL: "internal error, a bug: one line (UNIFIED_DEBUG=1 shows the traceback)",
    EXIT_NOPERM: "needs root: the command changes system state (run it with sudo)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class UnifiedError(Exception):
    """An error the operator can fix; exit code 1, no traceback. str(e) is the whole message."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, located as precisely as we know."""

    source: str  # file path, or "environment"
    line: int | None
    where: str  # dotted path: agents.TutorAgent.port
    message: str  # names the bad value and what is allowed

    def __str__(self) -> str:
        loc = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{loc}: {self.where}: {self.message}" if self.where else f"{loc}: {self.message}"


class CatalogInvalid(UnifiedError):
    """The catalog (or an environment override) is invalid; lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"invalid configuration ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([head] + [f"  {p}" for p in self.problems]))


class SystemdError(UnifiedError):
    """systemctl/journalctl failed or systemd is not reachable."""

    exit_code = EXIT_SYSTEMD


class NeedsRoot(UnifiedError):
    """Only root may do this: a file we must write, or systemd refusing ("Access denied").
    The CLI names the command and says to use sudo (unified_ctl.cli.main)."""

    exit_code = EXIT_NOPERM
