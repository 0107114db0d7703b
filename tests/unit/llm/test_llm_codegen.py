"""CodeGenerator as a real process: the generated tests run in the sandbox before any answer;
a failing test is fed back and fixed; code that never passes is returned as not passing;
timeouts, memory and the network are limited."""
from __future__ import annotations

import pytest

from .conftest import task

GOOD = ("Here it is.\n```python\ndef add(a, b):\n    return a + b\n```\nTests:\n"
        "```python\ndef test_add():\n    assert add(2, 3) == 5\n\n"
        "def test_negative():\n    assert add(-1, 1) == 0\n```\n")
BUGGY = ("```python\ndef slugify(s):\n    return s.lower().replace(' ', '_')\n```\n"
         "```python\ndef test_slug():\n    assert slugify('Hello World') == 'hello-world'\n```")
FIXED = ("```python\ndef slugify(s):\n    return '-'.join(s.lower().split())\n```\n"
         "```python\ndef test_slug():\n    assert slugify('Hello World') == 'hello-world'\n\n"
         "def test_spaces():\n    assert slugify('  a   b ') == 'a-b'\n```")


def code(body: str, tests: str) -> str:
    return f"```python\n{body}\n```\n```python\n{tests}\n```"


@pytest.fixture(scope="module")
def gen(fleet):
    return fleet.start("CodeGenerator", CODEGEN_TIMEOUT_S=2, CODEGEN_MEMORY_MB=256)


def test_passing_code_is_answered_with_its_test_results(fleet, gen):
    fleet.script([{"match": "add two numbers", "answers": [GOOD]}])
    status, out = task(gen, {"type": "code_generation", "task": "add two numbers"})
    assert status == 200, out
    r = out["result"]
    assert r["passed"] is True and r["code"] == "def add(a, b):\n    return a + b\n"
    assert r["test_results"] == [{"name": "test_add", "passed": True, "error": None},
                                 {"name": "test_negative", "passed": True, "error": None}]
    assert [(a["attempt"], a["passed"], a["tests_passed"]) for a in r["attempts"]] == [(1, True, 2)]
    assert r["usage"]["calls"] == 1 and r["backend"] == "local"


def test_a_failing_test_is_fed_back_and_the_fix_passes(fleet, gen):
    fleet.script([{"match": "Running your tests failed", "answers": [FIXED]},
                  {"match": "slugify", "answers": [BUGGY]}])
    r = task(gen, {"type": "code_generation", "task": "slugify(s): words joined by '-'"}
             )[1]["result"]
    assert r["passed"] is True and [a["passed"] for a in r["attempts"]] == [False, True]
    assert "test_slug: AssertionError" in r["attempts"][0]["error"]
    assert "slugify('Hello World') == 'hello-world'" in r["attempts"][0]["error"]
    feedback = fleet.llm.requests[-1]["messages"]
    assert [m["role"] for m in feedback] == ["system", "user", "assistant", "user"]
    assert feedback[2]["content"] == BUGGY and "test_slug: AssertionError" in feedback[3]["content"]
    assert len(r["test_results"]) == 2 and r["code"].startswith("def slugify")


def test_code_that_never_passes_is_not_presented_as_working(fleet, gen):
    fleet.script([{"match": "slugify", "answers": [BUGGY]}])
    r = task(gen, {"type": "code_generation", "task": "slugify", "max_attempts": 2})[1]["result"]
    assert r["passed"] is False and len(r["attempts"]) == 2
    assert r["reason"].startswith("no attempt passed its tests (2 of at most 2)")
    assert r["test_results"][0]["passed"] is False


@pytest.mark.parametrize("reply,error", [
    ("I cannot write code today.", "no ```python code block"),
    ("```python\ndef f():\n    return 1\n```", "no tests"),
    (code("def f(:\n    pass", "def test_f():\n    pass"), "SyntaxError"),
    (code("def f():\n    return 1", "def check():\n    assert f() == 1"), "no test_* function"),
    (code("def f():\n    while True:\n        pass", "def test_f():\n    f()"), "timed out after 2"),
    (code("def f():\n    return bytearray(1 << 30)", "def test_f():\n    f()"), "MemoryError"),
    (code("import socket\ndef f():\n    return socket.create_connection(('127.0.0.1', 9), 1)",
          "def test_f():\n    f()"), "Network is unreachable"),
    (code("import os\nos._exit(0)", "def test_f():\n    pass"), "before any result (exit code 0"),
], ids=["no_code", "no_tests", "syntax", "no_test_functions", "timeout", "memory", "network",
        "exit"])
def test_each_kind_of_failure_is_named(fleet, gen, reply, error):
    fleet.script([{"match": "Task:", "answers": [reply]}])
    r = task(gen, {"type": "code_generation", "task": "f", "max_attempts": 1})[1]["result"]
    assert r["passed"] is False and error in r["attempts"][0]["error"], r["attempts"]
    if error == "Network is unreachable":
        assert r["sandbox"]["network"].startswith("empty network namespace")


def test_health_says_what_the_sandbox_isolates(gen):
    h = gen.request("GET", "/health", health=True)[1]
    assert h["status"] == "healthy" and h["sandbox"]["limits"]["memory_bytes"] == 256 << 20
    assert h["sandbox"]["wall_timeout_s"] == 2.0 and h["sandbox"]["network"]


@pytest.fixture(scope="module")
def gen_filtered(fleet):
    """Without the network namespace (as under the agent's unit, whose RestrictNamespaces=yes
    refuses it): the seccomp filter is what keeps the code off the network."""
    return fleet.start("CodeGenerator", CODEGEN_TIMEOUT_S=2, CODEGEN_MEMORY_MB=256,
                       CODEGEN_NETNS="false")


@pytest.mark.parametrize("body", [
    "import socket\ndef f():\n    return socket.create_connection(('127.0.0.1', 9), 1)",
    "import socket\ndef f():\n    return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
    "import socket\ndef f():\n    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)",
], ids=["tcp_to_loopback", "udp6", "netlink"])
def test_without_a_namespace_the_seccomp_filter_refuses_every_ip_socket(fleet, gen_filtered, body):
    fleet.script([{"match": "Task:", "answers": [code(body, "def test_f():\n    f()")]}])
    r = task(gen_filtered, {"type": "code_generation", "task": "f", "max_attempts": 1})[1]["result"]
    assert r["passed"] is False and "PermissionError" in r["attempts"][0]["error"], r["attempts"]
    assert r["sandbox"]["network"].startswith("no IP sockets: a seccomp filter"), r["sandbox"]


def test_the_seccomp_filter_leaves_local_pipes_and_unix_sockets_alone(fleet, gen_filtered):
    fleet.script([{"match": "Task:", "answers": [code(
        "import socket\ndef f():\n    a, b = socket.socketpair()\n    a.send(b'x')\n"
        "    return b.recv(1)", "def test_f():\n    assert f() == b'x'")]}])
    r = task(gen_filtered, {"type": "code_generation", "task": "f", "max_attempts": 1})[1]["result"]
    assert r["passed"] is True, r["attempts"]


def test_code_stopped_by_its_cpu_limit_is_named_a_timeout_too():
    """The CPU limit equals the timeout, and on an idle machine a busy loop can reach it
    before the wall clock does (SIGXCPU): the answer says "timed out" either way."""
    from unified_agents.builtin.llm.sandbox import Sandbox

    box = Sandbox(timeout_s=5, memory_mb=256, use_netns=False)
    box.limits["cpu_s"] = 1  # the CPU limit first, for certain
    r = box.run("def f():\n    while True:\n        pass", "def test_f():\n    f()")
    assert r["exit_code"] < 0 and r["error"] == "timed out after 1 s of CPU time (CODEGEN_TIMEOUT_S)", r
