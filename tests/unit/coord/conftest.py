"""Fixtures for the coordination agents' tests: a small catalog on free loopback ports, a
stand-in `systemctl` whose unit states the test writes, and real agent processes (the SDK
tests' spawner: each agent gets its agent socket as fd 3, as from systemd)."""
from __future__ import annotations

import os
import pathlib
import socket
import time

import pytest

from ..fake_units import FakeUnitsFile
from ..sdk.harness import ROOT, Spawner, fleet_ports, sdk_path  # noqa: F401  (fixture)

HERE = pathlib.Path(__file__).resolve().parent

CATALOG = """\
version: 1
settings:
  host: testhost
  bind_address: 127.0.0.1
  profile: core
lazy_loader:
  load_timeout: {load_timeout}
  slow_load_threshold: {slow}
  max_concurrent_loads: 2
agents:
  Registry:
    group: infra
    port: {Registry}
    health_port: {Registry_h}
    required: true
    task_types: [registry_lookup]
  Coordinator:
    group: infra
    port: {Coordinator}
    health_port: {Coordinator_h}
    required: true
    depends_on: [Registry]
  Loader:
    group: infra
    port: {Loader}
    health_port: {Loader_h}
    required: true
    depends_on: [Registry]
  Echo:
    group: work
    port: {Echo}
    health_port: {Echo_h}
    required: false
    depends_on: [Helper]
    task_types: [echo, vision]
  Helper:
    group: work
    port: {Helper}
    health_port: {Helper_h}
    required: false
  Flaky:
    group: work
    port: {Flaky}
    health_port: {Flaky_h}
    required: false
    task_types: [flaky]
    run:
      entry_point: 'coord_test_agents:Flaky'
  Faraway:
    group: far
    port: {Faraway}
    health_port: {Faraway_h}
    required: false
    task_types: [far]
profiles:
  core:
    groups: [infra, work]
  extra:
    extends: core
    groups: [far]
  full:
    all: true
"""
AGENTS = ("Registry", "Coordinator", "Loader", "Echo", "Helper", "Flaky", "Faraway")


class Fleet(FakeUnitsFile):
    """A catalog on free ports + fake systemd state + agent processes."""

    def __init__(self, tmp: pathlib.Path, spawner: Spawner, load_timeout="5s", slow="1s"):
        self.tmp = tmp
        self.spawner = spawner
        self.ports = fleet_ports([k for a in AGENTS for k in (a, a + "_h")])
        (tmp / "etc").mkdir(exist_ok=True)
        self.catalog = tmp / "etc" / "unified.yaml"
        self.catalog.write_text(CATALOG.format(load_timeout=load_timeout, slow=slow,
                                               **self.ports))
        self.units_file = tmp / "systemd.json"
        self.units: dict = {}
        self.write_units()
        self.procs = {}

    def env(self, **extra) -> dict:
        e = {
            "UNIFIED_CATALOG": str(self.catalog),
            "UNIFIED_ETC": str(self.tmp / "etc"),
            "COORD_FAKE_SYSTEMD": str(self.units_file),
            "PATH": f"{HERE / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": f"{self.spawner.sdk_path}{os.pathsep}{ROOT}{os.pathsep}{HERE}",
        }
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def listen(self, agent: str) -> socket.socket:
        """The agent port, held like systemd's socket unit (connections queue in it)."""
        s = socket.create_server(("127.0.0.1", self.ports[agent]), backlog=128)
        self.spawner.sockets.append(s)
        return s

    def socket_activated(self, agent: str, delay: float = 0.0, **env):
        """systemd's part of socket activation: hold the agent port; on the first
        connection (after `delay`: a slow start) mark the unit active and start the agent.
        → the thread (join it); `.started` is set once the agent runs."""
        import select
        import threading

        lsock = self.listen(agent)
        self.set_state(agent, "inactive")                 # dormant: socket listens only

        def run():
            r, _, _ = select.select([lsock], [], [], 30)
            if not r:
                return
            time.sleep(delay)
            self.start(agent, lsock=lsock, **env)
            # before systemd's state says active: a loader that sees "active" and returns
            # must find `.started` set (set after, the test raced this thread)
            t.started = True
            self.set_state(agent, "active", MainPID=self.procs[agent].proc.pid)

        t = threading.Thread(target=run, daemon=True)
        t.started = False
        t.start()
        return t

    def start(self, agent: str, run: str | None = None, lsock=None, **env):
        run = run or {"Flaky": "entry_point:coord_test_agents:Flaky"}.get(agent)
        if run:
            env["UNIFIED_RUN"] = run
        p = self.spawner(agent, self.env(**env), lsock=lsock or self.listen(agent),
                         health_port=self.ports[agent + "_h"])
        self.procs[agent] = p
        return p


@pytest.fixture
def fleet(sdk_path, tmp_path):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path)
    f = Fleet(tmp_path, sp)
    yield f
    sp.close()
