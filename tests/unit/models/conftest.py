"""Fixtures for the model agents' tests: a catalog whose models point at local
OpenAI-compatible test servers, and the real agent processes (the SDK tests' spawner)."""
from __future__ import annotations

import pathlib
import socket

import pytest

from ..sdk.harness import ROOT, Spawner, fleet_ports, sdk_path  # noqa: F401  (fixture)
from .openai_test_server import OpenAITestServer

HERE = pathlib.Path(__file__).resolve().parent

CATALOG = """\
version: 1
settings:
  host: testhost
  bind_address: 127.0.0.1
  profile: core
routing:
  complexity_threshold: 0.7
  rules:
    - {{tasks: [code_generation], complexity: 0.9, backend: cloud}}
    - {{tasks: [large_context_reasoning], complexity: 0.95, backend: cloud}}
    - {{tasks: [training, fine_tuning], complexity: 1.0, backend: cloud}}
    - {{tasks: [simple_chat, greeting], complexity: 0.2, backend: local}}
    - {{tasks: [command_parsing], complexity: 0.3, backend: local}}
    - {{tasks: [emotion_detection], complexity: 0.4, backend: local}}
  failover:
    cloud_unreachable: local
    vram_exhausted: local_small
models:
  vram_budget_percentage: 80
  idle_timeout: {idle}
  declared:
    phi3_mini: {{backend: openai, vram_mb: 2600, endpoint: '{local}', role: local}}
    tinyllama: {{backend: openai, vram_mb: 700, endpoint: '{small}', role: local_small}}
    cloud_llm: {{backend: openai, vram_mb: 0, endpoint: '{cloud}', role: cloud}}
agents:
  ModelManagerSuite:
    group: models
    port: {ModelManagerSuite}
    health_port: {ModelManagerSuite_h}
    required: true
    task_types: [model_management, llm_generate]
    run: {{builtin: model_manager}}
  VRAMOptimizerAgent:
    group: models
    port: {VRAMOptimizerAgent}
    health_port: {VRAMOptimizerAgent_h}
    required: true
    depends_on: [ModelManagerSuite]
    task_types: [vram_management]
    run: {{builtin: vram_optimizer}}
  Speech:
    group: models
    port: {Speech}
    health_port: {Speech_h}
    required: false
    resources: {{vram_mb: 512}}
  Vision:
    group: models
    port: {Vision}
    health_port: {Vision_h}
    required: false
    resources: {{vram_mb: 1024}}
  Chat:
    group: models
    port: {Chat}
    health_port: {Chat_h}
    required: false
profiles:
  core:
    all: true
"""
AGENTS = ("ModelManagerSuite", "VRAMOptimizerAgent", "Speech", "Vision", "Chat", "Registry")


class FakeRegistry:
    """ServiceRegistry's GET /agents, answering with the agents a test marks active (the
    optimizer asks the registry which agents run; systemd is not part of these tests)."""

    def __init__(self, fleet: "ModelsFleet", port: int):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.active: set[str] = set()
        self.queries: list[str] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.queries.append(self.path)
                rows = [{"name": n, "state": "active",
                         "url": f"http://127.0.0.1:{fleet.ports[n]}",
                         "health_url": f"http://127.0.0.1:{fleet.ports[n + '_h']}/health"}
                        for n in sorted(outer.active)] if "state=active" in self.path else []
                data = json.dumps({"agents": rows}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ModelsFleet:
    def __init__(self, tmp: pathlib.Path, spawner: Spawner, idle: str = "5m"):
        self.tmp = tmp
        self.spawner = spawner
        self.local = OpenAITestServer("phi-3-mini").start()
        self.small = OpenAITestServer("tinyllama-1.1b").start()
        self.cloud = OpenAITestServer("gpt-cloud").start()
        self.ports = fleet_ports([k for a in AGENTS for k in (a, a + "_h")])
        self.catalog = tmp / "unified.yaml"
        self.catalog.write_text(CATALOG.format(idle=idle, local=self.local.url,
                                               small=self.small.url, cloud=self.cloud.url,
                                               **self.ports))
        self.state = tmp / "state"
        self.state.mkdir()
        self.procs = {}
        self.registry = FakeRegistry(self, self.ports["Registry"])

    def env(self, **extra) -> dict:
        e = {"UNIFIED_CATALOG": str(self.catalog), "STATE_DIRECTORY": str(self.state),
             "VRAM_LIMIT_MB": "4000", "UNIFIED_TASK_TYPES": "",
             "SERVICE_REGISTRY_URL": self.registry.url,
             "PYTHONPATH": f"{self.spawner.sdk_path}:{ROOT}:{HERE}"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def start(self, agent: str, run: str, **env):
        lsock = socket.create_server(("127.0.0.1", self.ports[agent]), backlog=64)
        self.spawner.sockets.append(lsock)
        p = self.spawner(agent, self.env(UNIFIED_RUN=run, **env), lsock=lsock,
                         health_port=self.ports[agent + "_h"])
        self.procs[agent] = p
        return p

    def close(self):
        for s in (self.local, self.small, self.cloud, self.registry):
            s.stop()


@pytest.fixture
def models_fleet(sdk_path, tmp_path):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path)
    f = ModelsFleet(tmp_path, sp)
    yield f
    sp.close()
    f.close()
