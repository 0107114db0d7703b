"""User-facing errors: raised by library code, printed once by the CLI (Click's family)."""
from __future__ import annotations

from dataclasses import dataclass

import click


class UnifiedError(click.ClickException):
    """An error the operator can fix; exit code 1, no traceback."""

    exit_code = 1


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

    exit_code = 3
