"""Running generated Python and its tests in a child process with limits (CodeGenerator).

    box = Sandbox(timeout_s=10, memory_mb=512)
    box.isolation            # what this sandbox does and does not do (for /health)
    r = box.run(solution_src, tests_src)   # {"passed", "tests", "error", "seconds", ...}

What it does: a fresh temporary directory as the working directory (deleted after), a clean
environment (PATH, LANG, HOME=TMPDIR=that directory), `python3 -I -S` (no user site, no
PYTHON* variables), its own session (the whole process group is killed at the wall-clock
timeout), and rlimits set by the child itself (sandbox_runner.py): CPU seconds, address
space, file size, open files, no core dumps. Network, the first of these that works here:
`unshare --net --map-root-user` (an empty network namespace: a developer's machine; under
the agent's systemd unit RestrictNamespaces=yes forbids it), else a seccomp filter the child
loads (python3-seccomp): socket() refused for every address family but AF_UNIX, and
io_uring, so the code cannot reach the network nor the other agents on loopback. Only when
neither works does the code have the agent's network, and /health says so. It runs as the
agent's user: it can read what that user can read (ProtectSystem=strict, ProtectHome and
PrivateTmp of the unit still apply: it can write only its temporary directory and the
agent's state directory).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_runner.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def probe_unshare() -> tuple[list[str], str]:
    """→ (command prefix, what it gives): an empty network namespace if unshare works here."""
    exe = shutil.which("unshare")
    if exe is None:
        return [], "none: unshare (util-linux) is not installed"
    cmd = [exe, "--net", "--map-root-user"]
    try:
        r = subprocess.run(cmd + ["true"], capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"none: unshare failed ({e})"
    if r.returncode != 0:
        why = r.stderr.decode(errors="replace").strip().splitlines()
        return [], f"none: unshare --net is refused here ({why[-1] if why else r.returncode})"
    return cmd, "empty network namespace (unshare --net --map-root-user)"


SECCOMP_FILTER = ("no IP sockets: a seccomp filter (python3-seccomp) refuses socket() for every "
                  "address family but AF_UNIX, and io_uring")


def find_seccomp() -> tuple[str, str]:
    """→ (the directory of python3-seccomp's module, or "", why not). The child runs with
    -I -S, without dist-packages on its path, so it is told where the module is."""
    try:
        spec = importlib.util.find_spec("seccomp")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return "", "python3-seccomp is not installed"
    return os.path.dirname(spec.origin), ""


class Sandbox:
    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 512, file_mb: int = 16,
                 open_files: int = 64, use_netns: bool = True):
        self.timeout_s = timeout_s
        self.limits = {"cpu_s": max(1, int(timeout_s + 0.999)),
                       "memory_bytes": memory_mb << 20, "file_bytes": file_mb << 20,
                       "open_files": open_files, "core_bytes": 0}
        self.prefix, network = probe_unshare() if use_netns else ([], "none: disabled")
        self.seccomp_dir = ""
        if not self.prefix:
            self.seccomp_dir, why = find_seccomp()
            network = SECCOMP_FILTER if self.seccomp_dir else f"{network}; {why}"
        self.isolation = {"network": network, "limits": dict(self.limits),
                          "wall_timeout_s": timeout_s, "workdir": "fresh temporary directory",
                          "user": "the agent's own user (no separate uid)"}
        # Whether the kernel lets the child set its limits here (a unit's system call
        # filter may not): one empty run at start, so /health tells before any task does.
        probe = self.run("", "def test_probe():\n    pass\n")
        if self.seccomp_dir and probe.get("network_filter") != "installed":
            # the kernel or the unit refused the filter: say so, and run code without it
            self.isolation["network"] = ("none: the seccomp network filter could not be installed "
                                         f"({probe.get('network_filter') or probe['error']})")
            self.seccomp_dir = ""
            probe = self.run("", "def test_probe():\n    pass\n")
        self.isolation["limits_refused"] = probe.get("limits_refused", [probe["error"]])

    def run(self, solution: str, tests: str) -> dict:
        t0 = time.perf_counter()
        d = tempfile.mkdtemp(prefix="codegen-")
        try:
            for name, src in (("solution.py", solution), ("tests.py", tests)):
                with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                    f.write(src)
            results = os.path.join(d, ".results.json")
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": d, "TMPDIR": d}
            cmd = self.prefix + [PYTHON, "-I", "-S", RUNNER, json.dumps(self.limits), results]
            if self.seccomp_dir:
                cmd.append(self.seccomp_dir)
            p = subprocess.Popen(cmd, cwd=d, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            timed_out = False
            try:
                output, _ = p.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(p.pid, signal.SIGKILL)
                output, _ = p.communicate()
            out = self._read(results)
            seconds = round(time.perf_counter() - t0, 4)
            tail = output[-1000:].decode("utf-8", "replace")
            return self._verdict(out, p.returncode, timed_out, tail, seconds)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    @staticmethod
    def _read(path: str) -> dict | None:
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _verdict(self, out, rc, timed_out, tail, seconds) -> dict:
        r = {"passed": False, "tests": [], "error": None, "exit_code": rc, "seconds": seconds,
             "output": tail}
        if out is not None:
            r["tests"] = out["tests"]
            r["limits_refused"] = out.get("limits_refused", [])
            if "network_filter" in out:
                r["network_filter"] = out["network_filter"]
        if timed_out:
            r["error"] = f"timed out after {self.timeout_s} s (CODEGEN_TIMEOUT_S)"
        elif out is None and rc == -signal.SIGXCPU:
            # the CPU limit equals the timeout: a busy loop on an idle machine reaches it a
            # few ms before the parent's wall clock does (the child started first)
            r["error"] = (f"timed out after {self.limits['cpu_s']} s of CPU time "
                          "(CODEGEN_TIMEOUT_S)")
        elif out is None:
            sig = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            r["error"] = (f"the code ended the test run before any result ({sig}; limits: "
                          f"memory {self.limits['memory_bytes'] >> 20} MB, CPU "
                          f"{self.limits['cpu_s']} s)")
        elif out.get("load_error"):
            r["error"] = f"loading the code failed: {out['load_error']}"
        elif not out["tests"]:
            r["error"] = "no test_* function: the answer must carry its own tests"
        else:
            failed = [t for t in out["tests"] if not t["passed"]]
            r["passed"] = not failed
            if failed:
                r["error"] = "; ".join(f"{t['name']}: {t['error']}" for t in failed)[:1500]
        return r
