"""Fixtures for the generative agents' tests: a deterministic OpenAI-compatible stand-in
(llm_stand_in.py) behind the real ModelManagerSuite, and the real agent processes (the SDK
tests' spawner), all on free ports from a catalog written for the test."""
from __future__ import annotations

import pathlib
import socket

import pytest

from ..sdk.harness import ROOT, Spawner, fleet_ports, sdk_path  # noqa: F401  (fixture)
from .llm_stand_in import StandIn

HERE = pathlib.Path(__file__).resolve().parent
AGENTS = ("ModelManagerSuite", "ChainOfThoughtAgent", "GoTToTAgent", "CognitiveModelAgent",
          "CodeGenerator", "TinyLlamaServiceEnhanced")
RUN = {"ModelManagerSuite": "builtin:model_manager",
       "ChainOfThoughtAgent": "builtin:chain_of_thought", "GoTToTAgent": "builtin:got_tot",
       "CognitiveModelAgent": "builtin:cognitive_model", "CodeGenerator": "builtin:code_generator",
       "TinyLlamaServiceEnhanced": "builtin:tinyllama_service"}
TYPES = {"ModelManagerSuite": "[model_management, llm_generate]",
         "ChainOfThoughtAgent": "[chain_of_thought, large_context_reasoning]",
         "GoTToTAgent": "[tree_of_thought]", "CognitiveModelAgent": "[cognitive_model]",
         "CodeGenerator": "[code_generation]", "TinyLlamaServiceEnhanced": "[local_llm]"}


def catalog(ports: dict, endpoint: str | None) -> str:
    """The test catalog: phi3_mini (role local) at `endpoint`, or no model declared."""
    declared = (f"\n    phi3_mini: {{backend: openai, vram_mb: 2600, endpoint: '{endpoint}', "
                "role: local}" if endpoint else " {}")
    agents = "".join(f"  {a}:\n    group: reasoning\n    port: {ports[a]}\n"
                     f"    health_port: {ports[a + '_h']}\n    required: false\n"
                     f"    task_types: {TYPES[a]}\n" for a in AGENTS)
    return ("version: 1\nsettings:\n  host: testhost\n  bind_address: 127.0.0.1\n"
            "  profile: core\nrouting:\n  complexity_threshold: 0.7\n  rules:\n"
            "    - {tasks: [code_generation], complexity: 0.9, backend: cloud}\n"
            "  failover:\n    cloud_unreachable: local\n    vram_exhausted: local_small\n"
            f"models:\n  vram_budget_percentage: 80\n  idle_timeout: 5m\n  declared:{declared}\n"
            f"agents:\n{agents}profiles:\n  core:\n    all: true\n")


class LLMFleet:
    """ModelManagerSuite on a stand-in (or on `endpoint`, or no model at all) and the agents."""

    def __init__(self, tmp: pathlib.Path, spawner: Spawner, endpoint: str | None = "stand-in"):
        self.spawner = spawner
        self.llm = StandIn(model="stand-in-7b").start() if endpoint == "stand-in" else None
        self.ports = fleet_ports([k for a in AGENTS for k in (a, a + "_h")])
        self.catalog = tmp / "unified.yaml"
        self.catalog.write_text(catalog(self.ports, self.llm.url if self.llm else endpoint))
        self.state = tmp / "state"
        self.state.mkdir()
        self.started: set[str] = set()

    def script(self, rules: list) -> None:
        self.llm.script[:] = rules
        self.llm.used.clear()
        self.llm.requests.clear()

    def start(self, agent: str, **env):
        e = {"UNIFIED_CATALOG": str(self.catalog), "STATE_DIRECTORY": str(self.state),
             "VRAM_LIMIT_MB": "4000", "UNIFIED_RUN": RUN[agent],
             "MODEL_MANAGER_CACHE_ENTRIES": "0",   # scripted answers change between tests
             "PYTHONPATH": f"{self.spawner.sdk_path}:{ROOT}"}
        e.update({k: str(v) for k, v in env.items()})
        if agent in self.started:   # another instance (other settings): ports of its own
            return self.spawner(agent, e)
        self.started.add(agent)
        lsock = socket.create_server(("127.0.0.1", self.ports[agent]), backlog=64)
        self.spawner.sockets.append(lsock)
        return self.spawner(agent, e, lsock=lsock, health_port=self.ports[agent + "_h"])

    def close(self) -> None:
        if self.llm:
            self.llm.stop()


@pytest.fixture(scope="module")
def fleet(sdk_path, tmp_path_factory):  # noqa: F811
    """The stand-in, ModelManagerSuite and ChainOfThoughtAgent, shared by a module's tests."""
    sp = Spawner(sdk_path, tmp_path_factory.mktemp("llm"))
    f = LLMFleet(tmp_path_factory.mktemp("llmcat"), sp)
    f.start("ModelManagerSuite")
    yield f
    sp.close()
    f.close()


def task(agent, body: dict, timeout: float = 30.0):
    status, out, _ = agent.request("POST", "/task", body, timeout=timeout)
    return status, out
