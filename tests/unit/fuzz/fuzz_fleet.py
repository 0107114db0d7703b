"""The world the HTTP fuzz tests attack: every builtin agent and the reference agent as real
processes (the SDK tests' spawner: agent socket as fd 3, as from systemd) on free loopback
ports, one catalog naming them all, their databases in a temp STATE_DIRECTORY, and the
stand-in `systemctl` of tests/unit/coord/bin (unit states from a JSON file). Model
backends point at closed ports: a generation or load fails fast, it never waits.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket

from ..fake_units import FakeUnitsFile
from ..sdk.harness import ROOT, Spawner, fleet_ports
from .fuzz_http import drain_notifications

HERE = pathlib.Path(__file__).resolve().parent
FAKE_BIN = HERE.parent / "coord" / "bin"

# name -> (UNIFIED_RUN, extra catalog lines)
BUILTINS = {
    "ServiceRegistry": "builtin:service_registry",
    "RequestCoordinator": "builtin:request_coordinator",
    "LazyLoader": "builtin:lazy_loader",
    "SystemDigitalTwin": "builtin:digital_twin",
    "MemoryClient": "builtin:memory_client",
    "KnowledgeBase": "builtin:knowledge_base",
    "SessionMemoryAgent": "builtin:session_memory",
    "ModelManagerSuite": "builtin:model_manager",
    "VRAMOptimizerAgent": "builtin:vram_optimizer",
    "Echo": "reference",
}
# in the catalog, never started: a dormant agent whose socket failed, one of another profile
IDLE = ("Sleepy", "Faraway")
NAMES = tuple(BUILTINS) + IDLE

CATALOG = """\
version: 1
settings: {{host: fuzzhost, bind_address: 127.0.0.1, profile: core}}
lazy_loader: {{load_timeout: 2s, slow_load_threshold: 1s, max_concurrent_loads: 2}}
routing:
  complexity_threshold: 0.7
  rules:
    - {{tasks: [code_generation], complexity: 0.9, backend: cloud}}
    - {{tasks: [simple_chat], complexity: 0.2, backend: local}}
  failover: {{cloud_unreachable: local, vram_exhausted: local_small}}
models:
  vram_budget_percentage: 80
  idle_timeout: 5m
  declared:
    phi3_mini: {{backend: openai, vram_mb: 2600, endpoint: '{dead}', role: local}}
    tinyllama: {{backend: openai, vram_mb: 700, endpoint: '{dead}', role: local_small}}
    cloud_llm: {{backend: openai, vram_mb: 0, endpoint: '{dead}', role: cloud}}
agents:
{agents}
profiles:
  core: {{groups: [infra, state, models, work]}}
  far: {{extends: core, groups: [far]}}
"""
GROUP = {"ServiceRegistry": "infra", "RequestCoordinator": "infra", "LazyLoader": "infra",
         "SystemDigitalTwin": "state", "MemoryClient": "state", "KnowledgeBase": "state",
         "SessionMemoryAgent": "state", "ModelManagerSuite": "models",
         "VRAMOptimizerAgent": "models", "Echo": "work", "Sleepy": "work", "Faraway": "far"}
TASKS = {"ServiceRegistry": ["registry_lookup"], "SystemDigitalTwin": ["twin"],
         "MemoryClient": ["memory"], "KnowledgeBase": ["knowledge"],
         "SessionMemoryAgent": ["session"], "ModelManagerSuite": ["model_management",
                                                                   "llm_generate"],
         "VRAMOptimizerAgent": ["vram_management"], "Echo": ["echo"], "Sleepy": ["nap"],
         "Faraway": ["far"]}


class FuzzFleet(FakeUnitsFile):
    def __init__(self, tmp: pathlib.Path, spawner: Spawner):
        self.tmp = tmp
        self.spawner = spawner
        ports = list(fleet_ports(range(2 * len(NAMES) + 1)).values())
        self.ports = {n: ports[2 * i] for i, n in enumerate(NAMES)}
        self.health_ports = {n: ports[2 * i + 1] for i, n in enumerate(NAMES)}
        dead = f"http://127.0.0.1:{ports[-1]}/v1"   # closed: model calls fail at once
        lines = []
        for n in NAMES:
            required = "false" if n in IDLE else "true"
            run = BUILTINS.get(n, "reference")
            run_line = f", run: {{builtin: {run.split(':')[1]}}}" if run.startswith("builtin") \
                else ""
            lines.append(f"  {n}: {{group: {GROUP[n]}, port: {self.ports[n]}, "
                         f"health_port: {self.health_ports[n]}, required: {required}, "
                         f"task_types: {json.dumps(TASKS.get(n, []))}{run_line}}}")
        self.etc = tmp / "etc"
        self.etc.mkdir()
        self.catalog = self.etc / "unified.yaml"
        self.catalog.write_text(CATALOG.format(dead=dead, agents="\n".join(lines)))
        (self.etc / "selected-profile").write_text("core\n")
        self.state = tmp / "state"
        self.state.mkdir()
        self.units_file = tmp / "systemd.json"
        self.procs: dict = {}
        units = {}
        for n in NAMES:
            running = n in BUILTINS
            units[f"unified-agent@{n}.service"] = {
                "ActiveState": "active" if running else "failed",
                "SubState": "running" if running else "failed",
                "Result": "success" if running else "exit-code"}
            units[f"unified-agent@{n}.socket"] = {
                "ActiveState": "active" if running or n == "Faraway" else "failed",
                "SubState": "listening" if running else "failed"}
        self.units = units
        self.write_units()

    def env(self) -> dict:
        return {
            "UNIFIED_CATALOG": str(self.catalog),
            "UNIFIED_ETC": str(self.etc),
            "STATE_DIRECTORY": str(self.state),
            "COORD_FAKE_SYSTEMD": str(self.units_file),
            "PATH": f"{FAKE_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": f"{self.spawner.sdk_path}{os.pathsep}{ROOT}",
            "SERVICE_REGISTRY_URL": f"http://127.0.0.1:{self.ports['ServiceRegistry']}",
            "MODEL_MANAGER_URL": f"http://127.0.0.1:{self.ports['ModelManagerSuite']}",
            "VRAM_LIMIT_MB": "4000",
            "COORDINATOR_TASK_TIMEOUT_S": "2",
            "MODEL_MANAGER_GENERATE_TIMEOUT_S": "2",
            "MODEL_MANAGER_CHECK_TIMEOUT_S": "0.5",
            "VRAM_OPTIMIZER_RELEASE_TIMEOUT_S": "1",
            "TWIN_POLL_S": "1",
            "MAX_THREADS": "8",
        }

    def start(self, name: str):
        lsock = socket.create_server(("127.0.0.1", self.ports[name]), backlog=128)
        self.spawner.sockets.append(lsock)
        env = self.env()
        env["UNIFIED_RUN"] = BUILTINS[name]
        env["UNIFIED_TASK_TYPES"] = ",".join(TASKS.get(name, []))
        p = self.spawner(name, env, lsock=lsock, health_port=self.health_ports[name])
        drain_notifications(p)
        self.procs[name] = p
        units = self.units[f"unified-agent@{name}.service"]
        units["MainPID"] = str(p.proc.pid)
        self.write_units()
        return p

    def start_all(self) -> None:
        for name in BUILTINS:
            self.start(name)
