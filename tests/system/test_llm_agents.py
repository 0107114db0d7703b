"""The generative agents under systemd, from the installed package (docs/LLM_AGENTS.md).

A deterministic OpenAI-compatible stand-in (tests/unit/llm/llm_stand_in.py, copied in and run
with systemd-run) plays the operator's llama.cpp server; a catalog drop-in points
ModelManagerSuite's phi3_mini at it and adds a profile (core plus the five agents). Shown:
chain of thought answered through RequestCoordinator with its final answer extracted, a
tree-of-thought search inside its budgets, CodeGenerator running the generated tests in its
sandbox (one passing case, one failing-then-fixed case) under the unit's own sandboxing,
TinyLlamaServiceEnhanced unconfigured (503 naming the setting) then managing the stand-in as
its child server, and no backend → 503 naming the catalog key.

Every test leaves the core profile selected, no stand-in running, no drop-in."""
import json
from pathlib import Path

import pytest

STAND_IN = Path(__file__).resolve().parents[1] / "unit" / "llm" / "llm_stand_in.py"
DIR = "/usr/local/lib/systest-llm"        # readable by the agents' user (ProtectHome hides /root)
DROPIN = "/etc/unified/conf.d/90-systest-llm.yaml"
PORT, TINY_PORT = 18090, 18091
AGENTS = ["ChainOfThoughtAgent", "GoTToTAgent", "CognitiveModelAgent", "CodeGenerator",
          "TinyLlamaServiceEnhanced"]
UNITS = [f"unified-agent@{a}.{k}" for a in AGENTS for k in ("socket", "service")]
DROPIN_YAML = f"""\
models:
  declared:
    phi3_mini: {{endpoint: 'http://127.0.0.1:{PORT}/v1'}}
profiles:
  systest_llm:
    description: "system test: core plus the generative agents"
    extends: core
    agents: [{", ".join(AGENTS)}]
"""
SLUG_BUGGY = ("```python\ndef slugify(s):\n    return s.lower().replace(' ', '_')\n```\n"
              "```python\ndef test_slug():\n    assert slugify('Hello World') == 'hello-world'\n```")
SLUG_FIXED = ("```python\ndef slugify(s):\n    return '-'.join(s.lower().split())\n```\n"
              "```python\ndef test_slug():\n    assert slugify('Hello World') == 'hello-world'\n"
              "\ndef test_spaces():\n    assert slugify('  a  b ') == 'a-b'\n```")
SCRIPT = [
    {"match": "three dozen eggs", "answers": [
        "Step 1: Three dozen is 36 eggs.\nStep 2: 36 - 5 = 31.\nFinal answer: 31"]},
    {"match": "(none yet)", "answers": ["1. 6 - 1 = 5, left 4 and 4\n2. 4 + 4 = 8, left 6, 1"]},
    {"match": "1. 6 - 1 = 5, left 4 and 4\nPropose", "answers": [
        "1. (6 - 1) * 4 + 4 = 24. Final answer: (6 - 1) * 4 + 4"]},
    {"match": "Final answer: (6 - 1) * 4 + 4\nScore", "answers": ["Score: 10"]},
    {"match": "6 - 1 = 5, left 4 and 4\nScore", "answers": ["Score: 7"]},
    {"match": "4 + 4 = 8, left 6, 1\nScore", "answers": ["Score: 2"]},
    {"match": "Running your tests failed", "answers": [SLUG_FIXED]},
    {"match": "slugify", "answers": [SLUG_BUGGY]},
    {"match": "add two numbers", "answers": [
        "```python\ndef add(a, b):\n    return a + b\n```\n```python\ndef test_add():\n"
        "    assert add(2, 3) == 5\n```"]},
    {"match": "hello local", "answers": ["Hi from the local server."]},
    {"match": "Sub-questions and their answers", "answers": [
        "Big Ben was finished in 1859, the tower in 1889.\nFinal answer: Big Ben"]},
    {"match": "Which is older", "answers": [
        "1. When was the Eiffel Tower finished?\n2. When was Big Ben finished?"]},
    {"match": "Eiffel Tower finished", "answers": ["Step 1: in 1889.\nFinal answer: 1889"]},
    {"match": "Big Ben finished", "answers": ["Step 1: in 1859.\nFinal answer: 1859"]},
]


def post(c, port: int, body: dict, timeout: int = 60):
    c.write_file("/root/llm-task.json", json.dumps(body))
    r = c.run(["curl", "-sS", "-m", str(timeout), "-w", "\n%{http_code}", "-H",
               "Content-Type: application/json", "-d", "@/root/llm-task.json",
               f"http://127.0.0.1:{port}/task"], timeout=timeout + 30)
    out, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(out)


def health(c, port: int) -> dict:
    return json.loads(c.run(["curl", "-sS", "-m", "10", f"http://127.0.0.1:{port}/health"]).stdout)


def switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def start_stand_in(c):
    c.run(["systemd-run", "--unit=systest-llm-stand-in", "--property=Type=exec",
           "/usr/bin/python3", f"{DIR}/llm_stand_in.py", "--port", str(PORT), "-m",
           "stand-in-7b", "--script", f"{DIR}/script.json"])
    c.wait_until(["curl", "-sf", "-m", "2", f"http://127.0.0.1:{PORT}/v1/models"], timeout=20)


def stop_stand_in(c):
    c.systemctl("stop", "systest-llm-stand-in.service", check=False)
    c.systemctl("reset-failed", "systest-llm-stand-in.service", check=False)


@pytest.fixture(scope="module")
def llm(_session_container):
    """Set up once for the module (a profile switch is the slow part); `container`'s own
    fixture is per test, so this takes the session container it wraps."""
    c = _session_container
    assert c.alive, c.console_tail()
    c.run(["mkdir", "-p", DIR])
    c.write_file(f"{DIR}/llm_stand_in.py", STAND_IN.read_text(), mode=0o755)
    c.write_file(f"{DIR}/script.json", json.dumps(SCRIPT))
    c.write_file(f"{DIR}/tinyllama-1.1b.Q4_K_M.gguf", b"GGUF stand-in")
    try:
        start_stand_in(c)
        c.write_file(DROPIN, DROPIN_YAML)
        c.run(["unified-ctl", "apply"])
        switch(c, "systest_llm")
        # ModelManagerSuite reads `models` at its start; the coordinator its routes
        c.systemctl("restart", "unified-agent@ModelManagerSuite.service",
                    "unified-agent@RequestCoordinator.service")
        c.wait_until("curl -sf http://127.0.0.1:8211/health", timeout=30)
        c.wait_until("curl -sf http://127.0.0.1:8201/health", timeout=30)
        yield c
    finally:
        stop_stand_in(c)
        c.run(["rm", "-rf", DROPIN, DIR, "/root/llm-task.json"])
        c.run(["unified-ctl", "apply"])
        switch(c, "core")
        c.systemctl("stop", *UNITS, check=False)
        c.systemctl("reset-failed", *UNITS, check=False)
        c.systemctl("restart", "unified-agent@ModelManagerSuite.service",
                    "unified-agent@RequestCoordinator.service")


def test_chain_of_thought_through_the_coordinator_extracts_the_final_answer(llm):
    status, out = post(llm, 7201, {"type": "chain_of_thought",
                                   "question": "I buy three dozen eggs and give away 5."})
    assert status == 200 and out["agent"] == "ChainOfThoughtAgent", out
    r = out["result"]
    assert (r["answer"], r["answer_source"]) == ("31", "final_answer_line"), r
    assert r["steps"] == ["Three dozen is 36 eggs.", "36 - 5 = 31."]
    assert (r["model"], r["backend"]) == ("phi3_mini", "local") and r["usage"]["calls"] == 1
    h = health(llm, 6612)
    assert h["implementation"] == "builtin" and h["engine"] == "model-manager", h
    assert h["models"]["local"]["endpoint"] == f"http://127.0.0.1:{PORT}/v1"


def test_tree_of_thought_search_stays_within_its_budget(llm):
    status, out = post(llm, 7201, {"type": "tree_of_thought", "k": 2, "beam": 1,
                                   "max_depth": 3, "problem": "make 24 from 4 4 6 1"})
    assert status == 200 and out["agent"] == "GoTToTAgent", out
    r = out["result"]
    assert r["answer"] == "(6 - 1) * 4 + 4" and [s["score"] for s in r["best_path"]] == [7, 10]
    b = r["budget"]
    assert (b["stopped_by"], b["depth"], b["calls"]) == ("solved", 2, 5), b
    status, out = post(llm, 5646, {"type": "tree_of_thought", "problem": "make 24 from 4 4 6 1",
                                   "k": 2, "beam": 1, "max_tokens_total": 60})
    b = out["result"]["budget"]
    assert status == 200 and b["stopped_by"] == "tokens" and b["calls"] < 5, b


def test_code_generator_runs_the_generated_tests_in_its_sandbox(llm):
    status, out = post(llm, 7201, {"type": "code_generation", "task": "add two numbers"})
    assert status == 200 and out["agent"] == "CodeGenerator", out
    r = out["result"]
    assert r["passed"] is True, r
    assert r["test_results"] == [{"name": "test_add", "passed": True, "error": None}]
    # the unit's RestrictNamespaces=yes: no network namespace, so the seccomp filter
    # (python3-seccomp, a Depends) keeps the code off the network, and the answer says so
    assert r["sandbox"]["network"].startswith("no IP sockets: a seccomp filter"), r["sandbox"]
    status, out = post(llm, 5650, {"type": "code_generation", "task": "slugify(s) with dashes"})
    r = out["result"]
    assert status == 200 and r["passed"] is True, out
    assert [a["passed"] for a in r["attempts"]] == [False, True], r["attempts"]
    assert "test_slug: AssertionError" in r["attempts"][0]["error"]
    assert [t["name"] for t in r["test_results"]] == ["test_slug", "test_spaces"]
    h = health(llm, 6650)
    assert h["status"] == "healthy" and h["sandbox"]["limits"]["cpu_s"] == 10, h
    # the unit's SystemCallFilter still lets the child set its rlimits (prlimit64)
    assert h["sandbox"]["limits_refused"] == [], h["sandbox"]


def test_the_sandbox_limits_hold_under_the_units_sandboxing(llm):
    """Inside the real unit (SystemCallFilter=~@resources) the child's rlimits are set: an
    endless loop ends at the timeout, and the code reads back its CPU limit; and its seccomp
    network filter loads: the code cannot connect to RequestCoordinator on loopback."""
    llm.write_file(f"{DIR}/script.json", json.dumps([{"match": "spin", "answers": [
        "```python\ndef spin():\n    while True:\n        pass\n```\n"
        "```python\ndef test_spin():\n    spin()\n```"]}, {"match": "limits", "answers": [
        "```python\nimport resource\ndef cpu():\n    return resource.getrlimit("
        "resource.RLIMIT_CPU)[0]\n```\n```python\ndef test_cpu_limit():\n"
        "    assert cpu() == 10, cpu()\n```"]}, {"match": "coordinator", "answers": [
        "```python\nimport socket\ndef ask():\n    return socket.create_connection("
        "('127.0.0.1', 7201), 2)\n```\n```python\ndef test_ask():\n    ask()\n```"]}] + SCRIPT))
    stop_stand_in(llm)
    start_stand_in(llm)
    status, out = post(llm, 5650, {"type": "code_generation", "task": "spin forever",
                                   "max_attempts": 1})
    r = out["result"]
    assert status == 200 and r["passed"] is False, out
    err = r["attempts"][0]["error"]
    assert "timed out after 10" in err or "killed by signal 9" in err or "signal 24" in err, err
    # the generated code itself reads back the CPU limit it runs under
    status, out = post(llm, 5650, {"type": "code_generation", "task": "show limits",
                                   "max_attempts": 1})
    assert status == 200 and out["result"]["passed"] is True, out["result"]["attempts"]
    # the code cannot reach the other agents on loopback: the filter refuses the socket
    status, out = post(llm, 5650, {"type": "code_generation", "task": "call the coordinator",
                                   "max_attempts": 1})
    err = out["result"]["attempts"][0]["error"]
    assert status == 200 and out["result"]["passed"] is False and "PermissionError" in err, err


def test_cognitive_model_decomposes_and_answers_through_chain_of_thought(llm):
    status, out = post(llm, 7201, {"type": "cognitive_model",
                                   "question": "Which is older, the Eiffel Tower or Big Ben?"})
    assert status == 200 and out["agent"] == "CognitiveModelAgent", out
    r = out["result"]
    assert (r["answer"], r["strategy"]) == ("Big Ben", "decomposed"), r
    assert [s["answer"] for s in r["sub_questions"]] == ["1889", "1859"], r
    assert r["usage"]["calls"] == 4, r      # decompose, 2 × ChainOfThoughtAgent, synthesis


def test_tiny_llama_unconfigured_is_503_then_manages_the_operators_server(llm):
    status, out = post(llm, 5615, {"type": "local_llm", "prompt": "hello local"})
    assert status == 503 and out["setting"] == "TINYLLAMA_SERVER_BIN", out
    assert "no local LLM server is configured" in out["error"]
    env = {"TINYLLAMA_SERVER_BIN": f"{DIR}/llm_stand_in.py",
           "TINYLLAMA_MODEL_PATH": f"{DIR}/tinyllama-1.1b.Q4_K_M.gguf",
           "TINYLLAMA_PORT": str(TINY_PORT), "TINYLLAMA_SERVER_ARGS": f"--script {DIR}/script.json"}
    with llm.agent_env(["TinyLlamaServiceEnhanced"], "systest-llm", **env):
        status, out = post(llm, 5615, {"type": "local_llm", "prompt": "hello local"})
        assert status == 200, out
        r = out["result"]
        assert (r["text"], r["model"]) == ("Hi from the local server.",
                                           "tinyllama-1.1b.Q4_K_M.gguf"), r
        h = health(llm, 6615)
        assert h["server"]["state"] == "ready" and h["status"] == "healthy", h
        # the child runs in the agent's cgroup, and goes with it
        pids = llm.run(["systemctl", "show", "-p", "ControlGroup", "--value",
                        "unified-agent@TinyLlamaServiceEnhanced.service"]).stdout.strip()
        procs = llm.read_file(f"/sys/fs/cgroup{pids}/cgroup.procs").split()
        assert str(h["server"]["pid"]) in procs, (h, procs)
        llm.systemctl("stop", "unified-agent@TinyLlamaServiceEnhanced.service")
        llm.wait_until(f"! curl -sf -m 1 http://127.0.0.1:{TINY_PORT}/v1/models", timeout=15)


def test_no_backend_is_503_naming_the_catalog_key(llm):
    stop_stand_in(llm)
    try:
        status, out = post(llm, 5612, {"type": "chain_of_thought",
                                       "question": "a question nobody answered before"})
        assert status == 503, out
        assert out["setting"] == "models.declared.phi3_mini.endpoint", out
        assert f"set the catalog key models.declared.phi3_mini.endpoint (now http://127.0.0.1:" \
               f"{PORT}/v1)" in out["error"], out
        status, out = post(llm, 5650, {"type": "code_generation", "task": "anything new"})
        assert status == 503 and out["setting"] == "models.declared.phi3_mini.endpoint", out
    finally:
        start_stand_in(llm)
