"""`promtool check metrics` (Debian's `prometheus`) over an exposition: the parse and the
lint (counters end in _total, base units as suffixes, no _count/_sum/_bucket outside
histograms, HELP on every family...). A finding is a failure, never skipped."""
from __future__ import annotations

import subprocess

from tests.host_tools import require_tool


def promtool_findings(text: str) -> str:
    """'' when promtool accepts `text`; its findings otherwise."""
    r = subprocess.run([require_tool("promtool"), "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    return "" if r.returncode == 0 and not out else out or f"promtool exit {r.returncode}"
