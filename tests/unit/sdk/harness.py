"""Harness for SDK tests: real agent processes on 127.0.0.1 ephemeral ports.

`spawn(...)` starts `python3 -m unified_agents run NAME` the way systemd does: the test
binds the agent's listening socket and keeps it (like the socket unit), the child gets it
as fd 3 with LISTEN_FDS=1, LISTEN_FDNAMES=agent and LISTEN_PID set by the shell to its own
pid before it execs Python (`sh -c 'LISTEN_PID=$$ exec ...'`). NOTIFY_SOCKET points at a
datagram socket the test reads (a stand-in for PID 1's notify socket).
"""
from __future__ import annotations

import collections
import http.client
import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def unit_environment(unit: pathlib.Path = ROOT / "units" / "unified-agent@.service") -> dict:
    """The Environment= of the agent unit template: agents here run with what systemd
    gives them (the malloc setting changes how much memory an agent keeps)."""
    env = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            env.update(w.split("=", 1) for w in shlex.split(line[len("Environment="):]))
    return env


PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@pytest.fixture(scope="session")
def sdk_path(tmp_path_factory):
    """A directory where `unified_agents` is importable (agents/ as installed)."""
    d = tmp_path_factory.mktemp("sdkpath")
    (d / "unified_agents").symlink_to(ROOT / "agents")
    return d


def free_port() -> int:
    """A free port for a process to bind later (fleet_ports: why not the kernel's choice)."""
    return fleet_ports([0])[0]


def listening_socket(backlog: int = 128) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


class Notify:
    """A fake systemd notify socket (abstract namespace unless a path is wanted)."""

    def __init__(self, tmp_path=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if tmp_path is None:
            name = f"unified-sdk-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = str(tmp_path / "notify.sock")
            self.sock.bind(path)
            self.address = path
        self.messages: list[tuple[float, str]] = []

    def read(self, timeout: float) -> list[str]:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return []
        lines = data.decode().split("\n")
        now = time.monotonic()
        self.messages.extend((now, line) for line in lines)
        return lines

    def wait_for(self, line: str, timeout: float = 10.0, prefix: bool = False) -> float:
        """Wait until `line` arrives (or a line starting with it); → arrival time."""
        def hit(seen):
            return seen == line or (prefix and seen.startswith(line))

        for t, seen in self.messages:
            if hit(seen):
                return t
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen in self.read(max(0.01, deadline - time.monotonic())):
                if hit(seen):
                    return self.messages[-1][0]
        raise AssertionError(f"no {line!r} from the agent within {timeout}s; got "
                             f"{[m for _, m in self.messages][-20:]}")

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.read(max(0.005, end - time.monotonic()))

    def close(self) -> None:
        self.sock.close()


class AgentProc:
    def __init__(self, proc, port, health_port, lsock, notify, stderr_path):
        self.proc = proc
        self.port = port
        self.health_port = health_port
        self.lsock = lsock
        self.notify = notify
        self.stderr_path = stderr_path

    def url(self, path: str, health: bool = False) -> str:
        return f"http://127.0.0.1:{self.health_port if health else self.port}{path}"

    def request(self, method: str, path: str, body=None, headers=None, health=False,
                timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1",
                                          self.health_port if health else self.port,
                                          timeout=timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            ctype = r.getheader("Content-Type", "")
            parsed = json.loads(data) if "json" in ctype and data else data
            return r.status, parsed, dict(r.getheaders())
        finally:
            conn.close()

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        return pathlib.Path(self.stderr_path).read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class Spawner:
    """spawn(name='T', env={...}, lsock=None, use_fd=True, notify=True, ...) → AgentProc."""

    def __init__(self, sdk_path, tmp_path):
        self.sdk_path = sdk_path
        self.tmp_path = tmp_path
        self.procs: list[AgentProc] = []
        self.notifies: list[Notify] = []
        self.sockets: list[socket.socket] = []

    def __call__(self, name="TestAgent", env=None, *, lsock=None, use_fd=True, notify=True,
                 health_port=None, args=(), wait_ready=True, journal=False):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("UNIFIED_", "LISTEN_", "NOTIFY_", "WATCHDOG_",
                                  "JOURNAL_STREAM", "LOG_LEVEL", "DEBUG_MODE", "MAX_THREADS"))}
        e.update(unit_environment())
        e["PYTHONPATH"] = f"{self.sdk_path}{os.pathsep}{HERE}"
        e["UNIFIED_AGENT"] = name
        hp = health_port or free_port()
        e["UNIFIED_HEALTH_PORT"] = str(hp)
        n = None
        if notify:
            n = notify if isinstance(notify, Notify) else Notify()
            self.notifies.append(n)
            e["NOTIFY_SOCKET"] = n.address
        preexec = None
        if use_fd:
            if lsock is None:
                lsock = listening_socket()
                self.sockets.append(lsock)
            port = lsock.getsockname()[1]
            e["UNIFIED_PORT"] = str(port)
            e["LISTEN_FDS"] = "1"
            e["LISTEN_FDNAMES"] = "agent"
            fd = lsock.fileno()

            # every fd Python opens is close-on-exec (PEP 446); dup2 makes an inheritable
            # fd 3, so close_fds=False leaks nothing else into the child
            def preexec(fd=fd):
                if fd != 3:
                    os.dup2(fd, 3)
                os.set_inheritable(3, True)

            cmd = ["sh", "-c", f'LISTEN_PID=$$ exec {PYTHON} -m unified_agents run "$0" "$@"',
                   name, *args]
        else:
            port = free_port()
            e["UNIFIED_PORT"] = str(port)
            cmd = [PYTHON, "-m", "unified_agents", "run", name, *args]
        e.update(env or {})
        err = self.tmp_path / f"{name}-{len(self.procs)}.stderr"
        with open(err, "wb") as errf:
            if journal:  # stderr "is the journal": what systemd's JOURNAL_STREAM says
                st = os.fstat(errf.fileno())
                e["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            proc = subprocess.Popen(cmd, env=e, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errf,
                                    close_fds=preexec is None, preexec_fn=preexec)
        ap = AgentProc(proc, port, hp, lsock, n, err)
        self.procs.append(ap)
        if wait_ready:
            if n is not None:
                try:
                    n.wait_for("READY=1", timeout=15)
                except AssertionError:
                    raise AssertionError(f"agent not ready; rc={proc.poll()} "
                                         f"stderr={ap.stderr()!r}") from None
            else:
                wait_http(ap)
        return ap

    def close(self) -> None:
        for p in self.procs:
            p.stop()
        for n in self.notifies:
            n.close()
        for s in self.sockets:
            s.close()


@pytest.fixture
def spawn(sdk_path, tmp_path):
    sp = Spawner(sdk_path, tmp_path)
    yield sp
    sp.close()


@pytest.fixture(scope="module")
def spawn_module(sdk_path, tmp_path_factory):
    """For agents shared by the tests of one module (start once, ~0.1 s each)."""
    sp = Spawner(sdk_path, tmp_path_factory.mktemp("agents"))
    yield sp
    sp.close()


_RECENT_PORTS: collections.deque = collections.deque(maxlen=2048)


def fleet_ports(keys) -> dict:
    """A distinct free port per key, below the kernel's ephemeral range (32768+): a port the
    kernel picked for bind(0) and that was closed again is soon the source port of some client
    connection, which then makes the later bind fail (a CI failure: "Address already in use"
    for a test's LLM server). Each stays bound until all are chosen, and none handed out in
    this process recently is chosen again."""
    import random

    rng, ports, held = random.Random(), {}, []
    for key in keys:
        while True:
            port = rng.randrange(20000, 32000)
            if port in _RECENT_PORTS:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            break
        held.append(s)
        ports[key] = port
        _RECENT_PORTS.append(port)
    for s in held:
        s.close()
    return ports


def builtin_env(spawner, module: str, **env) -> dict:
    """The environment of a built-in agent (UNIFIED_RUN=builtin:MODULE) run from this tree."""
    e = {"UNIFIED_RUN": f"builtin:{module}",
         "PYTHONPATH": f"{spawner.sdk_path}{os.pathsep}{ROOT}"}
    e.update({k: str(v) for k, v in env.items()})
    return e


def wait_http(ap: AgentProc, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ap.proc.poll() is not None:
            raise AssertionError(f"agent exited {ap.proc.returncode}: {ap.stderr()}")
        try:
            ap.request("GET", "/health", health=True, timeout=1)
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("agent did not answer /health")


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, shut: bool = False) -> bytes:
    """Send raw bytes, read until the server closes (or timeout). → all bytes received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def run_agent_cmd(sdk_path, name_and_args, env, timeout=15):
    """Run the agent CLI to completion (for config errors). → CompletedProcess."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("UNIFIED_", "LISTEN_", "NOTIFY_", "WATCHDOG_", "LOG_LEVEL",
                              "DEBUG_MODE", "MAX_THREADS"))}
    e["PYTHONPATH"] = f"{sdk_path}{os.pathsep}{HERE}"
    e.update(env)
    return subprocess.run([PYTHON, "-m", "unified_agents", *name_and_args], env=e,
                          capture_output=True, text=True, timeout=timeout)
