"""Fixtures for the dialogue agents' tests: the real agents (RequestCoordinator, NLUAgent,
AdvancedCommandHandler, IntentionValidatorAgent, Responder, MemoryClient, KnowledgeBase,
SessionMemoryAgent, FeedbackHandler, DynamicIdentityAgent, TTSService with flite,
FusedAudioPreprocessor, STTService and WakeWordDetector with PocketSphinx) as processes on
free loopback ports of a small catalog, talking to each other through the real coordinator,
as installed. A fake `systemctl` (tests/unit/coord/bin) answers the coordinator's fleet view."""
from __future__ import annotations

import json
import os
import pathlib
import socket

import pytest

from ..fake_units import FakeUnitsFile
from ..sdk.harness import ROOT, Spawner, fleet_ports, sdk_path  # noqa: F401  (fixture)

COORD_BIN = ROOT / "tests/unit/coord/bin"
AGENTS = {  # name: (run, task types)
    "RequestCoordinator": ("builtin:request_coordinator", []),
    "NLUAgent": ("builtin:nlu_agent", ["nlu", "command_parsing"]),
    "AdvancedCommandHandler": ("builtin:advanced_command_handler", ["command"]),
    "IntentionValidatorAgent": ("builtin:intention_validator", ["intention_validation"]),
    "Responder": ("builtin:responder", ["respond"]),
    "MemoryClient": ("builtin:memory_client", ["memory"]),
    "KnowledgeBase": ("builtin:knowledge_base", ["knowledge_search"]),
    "SessionMemoryAgent": ("builtin:session_memory", ["session_memory"]),
    "TTSService": ("builtin:tts_service", ["text_to_speech", "tts"]),
    "STTService": ("builtin:stt_service", ["speech_to_text", "stt"]),
    "FusedAudioPreprocessor": ("builtin:fused_audio_preprocessor", ["audio_preprocessing"]),
    "WakeWordDetector": ("builtin:wake_word_detector", ["wake_word"]),
    "FeedbackHandler": ("builtin:feedback_handler", ["feedback"]),
    "DynamicIdentityAgent": ("builtin:dynamic_identity", ["identity"]),
    "TieredResponder": ("builtin:responder", ["tiered_response"]),
}


def catalog_text(ports: dict) -> str:
    lines = ["version: 1", "settings:", "  host: testhost", "  bind_address: 127.0.0.1",
             "  profile: dialogue", "agents:"]
    for name, (_, types) in AGENTS.items():
        lines += [f"  {name}:", "    group: dialogue", f"    port: {ports[name]}",
                  f"    health_port: {ports[name + '_h']}", "    required: false",
                  f"    task_types: [{', '.join(types)}]"]
    lines += ["  Camera:", "    group: vision", f"    port: {ports['Camera']}",
              f"    health_port: {ports['Camera_h']}", "    required: false",
              "    task_types: [vision]",
              "profiles:", "  dialogue:", "    groups: [dialogue]",
              "  vision:", "    extends: dialogue", "    groups: [vision]"]
    return "\n".join(lines) + "\n"


class DialogueFleet(FakeUnitsFile):
    def __init__(self, tmp: pathlib.Path, spawner: Spawner, **env):
        self.tmp, self.spawner = tmp, spawner
        self.ports = fleet_ports([k for a in [*AGENTS, "Camera"] for k in (a, a + "_h")])
        (tmp / "etc").mkdir(exist_ok=True)
        (tmp / "state").mkdir(exist_ok=True)
        self.catalog = tmp / "etc" / "unified.yaml"
        self.catalog.write_text(catalog_text(self.ports))
        self.units_file = tmp / "systemd.json"
        self.units: dict = {}
        for a in AGENTS:
            self.set_state(a, "active")
        self.procs: dict = {}
        self.env = env
        self.coordinator = f"http://127.0.0.1:{self.ports['RequestCoordinator']}"

    def agent_env(self, name: str, **extra) -> dict:
        e = {"UNIFIED_CATALOG": str(self.catalog), "UNIFIED_ETC": str(self.tmp / "etc"),
             "UNIFIED_RUN_DIR": str(self.tmp / "run"),
             "COORD_FAKE_SYSTEMD": str(self.units_file),
             "PATH": f"{COORD_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
             "PYTHONPATH": f"{self.spawner.sdk_path}{os.pathsep}{ROOT}",
             "UNIFIED_RUN": AGENTS[name][0],
             "STATE_DIRECTORY": str(self.tmp / "state"),
             "DIALOGUE_COORDINATOR_URL": self.coordinator,
             "NLU_INTENTS_DIR": str(ROOT / "etc/unified/intents.d"),
             "TTS_ENGINE": "flite", "TTS_VOICE": "slt",
             # the reminder synthesised by TTSService (no StreamingTTSAgent here)
             "COMMAND_REMINDER_TASK": "tts",
             # no privileged helper here: a confirmed switch is refused (501), nothing runs
             "VALIDATOR_SWITCH_SOCKET": str(self.tmp / "run" / "profile-switch.sock")}
        e.update({k: str(v) for k, v in {**self.env, **extra}.items()})
        return e

    def start(self, name: str, **extra):
        s = socket.create_server(("127.0.0.1", self.ports[name]), backlog=128)
        self.spawner.sockets.append(s)
        p = self.spawner(name, self.agent_env(name, **extra), lsock=s,
                         health_port=self.ports[name + "_h"], notify=False)
        self.procs[name] = p
        return p

    def restart(self, name: str, **extra):
        """kill -9 and start again on the same ports (what systemd does after a crash)."""
        old = self.procs[name]
        old.stop()
        self.spawner.sockets.remove(old.lsock)
        old.lsock.close()
        return self.start(name, **extra)

    def task(self, ttype: str, body: dict, timeout: float = 60.0):
        p = self.procs["RequestCoordinator"]
        status, out, _ = p.request("POST", "/task", {"type": ttype, **body}, timeout=timeout)
        return status, out

    def turn(self, text: str, session: str | None = None, **extra) -> dict:
        body = {"text": text, **extra}
        if session:
            body["session"] = session
        status, out = self.task("respond", body)
        assert status == 200, out
        return out["result"]

    def stderr(self, name: str) -> str:
        return self.procs[name].stderr()


@pytest.fixture(scope="module")
def fleet(sdk_path, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("dialogue")
    sp = Spawner(sdk_path, tmp)
    f = DialogueFleet(tmp, sp)
    try:
        for name in AGENTS:
            f.start(name)
        yield f
    finally:
        sp.close()


def kb_add(fleet, title: str, body: str) -> None:
    p = fleet.procs["KnowledgeBase"]
    status, out, _ = p.request("POST", "/documents", json.dumps({"title": title, "body": body}),
                               headers={"Content-Type": "application/json"})
    assert status == 201, out
