"""The one place that runs systemctl and journalctl. Everything else calls this seam.

systemctl/journalctl rather than D-Bus bindings: no extra dependency, identical behaviour to
what operators type, and the CLI's few calls per command cost milliseconds.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterable, Sequence

from .errors import NeedsRoot, SystemdError

SHOW_PROPS = ("Id", "LoadState", "ActiveState", "SubState", "Result", "MainPID", "NRestarts",
              "MemoryCurrent", "CPUUsageNSec", "TasksCurrent", "ActiveEnterTimestamp",
              "ActiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic",
              "ExecMainStartTimestampMonotonic", "ExecMainStatus", "ControlGroup")

# What systemctl says when a user (not root) asks for a change: without polkit, and with
# polkit but no agent to ask for a password.
REFUSALS = ("Access denied", "Interactive authentication required", "Permission denied")


class Systemd:
    def __init__(self, systemctl: str = "systemctl", journalctl: str = "journalctl"):
        self.systemctl = systemctl
        self.journalctl = journalctl

    # -- plumbing -------------------------------------------------------------------
    def _run(self, args: Sequence[str], check: bool = True, timeout: float = 120,
             tool: str | None = None) -> subprocess.CompletedProcess:
        cmd = [tool or self.systemctl, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise SystemdError(f"{cmd[0]} not found: unified-ctl needs systemd (is this a systemd host?)") from None
        except subprocess.TimeoutExpired:
            raise SystemdError(f"`{' '.join(cmd)}` did not finish within {timeout:g} s") from None
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip()
            if "System has not been booted with systemd" in msg or "Failed to connect to bus" in msg:
                raise SystemdError(f"systemd is not running here ({msg}); unified-ctl drives systemd services")
            refused = next((m for m in REFUSALS if m in msg), None)
            if refused:  # a user asking the system manager to change something
                raise NeedsRoot(f"systemd refused `{' '.join(cmd)}`: {refused}")
            raise SystemdError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {msg}")
        return proc

    # -- manager ----------------------------------------------------------------------
    def daemon_reload(self) -> None:
        self._run(["daemon-reload"])

    def start(self, units: Iterable[str], no_block: bool = False) -> None:
        units = list(units)
        if units:
            self._run(["start", *(["--no-block"] if no_block else []), "--", *units])

    def stop(self, units: Iterable[str], no_block: bool = False) -> None:
        units = list(units)
        if units:
            self._run(["stop", *(["--no-block"] if no_block else []), "--", *units])

    def restart(self, units: Iterable[str]) -> None:
        units = list(units)
        if units:
            self._run(["restart", "--", *units])

    def try_restart(self, units: Iterable[str]) -> None:
        """Restart the units that are running; leave stopped (e.g. dormant) ones alone."""
        units = list(units)
        if units:
            self._run(["try-restart", "--", *units])

    def reload(self, units: Iterable[str]) -> None:
        """reload-or-restart (e.g. Prometheus re-reading its configuration)."""
        units = list(units)
        if units:
            self._run(["reload-or-restart", "--", *units])

    def enable(self, units: Iterable[str], now: bool = False) -> None:
        units = list(units)
        if units:
            self._run(["enable", *(["--now"] if now else []), "--", *units])

    def disable(self, units: Iterable[str], now: bool = False) -> None:
        units = list(units)
        if units:
            self._run(["disable", *(["--now"] if now else []), "--", *units])

    def reset_failed(self, units: Iterable[str]) -> None:
        units = list(units)
        if units:
            self._run(["reset-failed", "--", *units], check=False)

    def kill(self, units: Iterable[str], signal: str = "SIGKILL") -> None:
        units = list(units)
        if units:
            self._run(["kill", f"--signal={signal}", "--", *units], check=False)

    def set_environment(self, assignments: dict[str, str]) -> None:
        if assignments:
            self._run(["set-environment", *(f"{k}={v}" for k, v in assignments.items())])

    # -- state --------------------------------------------------------------------------
    def show(self, units: Sequence[str], props: Sequence[str] = SHOW_PROPS) -> dict[str, dict[str, str]]:
        """Properties of many units in one call; unknown units come back LoadState=not-found."""
        out: dict[str, dict[str, str]] = {}
        units = list(units)
        for i in range(0, len(units), 200):  # keep argv bounded for 1,000-agent catalogs
            chunk = units[i:i + 200]
            proc = self._run(["show", "--no-pager", "-p", ",".join(props), "--", *chunk])
            for unit, block in zip(chunk, proc.stdout.split("\n\n")):
                d = {}
                for line in block.splitlines():
                    k, _, v = line.partition("=")
                    d[k] = v
                out[unit] = d
        return out

    def list_units(self, patterns: Sequence[str]) -> list[dict[str, str]]:
        """Loaded units matching the glob patterns (active or not)."""
        proc = self._run(["list-units", "--all", "--plain", "--no-legend", "--full", "--no-pager", "--", *patterns])
        rows = []
        for line in proc.stdout.splitlines():
            parts = line.split(None, 4)
            if len(parts) >= 4:
                rows.append({"unit": parts[0], "load": parts[1], "active": parts[2], "sub": parts[3],
                             "description": parts[4] if len(parts) > 4 else ""})
        return rows

    def list_jobs(self, patterns: Sequence[str]) -> list[dict[str, str]]:
        """Queued jobs of the units matching the glob patterns: {id, unit, type, state}."""
        proc = self._run(["list-jobs", "--plain", "--no-legend", "--full", "--no-pager", "--", *patterns])
        rows = []
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0].isdigit():
                rows.append({"id": parts[0], "unit": parts[1], "type": parts[2], "state": parts[3]})
        return rows

    def is_active(self, unit: str) -> bool:
        return self._run(["is-active", "--quiet", "--", unit], check=False).returncode == 0

    def cat(self, unit: str) -> str:
        return self._run(["cat", "--no-pager", "--", unit], check=False).stdout

    # -- journal ------------------------------------------------------------------------
    def journal_tail(self, units: Sequence[str], lines: int = 10, priority: str | None = None) -> list[str]:
        args = ["--no-pager", "-q", "-o", "short-iso", "-n", str(lines)]
        if priority:
            args += ["-p", priority]
        for u in units:
            args += ["-u", u]
        proc = self._run(args, check=False, tool=self.journalctl, timeout=30)
        return [ln for ln in proc.stdout.splitlines() if ln.strip()]

    def journal_args(self, units: Sequence[str], follow: bool = False, priority: str | None = None,
                     since: str | None = None, lines: int | None = None, output: str | None = None,
                     extra: Sequence[str] = (), until: str | None = None, grep: str | None = None) -> list[str]:
        args = [self.journalctl, "--no-pager"] if not follow else [self.journalctl]
        for u in units:
            args += ["-u", u]
        if follow:
            args.append("-f")
        if priority:
            args += ["-p", priority]
        if since:
            args += ["--since", since]
        if until:
            args += ["--until", until]
        if grep:
            args += ["--grep", grep]
        if lines is not None:
            args += ["-n", str(lines)]
        if output:
            args += ["-o", output]
        return args + list(extra)

    def journal_exec(self, args: list[str]) -> None:
        """Hand the terminal to journalctl (follow mode, pager, colours)."""
        if not shutil.which(args[0]):
            raise SystemdError(f"{args[0]} not found: unified-ctl needs systemd's journalctl")
        os.execvp(args[0], args)

    def journal_run(self, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return self._run(list(args[1:]), check=False, tool=args[0], timeout=timeout)
