"""The recording systemd fake, plus journalctl runs (unit tests only)."""
from __future__ import annotations

import subprocess

from unified_core.systemd import Systemd

from ..fakes import FakeSystemd


class JournalFakeSystemd(FakeSystemd):
    """FakeSystemd whose journalctl calls are recorded and answered from `answers`
    (first matching argument → stdout)."""

    journalctl = "journalctl"

    def __init__(self, catalog=None, answers=None):
        super().__init__(catalog)
        self.answers = answers or {}

    def journal_args(self, units, **kw):
        return Systemd.journal_args(self, units, **kw)

    def journal_run(self, args, timeout=120):
        self._log("journalctl", tuple(args[1:]))
        out = next((v for k, v in self.answers.items() if k in args), "")
        return subprocess.CompletedProcess(list(args), 0, out, "")
