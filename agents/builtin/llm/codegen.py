"""CodeGenerator (5650/6650): Python code that passed its own tests, or a clear failure.

    POST /task {"type": "code_generation", "task": "a function slugify(s) ...",
                "max_attempts"?: 3, "max_tokens"?: 1024}
      → {"passed": true|false, "code": solution, "tests": test source,
         "test_results": [{"name", "passed", "error"}], "attempts": [{"attempt", "passed",
         "error", "tests_passed", "tests_total", "seconds"}], "sandbox": {isolation facts},
         "reason"?: why nothing passed, "model", "backend", "usage", "timings"}

Each attempt: one generation through ModelManagerSuite (task_type code_generation: the
catalog's routing rule), asking for two fenced ```python blocks, the solution and pytest-style
tests (test_* functions, plain asserts, calling the solution directly). The blocks are
extracted (answers.code_blocks), compiled here (a SyntaxError names the line), then run in
the sandbox (sandbox.py: child process, timeout, rlimits, no network: an empty network
namespace where the system allows one, else a seccomp filter refusing IP sockets). A failure
(no code, no tests, syntax error, failing test, timeout) is fed back in the conversation and
the model tries again, up to max_attempts. The answer after the
last failed attempt is "passed": false with its code, results and "reason": code that did
not pass is never presented as working. No backend → 503 naming the catalog key.

Settings: CODEGEN_MAX_ATTEMPTS (3), CODEGEN_TIMEOUT_S (10: wall clock and CPU per run),
CODEGEN_MEMORY_MB (512), CODEGEN_NETNS (true: use an empty network namespace when possible;
the seccomp filter otherwise).
"""
from __future__ import annotations

from unified_agents import HTTPError

from .answers import code_blocks
from .base import LLMAgent, integer

SYSTEM = ("You write Python 3 code. Reply with exactly two fenced code blocks: first "
          "```python with the solution (definitions only: no input(), no network, no files), "
          "then ```python with its tests: functions named test_... using plain assert "
          "statements that call the solution directly (the tests run in the same module as "
          "the solution: do not import it).")


def split(reply: str) -> tuple[str, str] | str:
    """→ (solution, tests), or why the reply has none."""
    blocks = code_blocks(reply)
    if not blocks:
        return "the reply has no ```python code block"
    if len(blocks) == 1:   # one block with everything: run it whole, the tests included
        return (blocks[0], "") if "def test_" in blocks[0] else \
            "the reply has code but no tests (a second ```python block with test_ functions)"
    return blocks[0], "\n\n".join(blocks[1:])


class CodeGenerator(LLMAgent):
    task_types = ("code_generation",)
    strategy = "generate code + its tests, run them in a sandbox, retry with the errors"

    def on_start(self) -> None:
        super().on_start()
        from .sandbox import Sandbox

        env = self.config.env
        self.max_attempts = env.integer("CODEGEN_MAX_ATTEMPTS", 3, 1, 10)
        self.code_tokens = env.integer("CODEGEN_MAX_TOKENS", 1024, 16, 32768)
        self.sandbox = Sandbox(env.number("CODEGEN_TIMEOUT_S", 10.0, 0.5, 600.0),
                               env.integer("CODEGEN_MEMORY_MB", 512, 32, 65536),
                               use_netns=env.boolean("CODEGEN_NETNS", True))
        self.log.info("sandbox ready", network=self.sandbox.isolation["network"])

    def handle_task(self, task: dict):
        spec = self.text(task, "task", "prompt", "text")
        attempts_max = integer(task, "max_attempts", self.max_attempts, 1, 10)
        max_tokens = integer(task, "max_tokens", self.code_tokens, 16, 32768)
        ledger = self.ledger()
        conversation = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"Task: {spec}"}]
        attempts: list[dict] = []
        last: dict = {}
        for n in range(1, attempts_max + 1):
            reply = self.gateway.generate(ledger, conversation, task_type="code_generation",
                                          max_tokens=max_tokens)
            last = self._attempt(reply)
            attempts.append({"attempt": n, "passed": last["passed"], "error": last["error"],
                             "tests_passed": sum(t["passed"] for t in last["tests"]),
                             "tests_total": len(last["tests"]), "seconds": last["seconds"]})
            if last.get("limits_refused"):
                attempts[-1]["limits_refused"] = last["limits_refused"]
            if last["passed"]:
                break
            conversation += [{"role": "assistant", "content": reply},
                             {"role": "user", "content": "Running your tests failed:\n"
                              f"{last['error']}\nFix the solution (or a wrong test) and reply "
                              "again with the two ```python blocks."}]
        self.served += 1
        out = {"passed": last["passed"], "code": last["code"], "tests": last["test_src"],
               "test_results": last["tests"], "attempts": attempts,
               "sandbox": self.sandbox.isolation}
        if not last["passed"]:
            out["reason"] = (f"no attempt passed its tests ({len(attempts)} of at most "
                             f"{attempts_max}); the last: {last['error']}")
        out.update(ledger.summary())
        return out

    def _attempt(self, reply: str) -> dict:
        parts = split(reply)
        if isinstance(parts, str):
            return {"passed": False, "error": parts, "tests": [], "seconds": 0.0,
                    "code": None, "test_src": None}
        solution, tests = parts
        for name, src in (("solution.py", solution), ("tests.py", tests)):
            try:
                compile(src, name, "exec")
            except SyntaxError as e:
                return {"passed": False, "tests": [], "seconds": 0.0, "code": solution,
                        "test_src": tests,
                        "error": f"SyntaxError: {e.msg} ({name}:{e.lineno}: "
                                 f"{(e.text or '').strip()})"}
        try:
            r = self.sandbox.run(solution, tests)
        except OSError as e:
            raise HTTPError(500, f"cannot run the sandbox: {e}") from None
        r["code"], r["test_src"] = solution, tests
        return r

    def health_info(self) -> dict:
        return dict(super().health_info(), sandbox=self.sandbox.isolation)
