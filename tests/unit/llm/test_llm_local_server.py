"""TinyLlamaServiceEnhanced as a real process: it starts the operator's server program (the
stand-in, called the way llama-server is), waits until it answers, serves local_llm through
it, starts it again after it died, stops it with the agent; an endpoint instead of a
program; nothing configured or a missing program/model → 503 naming the setting."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from ..sdk.harness import free_port
from .conftest import HERE, task

STAND_IN = str(HERE / "llm_stand_in.py")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of a dead agent counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


@pytest.fixture
def managed(fleet, tmp_path):
    model = tmp_path / "tinyllama-1.1b-chat.Q4_K_M.gguf"
    model.write_bytes(b"GGUF stand-in")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"match": "hello", "answers": ["Hi! I am local."]}]))
    a = fleet.start("TinyLlamaServiceEnhanced", TINYLLAMA_SERVER_BIN=STAND_IN,
                    TINYLLAMA_MODEL_PATH=str(model), TINYLLAMA_PORT=free_port(),
                    TINYLLAMA_SERVER_ARGS=f"--script {script} --ctx-size 2048",
                    TINYLLAMA_RESTART_S=0, TINYLLAMA_HEALTH_S=0.2)
    yield a
    try:
        pid = (a.request("GET", "/health", health=True)[1].get("server") or {}).get("pid")
    except OSError:   # the test stopped the agent
        pid = None
    a.stop()
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)


def test_the_server_is_started_and_answers_local_llm_tasks(managed):
    status, out = task(managed, {"type": "local_llm", "prompt": "hello there"})
    assert status == 200, out
    r = out["result"]
    assert (r["text"], r["model"]) == ("Hi! I am local.", "tinyllama-1.1b-chat.Q4_K_M.gguf")
    assert r["server"]["mode"] == "managed" and r["usage"]["completion_tokens"] == 4
    h = managed.request("GET", "/health", health=True)[1]
    assert h["status"] == "healthy" and h["server"]["state"] == "ready", h
    argv = h["server"]["argv"]
    assert argv[:3] == [STAND_IN, "-m", h["model_path"]] and argv[-2:] == ["--ctx-size", "2048"]


def test_a_dead_server_is_started_again_by_the_next_task(managed):
    assert task(managed, {"type": "local_llm", "prompt": "hello"})[0] == 200
    pid = managed.request("GET", "/health", health=True)[1]["server"]["pid"]
    os.kill(pid, signal.SIGKILL)
    h = wait_for(lambda: (lambda h: h if h["server"]["state"] == "exited" else None)(
        managed.request("GET", "/health", health=True)[1]))
    assert h["server"]["exit_code"] == -9 and h["status"] == "degraded"
    status, out = task(managed, {"type": "local_llm", "prompt": "hello again"})
    assert status == 200 and out["result"]["text"] == "Hi! I am local.", out
    h = managed.request("GET", "/health", health=True)[1]
    assert h["server"]["starts"] == 2 and h["server"]["pid"] != pid


def test_the_server_stops_with_the_agent(managed):
    pid = wait_for(lambda: managed.request("GET", "/health", health=True)[1]["server"]["pid"])
    managed.proc.send_signal(signal.SIGTERM)
    assert managed.wait_exit(15) == 0
    assert wait_for(lambda: not alive(pid), 10), "the server outlived the agent"


def test_a_configured_endpoint_is_used_without_starting_anything(fleet):
    fleet.script([{"match": "ping", "answers": ["pong"]}])
    a = fleet.start("TinyLlamaServiceEnhanced", TINYLLAMA_ENDPOINT=fleet.llm.url)
    r = task(a, {"type": "local_llm", "messages": [{"role": "user", "content": "ping"}],
                 "temperature": 0})[1]["result"]
    assert r["text"] == "pong" and r["server"] == {"mode": "endpoint", "endpoint": fleet.llm.url}
    h = a.request("GET", "/health", health=True)[1]
    assert h["mode"] == "endpoint" and "server" not in h


@pytest.mark.parametrize("env,setting,words", [
    ({}, "TINYLLAMA_SERVER_BIN", "no local LLM server is configured"),
    ({"TINYLLAMA_SERVER_BIN": "/nonexistent/llama-server", "TINYLLAMA_MODEL_PATH": "/x.gguf"},
     "TINYLLAMA_SERVER_BIN", "TINYLLAMA_SERVER_BIN=/nonexistent/llama-server: not an executable"),
    ({"TINYLLAMA_SERVER_BIN": STAND_IN}, "TINYLLAMA_MODEL_PATH",
     "TINYLLAMA_MODEL_PATH is not set"),
    ({"TINYLLAMA_SERVER_BIN": STAND_IN, "TINYLLAMA_MODEL_PATH": "/nonexistent.gguf"},
     "TINYLLAMA_MODEL_PATH", "TINYLLAMA_MODEL_PATH=/nonexistent.gguf: no readable file"),
], ids=["unconfigured", "no_binary", "no_model_setting", "no_model_file"])
def test_nothing_usable_configured_is_503_naming_the_setting(fleet, env, setting, words):
    a = fleet.start("TinyLlamaServiceEnhanced", **env)
    status, out = task(a, {"type": "local_llm", "prompt": "hello"})
    assert status == 503 and out["setting"] == setting and words in out["error"], out
    h = a.request("GET", "/health", health=True)[1]
    assert h["status"] == "degraded" and h["checks"]["server"]["setting"] == setting
    a.stop()


def test_a_task_without_a_prompt_is_a_400(fleet):
    a = fleet.start("TinyLlamaServiceEnhanced", TINYLLAMA_ENDPOINT=fleet.llm.url)
    status, out = task(a, {"type": "local_llm", "prompt": " "})
    assert status == 400 and '"prompt"' in out["error"]
