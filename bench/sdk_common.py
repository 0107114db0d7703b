"""Shared helpers for the SDK micro benchmarks (run here, outside systemd).

The agent is started the way systemd's socket activation starts it: the benchmark owns a
listening socket (the socket unit), the child gets it as fd 3 with LISTEN_FDS=1,
LISTEN_FDNAMES=agent and LISTEN_PID = its own pid (set by `sh -c 'LISTEN_PID=$$ exec ...'`,
which adds ~1 ms that systemd does not).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = "/usr/bin/python3"


def sdk_pythonpath() -> str:
    """A directory where `unified_agents` imports from this tree (agents/ as installed)."""
    d = pathlib.Path(tempfile.gettempdir()) / f"unified-sdk-bench-{os.getuid()}"
    d.mkdir(exist_ok=True)
    link = d / "unified_agents"
    if not link.exists():
        link.symlink_to(ROOT / "agents")
    return str(d)


def checkout_path(installed: bool) -> str:
    """The PYTHONPATH of the agents a bench starts, also put first on this process's
    sys.path: the installed package's (installed=True), else this checkout's agents/ as
    `unified_agents` and the repository (unified_core)."""
    if installed:
        return os.environ.get("PYTHONPATH", "")
    path = [sdk_pythonpath(), str(ROOT)]
    sys.path[:0] = path
    return os.pathsep.join(path)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_builtin(name: str, module: str, pythonpath: str, env: dict | None = None):
    """A built-in agent process started as its unit runs it (its own ports, no socket passing),
    once /health answers: (process, agent port, health port, seconds from exec to /health)."""
    import urllib.request
    import time

    port, hport = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=pythonpath, UNIFIED_AGENT=name, UNIFIED_RUN=f"builtin:{module}",
               UNIFIED_PORT=str(port), UNIFIED_HEALTH_PORT=str(hport), **(env or {}))
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "unified_agents", "run", name], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{hport}/health", timeout=1).read()
            return p, port, hport, time.perf_counter() - t0
        except OSError:
            if p.poll() is not None or time.perf_counter() - t0 > 60:
                p.kill()
                raise SystemExit(f"{name} did not start (exit {p.poll()})")
            time.sleep(0.01)


def listening_socket() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


def agent_env(name: str, lsock: socket.socket | None, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UNIFIED_", "LISTEN_", "NOTIFY_", "WATCHDOG_", "PYTHON"))}
    env["PYTHONPATH"] = sdk_pythonpath()
    env["UNIFIED_AGENT"] = name
    env["UNIFIED_HEALTH_PORT"] = str(free_port())
    if lsock is not None:
        env["UNIFIED_PORT"] = str(lsock.getsockname()[1])
        env["LISTEN_FDS"] = "1"
        env["LISTEN_FDNAMES"] = "agent"
    env.update(extra or {})
    return env


def spawn_activated(argv: list[str], env: dict, lsock: socket.socket, **kw):
    """Start argv with lsock as fd 3 and LISTEN_PID set to the child's own pid."""
    fd = lsock.fileno()

    def preexec():
        if fd != 3:
            os.dup2(fd, 3)
        os.set_inheritable(3, True)

    cmd = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", *argv]
    return subprocess.Popen(cmd, env=env, close_fds=False, preexec_fn=preexec,
                            stdin=subprocess.DEVNULL, **kw)


def pct(xs, p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(xs, unit="ms") -> str:
    return (f"n={len(xs)} p50={pct(xs, 50):.1f}{unit} p95={pct(xs, 95):.1f}{unit} "
            f"min={min(xs):.1f}{unit} max={max(xs):.1f}{unit} mean={statistics.mean(xs):.1f}{unit}")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]} ({PYTHON})"
