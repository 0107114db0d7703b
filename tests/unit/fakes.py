"""A recording fake of the systemd seam (unified_core.systemd.Systemd) for unit tests only.

It models just enough of systemd for the control plane's logic: units have ActiveState;
start of a profile target activates what it wants; stop deactivates.
"""
from __future__ import annotations

import time

from unified_core.errors import SystemdError


def _matches(unit: str, pattern: str) -> bool:
    prefix, star, suffix = pattern.partition("*")
    return unit == pattern or bool(star and unit.startswith(prefix) and unit.endswith(suffix))


class FakeSystemd:
    def __init__(self, catalog=None):
        self.calls: list[tuple] = []
        self.state: dict[str, str] = {}  # unit -> ActiveState
        self.catalog = catalog
        self.journal: dict[str, list[str]] = {}
        self.entered: dict[str, int] = {}  # unit -> ActiveEnterTimestampMonotonic (µs)
        self.jobs: list[tuple[str, str]] = []  # (unit, type) queued, not run yet (run_jobs runs them)
        self.load: dict[str, str] = {}  # unit -> LoadState when not "loaded" (e.g. "not-found")

    def _log(self, *call):
        self.calls.append(call)

    def _activate(self, u):
        if self.state.get(u) != "active":
            self.entered[u] = int(time.monotonic() * 1e6)
        self.state[u] = "active"

    def daemon_reload(self):
        self._log("daemon-reload")

    def start(self, units, no_block=False):
        units = list(units)
        self._log("start", tuple(units))
        for u in units:
            self._activate(u)
            if self.catalog and u.startswith("unified-profile-"):
                prof = self.catalog.profiles[u[len("unified-profile-"):-len(".target")]]
                for n in prof.agents:
                    a = self.catalog.agents[n]
                    self._activate(a.socket)
                    if a.required or n in prof.autoload:
                        self._activate(a.service)

    def run_jobs(self):
        """The queued start jobs complete (what systemd does after a killed switch)."""
        for u, kind in self.jobs:
            if kind == "start":
                self._activate(u)
        self.jobs = []

    def stop(self, units, no_block=False):
        units = list(units)
        self._log("stop", tuple(units))
        # systemctl refuses the whole call when a name or glob matches a unit it cannot load
        bad = [u for u, ls in self.load.items() if ls != "loaded" and any(_matches(u, p) for p in units)]
        if bad:
            raise SystemdError(f"`systemctl stop` failed (exit 5): Failed to stop {bad[0]}: "
                               f"Unit {bad[0]} not loaded.")
        # a stop job replaces a unit's queued start job, as systemd's does
        self.jobs = [(u, k) for u, k in self.jobs if not any(_matches(u, p) for p in units)]
        for u in units:
            if "*" in u:
                prefix, suffix = u.split("*", 1)
                for k in list(self.state):
                    if k.startswith(prefix) and k.endswith(suffix):
                        self.state[k] = "inactive"
            else:
                self.state[u] = "inactive"

    def restart(self, units):
        self._log("restart", tuple(units))
        for u in units:
            self.state[u] = "inactive"
            self._activate(u)

    def try_restart(self, units):
        units = list(units)
        self._log("try-restart", tuple(units))

    def reset_failed(self, units):
        units = list(units)
        if units:
            self._log("reset-failed", tuple(units))

    def kill(self, units, signal="SIGKILL"):
        self._log("kill", tuple(units), signal)

    def show(self, units, props=()):
        out = {}
        for u in units:
            act = self.state.get(u, "inactive")
            out[u] = {"Id": u, "LoadState": "loaded", "ActiveState": act,
                      "SubState": {"active": "running", "failed": "failed"}.get(act, "dead"),
                      "Result": "success", "MainPID": "4242" if act == "active" else "0", "NRestarts": "0",
                      "MemoryCurrent": "[not set]", "CPUUsageNSec": "1000000000",
                      "ActiveEnterTimestampMonotonic": str(self.entered.get(u, 0)), "ControlGroup": ""}
        return out

    def list_units(self, patterns):
        rows = []
        for u, act in sorted(self.state.items()):
            for p in patterns:
                prefix, _, suffix = p.partition("*")
                if (u == p) or ("*" in p and u.startswith(prefix) and u.endswith(suffix)):
                    rows.append({"unit": u, "load": self.load.get(u, "loaded"), "active": act,
                                 "sub": "running" if act == "active" else "dead", "description": ""})
                    break
        return rows

    def list_jobs(self, patterns):
        """Jobs queued and not run yet: (unit, type) pairs a test puts in self.jobs."""
        rows = []
        for i, (u, kind) in enumerate(self.jobs):
            if any(_matches(u, p) for p in patterns):
                rows.append({"id": str(i + 1), "unit": u, "type": kind, "state": "waiting"})
        return rows

    def is_active(self, unit):
        return self.state.get(unit) == "active"

    def journal_tail(self, units, lines=10, priority=None):
        out = []
        for u in units:
            out += self.journal.get(u, [])
        return out[-lines:]

    def journal_args(self, units, **kw):
        return ["journalctl", *units]

    def journal_exec(self, args):
        self._log("journal-exec", tuple(args))
