"""TinyLlamaServiceEnhanced (5615/6615): the manager of a local OpenAI-compatible server.

    POST /task {"type": "local_llm", "prompt": "..." | "messages": [...],
                "max_tokens"?: 256, "temperature"?: 0.7, "stop"?: [...]}
      → {"text", "model", "usage", "finish_reason", "server": {...}, "timings": {...}}

Two ways to have a server, chosen by the settings (environment, the catalog entry):
- managed: TINYLLAMA_SERVER_BIN (the operator's llama.cpp `llama-server`, or any program with
  its options) and TINYLLAMA_MODEL_PATH (a GGUF file). Started as this agent's child:
  `BIN -m MODEL --host TINYLLAMA_HOST --port TINYLLAMA_PORT [TINYLLAMA_SERVER_ARGS]`
  (127.0.0.1:8081 by default: the catalog's `tinyllama` model endpoint, so ModelManagerSuite
  routes its local_small role to it). Health-checked (GET /v1/models) until ready, watched
  afterwards; when it exits, the next task starts it again (at most every
  TINYLLAMA_RESTART_S). Stopped with the agent (SIGTERM, then SIGKILL after 5 s; the kernel
  kills it too if the agent dies: PR_SET_PDEATHSIG).
- endpoint: TINYLLAMA_ENDPOINT (e.g. Ollama's http://127.0.0.1:11434/v1): checked, not
  started.
Neither configured, the binary or the model file missing → every task is a 503 naming the
setting to fix; /health is "degraded" and says the same. Never an answer made up here.
Other settings: TINYLLAMA_MODEL (the server's model id; default: what /v1/models lists),
TINYLLAMA_START_TIMEOUT_S (120: load time a task waits for), TINYLLAMA_TIMEOUT_S (120: one
generation), TINYLLAMA_HEALTH_S (10: the watch interval).
"""
from __future__ import annotations

import collections
import os
import shlex
import subprocess
import threading
import time

from unified_agents import Agent, HTTPError
from unified_agents.llm_backends import BackendError, OpenAIBackend

from .base import field, integer, number

NOT_CONFIGURED = ("no local LLM server is configured: set TINYLLAMA_SERVER_BIN (llama.cpp's "
                  "llama-server) and TINYLLAMA_MODEL_PATH (a GGUF file), or TINYLLAMA_ENDPOINT "
                  "(a running OpenAI-compatible server), in the catalog entry "
                  "agents.TinyLlamaServiceEnhanced.environment")


def _pdeathsig():
    """A preexec_fn that makes the kernel SIGTERM the child when this process dies.

    The signal follows the THREAD that forked: the server is started from on_start (the
    main thread) or from a task (an SDK pool worker: those never exit), never from a
    short-lived thread."""
    try:
        import ctypes
        import signal

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_it():
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    return set_it


class ServerProcess:
    """The child server: start, wait until it answers, watch, stop."""

    def __init__(self, argv: list[str], backend: OpenAIBackend, log):
        self.argv = argv
        self.backend = backend
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.state = "stopped"          # stopped | starting | ready | exited
        self.started_at = 0.0
        self.ready_s: float | None = None
        self.exit_code: int | None = None
        self.starts = 0
        self.tail: collections.deque = collections.deque(maxlen=20)
        self.lock = threading.Lock()

    def start(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         preexec_fn=_pdeathsig())
            self.state, self.started_at, self.ready_s = "starting", time.monotonic(), None
            self.exit_code = None
            self.starts += 1
            proc = self.proc
        self.log.info("local LLM server started", pid=proc.pid, argv=" ".join(self.argv))
        threading.Thread(target=self._drain, args=(proc,), name="server-output",
                         daemon=True).start()

    def _drain(self, proc) -> None:
        for line in proc.stdout:
            self.tail.append(line.decode("utf-8", "replace").rstrip())
        code = proc.wait()
        with self.lock:
            if proc is self.proc:
                self.state, self.exit_code = "exited", code
        self.log.warning("local LLM server exited", pid=proc.pid, exit_code=code,
                         output=" | ".join(list(self.tail)[-3:]))

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.state == "ready":
                return True
            if self.state == "exited":
                return False
            try:
                self.backend.check(timeout=2.0)
                with self.lock:
                    if self.state == "starting":
                        self.state = "ready"
                        self.ready_s = round(time.monotonic() - self.started_at, 3)
                return True
            except BackendError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.2)

    def stop(self) -> None:
        with self.lock:
            proc, self.proc = self.proc, None
            self.state = "stopped"
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def describe(self) -> dict:
        p = self.proc
        return {"state": self.state, "pid": p.pid if p and p.poll() is None else None,
                "argv": self.argv, "starts": self.starts, "ready_after_s": self.ready_s,
                "exit_code": self.exit_code, "output_tail": list(self.tail)[-5:]}


class TinyLlamaServiceEnhanced(Agent):
    version = "1.0.0"
    task_types = ("local_llm",)

    def on_start(self) -> None:
        env = self.config.env
        self.bin = env.string("TINYLLAMA_SERVER_BIN")
        self.model_path = env.string("TINYLLAMA_MODEL_PATH")
        endpoint = env.string("TINYLLAMA_ENDPOINT")
        host = env.string("TINYLLAMA_HOST", "127.0.0.1")
        port = env.integer("TINYLLAMA_PORT", 8081, 1, 65535)
        self.start_timeout = env.number("TINYLLAMA_START_TIMEOUT_S", 120.0, 0.1)
        self.restart_s = env.number("TINYLLAMA_RESTART_S", 5.0, 0.0)
        self.health_s = env.number("TINYLLAMA_HEALTH_S", 10.0, 0.1)
        timeout = env.number("TINYLLAMA_TIMEOUT_S", 120.0, 1.0)
        model = env.string("TINYLLAMA_MODEL")
        self.server: ServerProcess | None = None
        self.problem: tuple[str, str] | None = None      # (setting, message)
        self.served = 0
        self.last_check: dict = {"ok": None, "error": None, "at": None}
        if endpoint:
            self.mode = "endpoint"
            try:
                self.backend = OpenAIBackend(endpoint, model=model, timeout=timeout)
            except BackendError as e:
                self.problem = ("TINYLLAMA_ENDPOINT", f"TINYLLAMA_ENDPOINT: {e}")
        elif self.bin or self.model_path:
            self.mode = "managed"
            self.backend = OpenAIBackend(f"http://{host}:{port}/v1", model=model, timeout=timeout)
            self.problem = self._check_files()
            if self.problem is None:
                argv = [self.bin, "-m", self.model_path, "--host", host, "--port", str(port),
                        *shlex.split(env.string("TINYLLAMA_SERVER_ARGS", ""))]
                self.server = ServerProcess(argv, self.backend, self.log)
                self.server.start()   # loading a model takes seconds: READY=1 does not wait
        else:
            self.mode = "unconfigured"
            self.problem = ("TINYLLAMA_SERVER_BIN", NOT_CONFIGURED)
        if self.problem:
            self.log.warning("local LLM unavailable", setting=self.problem[0],
                             error=self.problem[1])
        self._stop = threading.Event()
        if self.problem is None:
            threading.Thread(target=self._watch, name="server-watch", daemon=True).start()

    def _check_files(self) -> tuple[str, str] | None:
        if not self.bin:
            return ("TINYLLAMA_SERVER_BIN", "TINYLLAMA_SERVER_BIN is not set; allowed: the "
                    "path of llama.cpp's llama-server (or a compatible program)")
        if not (os.path.isfile(self.bin) and os.access(self.bin, os.X_OK)):
            return ("TINYLLAMA_SERVER_BIN", f"TINYLLAMA_SERVER_BIN={self.bin}: not an "
                    "executable file (is llama.cpp's llama-server installed there?)")
        if not self.model_path:
            return ("TINYLLAMA_MODEL_PATH", "TINYLLAMA_MODEL_PATH is not set; allowed: the "
                    "path of a GGUF model file")
        if not os.path.isfile(self.model_path) or not os.access(self.model_path, os.R_OK):
            return ("TINYLLAMA_MODEL_PATH", f"TINYLLAMA_MODEL_PATH={self.model_path}: no "
                    "readable file there")
        return None

    def on_stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop()

    def _watch(self) -> None:
        """Health of the server, every TINYLLAMA_HEALTH_S (never on a request's path)."""
        if self.server is not None:
            self.server.wait_ready(self.start_timeout)
        while not self._stop.is_set():
            self._check()
            self._stop.wait(self.health_s)

    def _check(self) -> None:
        try:
            self.backend.check(timeout=2.0)
            ok, err = True, None
        except BackendError as e:
            ok, err = False, str(e)
        self.last_check = {"ok": ok, "error": err, "at": time.time()}

    def _ready(self) -> None:
        """Make sure a server answers now, or raise the 503 that says why."""
        if self.problem:
            raise HTTPError(503, self.problem[1], setting=self.problem[0])
        s = self.server
        if s is None:
            return   # endpoint mode: the call itself tells whether it answers
        if s.state == "exited":
            waited = time.monotonic() - s.started_at
            if waited < self.restart_s:
                raise HTTPError(503, f"the local LLM server exited (code {s.exit_code}: "
                                     f"{' | '.join(list(s.tail)[-2:])}); restarting in "
                                     f"{self.restart_s - waited:.0f} s",
                                headers={"Retry-After": str(int(self.restart_s - waited) + 1)})
            s.start()
        if not s.wait_ready(self.start_timeout):
            raise HTTPError(503, f"the local LLM server ({s.argv[0]}) is not ready: "
                                 f"state {s.state}, exit code {s.exit_code}, output: "
                                 f"{' | '.join(list(s.tail)[-3:]) or '(none)'}",
                            headers={"Retry-After": "5"})

    def handle_task(self, task: dict):
        req: dict = {}
        messages, prompt = field(task, "messages"), field(task, "prompt")
        if isinstance(messages, list) and messages:
            req["messages"] = messages
        elif isinstance(prompt, str) and prompt.strip():
            req["prompt"] = prompt
        else:
            raise HTTPError(400, 'local_llm needs "prompt": "..." or "messages": [...]')
        req["max_tokens"] = integer(task, "max_tokens", 256, 1, 32768)
        req["temperature"] = number(task, "temperature", 0.7, 0.0, 2.0)
        if field(task, "stop") is not None:
            req["stop"] = field(task, "stop")
        t0 = time.perf_counter()
        self._ready()
        t1 = time.perf_counter()
        try:
            out = self.backend.generate(req)
        except BackendError as e:
            status = 503 if e.kind == "unreachable" else 502
            raise HTTPError(status, f"the local LLM server failed: {e}") from None
        self.served += 1
        out["server"] = {"mode": self.mode, "endpoint": self.backend.endpoint}
        out["timings"] = {"wait_ready_s": round(t1 - t0, 4),
                          "generate_s": round(time.perf_counter() - t1, 4)}
        return out

    def health_checks(self) -> dict:
        if self.problem:
            return {"server": {"status": "degraded", "setting": self.problem[0],
                               "error": self.problem[1]}}
        if self.server is not None and self.server.state != "ready":
            return {"server": {"status": "degraded", "state": self.server.state,
                               "exit_code": self.server.exit_code}}
        ok = self.last_check["ok"]
        return {"server": {"status": "ok" if ok is not False else "degraded",
                           "error": self.last_check["error"]}}

    def health_info(self) -> dict:
        info = {"engine": "openai-compatible server", "mode": self.mode, "served": self.served,
                "endpoint": getattr(getattr(self, "backend", None), "endpoint", None),
                "model_path": self.model_path}
        if self.server is not None:
            info["server"] = self.server.describe()
        return info
