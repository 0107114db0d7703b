"""Fixtures for the state agents' tests: real agent processes (the SDK tests' spawner: the
agent socket arrives as fd 3, as from systemd) with their databases in a temp STATE_DIRECTORY,
a small catalog, and the stand-in `systemctl` of tests/unit/coord/bin (unit states from a
JSON file the test writes)."""
from __future__ import annotations

import os
import pathlib

import pytest

from ..fake_units import FakeUnitsFile
from ..sdk.harness import ROOT, Spawner, sdk_path, spawn  # noqa: F401  (fixtures)

HERE = pathlib.Path(__file__).resolve().parent
FAKE_BIN = HERE.parent / "coord" / "bin"   # systemctl reading $COORD_FAKE_SYSTEMD

CATALOG = """\
version: 1
settings: {host: testhost, bind_address: 127.0.0.1, profile: core}
agents:
  Alpha: {group: g, port: 17001, health_port: 18001, required: true}
  Beta: {group: g, port: 17002, health_port: 18002, required: false}
  Gamma: {group: h, port: 17003, health_port: 18003, required: false}
profiles:
  core: {groups: [g]}
  more: {extends: core, groups: [h]}
"""


class FakeUnits(FakeUnitsFile):
    """Unit states for the stand-in systemctl, and the files a twin reads (catalog,
    selected profile)."""

    def __init__(self, tmp: pathlib.Path):
        self.etc = tmp / "etc"
        self.etc.mkdir(exist_ok=True)
        self.catalog = self.etc / "unified.yaml"
        self.catalog.write_text(CATALOG)
        self.units_file = tmp / "systemd.json"
        self.units: dict = {}
        self.write_units()

    def select_profile(self, name: str) -> None:
        (self.etc / "selected-profile").write_text(name + "\n")

    def env(self) -> dict:
        return {"UNIFIED_CATALOG": str(self.catalog), "UNIFIED_ETC": str(self.etc),
                "COORD_FAKE_SYSTEMD": str(self.units_file),
                "PATH": f"{FAKE_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}


@pytest.fixture
def units(tmp_path, monkeypatch):
    u = FakeUnits(tmp_path)
    monkeypatch.setenv("UNIFIED_ETC", str(u.etc))  # in-process readers of selected-profile
    return u


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def start_agent(spawn, state_dir):  # noqa: F811
    """start_agent("memory_client", **env) → AgentProc running builtin MODULE."""
    def start(module: str, name: str | None = None, lsock=None, **env):
        e = {"UNIFIED_RUN": f"builtin:{module}", "STATE_DIRECTORY": str(state_dir),
             "PYTHONPATH": f"{spawn.sdk_path}{os.pathsep}{ROOT}"}
        e.update({k: str(v) for k, v in env.items()})
        return spawn(name or module.title().replace("_", ""), e, lsock=lsock)
    return start
