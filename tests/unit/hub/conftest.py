"""Fixtures for the ObservabilityHub tests: a small catalog on free loopback ports, stand-in
`systemctl` / `journalctl` (bin/) whose answers the test writes, and helpers to build the
hub's inputs in-process.

`hubenv` is the world of a hub process (catalog, fake systemd state, fake journal, state
and targets directories); `hubenv.spawn()` starts the real hub agent on it.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import time

import pytest

from ..fake_units import FakeUnitsFile
from ..sdk.harness import ROOT, Spawner, fleet_ports, sdk_path  # noqa: F401  (fixture)

HERE = pathlib.Path(__file__).resolve().parent
RULES = ROOT / "etc" / "prometheus" / "unified-rules.yml"

CATALOG = """\
version: 1
settings:
  host: testhost
  bind_address: 127.0.0.1
  profile: core
  limits: {{vram_limit_mb: 4000}}
lazy_loader:
  slow_load_threshold: 10s
agents:
  ObservabilityHub:
    group: infra
    port: {ObservabilityHub}
    health_port: {ObservabilityHub_h}
    required: true
    run: {{builtin: observability_hub}}
  RequestCoordinator:
    group: infra
    port: {RequestCoordinator}
    health_port: {RequestCoordinator_h}
    required: true
  Worker:
    group: work
    port: {Worker}
    health_port: {Worker_h}
    required: true
    resources: {{memory_mb: 100}}
  Sleeper:
    group: work
    port: {Sleeper}
    health_port: {Sleeper_h}
    required: false
  ModelManagerSuite:
    group: models
    port: {ModelManagerSuite}
    health_port: {ModelManagerSuite_h}
    required: false
  Faraway:
    group: far
    port: {Faraway}
    health_port: {Faraway_h}
    required: true
profiles:
  core:
    groups: [infra, work, models]
  extra:
    extends: core
    groups: [far]
"""
AGENTS = ("ObservabilityHub", "RequestCoordinator", "Worker", "Sleeper", "ModelManagerSuite",
          "Faraway")


class HubEnv(FakeUnitsFile):
    def __init__(self, tmp: pathlib.Path, spawner: Spawner | None = None):
        self.tmp = tmp
        self.spawner = spawner
        self.ports = fleet_ports([k for a in AGENTS for k in (a, a + "_h")])
        (tmp / "etc").mkdir(exist_ok=True)
        self.catalog = tmp / "etc" / "unified.yaml"
        self.catalog.write_text(CATALOG.format(**self.ports))
        self.state_dir = tmp / "state"
        self.state_dir.mkdir(exist_ok=True)
        self.targets_dir = tmp / "prom"
        self.targets_dir.mkdir(exist_ok=True)
        self.targets = self.targets_dir / "targets.json"
        self.units_file = tmp / "systemd.json"
        self.journal_file = tmp / "journal.jsonl"
        self.journal_file.write_text("")
        self.units: dict = {}
        self.cursor = 0
        self.write_units()

    # ---------------------------------------------------------- fake systemd
    # ---------------------------------------------------------- fake journal
    def log(self, unit: str, message, priority: int = 6, pid: str = "4242", **extra) -> str:
        self.cursor += 1
        cur = f"c{self.cursor}"
        entry = {"__CURSOR": cur, "__REALTIME_TIMESTAMP": str(int(time.time() * 1e6)),
                 "PRIORITY": str(priority), "MESSAGE": message, "_PID": pid}
        if pid == "1":
            entry["UNIT"] = unit
            entry["_SYSTEMD_UNIT"] = "init.scope"
        else:
            entry["_SYSTEMD_UNIT"] = unit
        entry.update(extra)
        with open(self.journal_file, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return cur

    def journal_args(self) -> list[list[str]]:
        try:
            text = pathlib.Path(str(self.journal_file) + ".args").read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines()]

    # ---------------------------------------------------------- the hub process
    def env(self, **extra) -> dict:
        e = {
            "UNIFIED_CATALOG": str(self.catalog),
            "UNIFIED_ETC": str(self.tmp / "etc"),
            "UNIFIED_RUN": "builtin:observability_hub",
            "STATE_DIRECTORY": str(self.state_dir),
            "HUB_FAKE_SYSTEMD": str(self.units_file),
            "HUB_FAKE_JOURNAL": str(self.journal_file),
            "HUB_TARGETS_FILE": str(self.targets),
            "HUB_INTERVAL_S": "0.3",
            "PATH": f"{HERE / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": f"{self.spawner.sdk_path}{os.pathsep}{ROOT}",
        }
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def spawn(self, lsock=None, **env):
        """Start the hub; `lsock`: the agent socket of a previous run (as systemd keeps it)."""
        if lsock is None:
            lsock = socket.create_server(("127.0.0.1", self.ports["ObservabilityHub"]),
                                         backlog=128)
            self.spawner.sockets.append(lsock)
        return self.spawner("ObservabilityHub", self.env(**env), lsock=lsock,
                            health_port=self.ports["ObservabilityHub_h"])


def wait_for(pred, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def hubenv(sdk_path, tmp_path):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path)
    env = HubEnv(tmp_path, sp)
    yield env
    sp.close()


@pytest.fixture
def catalog(tmp_path):
    """The test catalog loaded in-process (for tests of the pure parts)."""
    from unified_core.catalog import load_catalog

    env = HubEnv(tmp_path)
    return load_catalog(str(env.catalog), env={})


_QUIET = []


def quiet_pid() -> int:
    """The pid of a tiny long-lived process to stand in for an agent's MainPID: the pytest
    process itself grows past the test catalog's memory_mb (100) in a full run, which made
    HighMemoryUsage fire in the tests that don't expect it."""
    import atexit
    import subprocess

    if not _QUIET:
        p = subprocess.Popen(["sleep", "3600"])
        atexit.register(p.kill)
        _QUIET.append(p)
    return _QUIET[0].pid
