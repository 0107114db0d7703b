"""The operator's terminal on real systemd: `status --watch` (a top of the fleet), progress
while a command waits for agents, and a whole session captured from tmux, the text the
closing note shows (tests/system/artifacts/operator-session.txt; a copy is committed as
docs/transcripts/operator-session.txt).

Commands that need a terminal run under util-linux's `script` inside the container (a pty);
the session runs in a tmux on the host whose pane is a shell inside the container (nsenter),
typed into with `tmux send-keys` and read with `tmux capture-pane -p`.

Tests share the session container and leave the core profile selected and running.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.host_tools import require_tool

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def ctl(c, *args, **kw):
    return c.run(["unified-ctl", *args], **kw)


def switch_core(c):
    r = ctl(c, "profile", "switch", "core", "--json", check=False, timeout=180)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr


@pytest.fixture
def core(container):
    switch_core(container)
    yield container
    switch_core(container)  # stops what a test loaded outside the profile


def on_a_terminal(c, command: str, keys: str = "", after: float = 0.0, timeout: float = 120):
    """`command` on a pseudo-terminal inside (script(1)); `keys` typed `after` seconds.
    Returns (exit status, the text it drew without terminal control sequences)."""
    run = 'COLUMNS=140 LINES=50 TERM=xterm script -qfec "$0" /dev/null'
    # (script waits for the command when its input ends: keys, then the end of input)
    sh = f"(sleep {after}; printf '{keys}') | {run}" if keys else f"{run} </dev/null"
    r = c.run(["sh", "-c", sh, command], check=False, timeout=timeout)
    return r.returncode, ANSI.sub("", r.stdout)


def test_status_watch_reads_cpu_and_memory_of_the_running_agents_off_a_terminal(core):
    c = core
    lines = ctl(c, "status", "--watch", "-i", "1", "--iterations", "2", "--json", "--sort", "cpu",
                "--group", "memory_foundation").stdout.splitlines()
    frames = [json.loads(line) for line in lines]
    assert len(frames) == 2 and frames[0]["profile"] == "core"
    running = [a for a in frames[1]["agents"] if a["state"] == "active"]
    assert running and all(a["memory_bytes"] > 0 and a["cpu_percent"] is not None for a in running)
    assert all(a["cpu_percent"] is None for a in frames[0]["agents"])  # one read: nothing to compare with
    pcts = [a["cpu_percent"] for a in running]
    assert pcts == sorted(pcts, reverse=True)
    text = ctl(c, "status", "--iterations", "1", "Memory*").stdout
    assert "(every 2 s, 1/1)" in text and "MemoryOrchestratorService" in text and "CPU%" in text


def test_status_watch_on_a_terminal_quits_on_q_without_a_traceback(core):
    rc, text = on_a_terminal(core, "unified-ctl status --watch -i 1 --sort mem", keys="q", after=3)
    assert rc == 0, text
    assert "sorted by mem" in text and "q quits" in text and "ServiceRegistry" in text
    assert "Traceback" not in text


def test_agent_load_on_a_terminal_shows_its_progress(core):
    c = core
    assert c.is_active("unified-agent@MemoryOrchestratorService.service") != "active"
    rc, text = on_a_terminal(c, "unified-ctl agent load MemoryOrchestratorService")
    assert rc == 0, text
    assert "load MemoryOrchestratorService" in text and "/2" in text  # the bar: ready/total
    assert "MemoryOrchestratorService healthy in" in text
    # not on a terminal: the outcome alone
    out = ctl(c, "agent", "load", "MemoryOrchestratorService")
    assert out.stdout.startswith("MemoryOrchestratorService healthy in ") and out.stderr == ""


class Tmux:
    """A tmux server of its own on the host (-L), one window whose pane runs `argv`."""

    def __init__(self, argv: list[str], conf: Path, size=(150, 60)):
        self.tmux = require_tool("tmux")
        self.sock = f"unified-systest-{time.monotonic_ns()}"
        conf.write_text("set -g history-limit 20000\nset -g status off\n")
        self("-f", str(conf), "new-session", "-d", "-s", "op", "-x", str(size[0]), "-y", str(size[1]), *argv)

    def __call__(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-L", self.sock, *args], check=True, capture_output=True, text=True,
                              timeout=30).stdout

    def capture(self) -> str:
        return self("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "op")

    def wait_for(self, predicate, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.capture()
            if predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError("the pane never showed what was waited for:\n" + self.capture())

    def kill(self) -> None:
        subprocess.run([self.tmux, "-L", self.sock, "kill-server"], capture_output=True, timeout=30)


PROMPT = "root@unified:~# "


def test_an_operator_session_captured_from_tmux(core, tmp_path):
    c = core
    shell = c._argv(["bash", "--norc", "--noprofile", "-i"], {"TERM": "tmux-256color", "PS1": PROMPT}, None, "/root")
    tmux = Tmux(shell, tmp_path / "tmux.conf")
    try:
        tmux.wait_for(lambda t: PROMPT in t, timeout=30)

        def typed(command: str, timeout: float = 180) -> None:
            prompts = tmux.capture().count(PROMPT)
            tmux("send-keys", "-t", "op", "-l", command)
            tmux("send-keys", "-t", "op", "Enter")
            tmux.wait_for(lambda t: t.count(PROMPT) > prompts, timeout)

        typed("unified-ctl status 'Memory*'")
        typed("unified-ctl agent restart --group memory_foundation")
        typed("unified-ctl profile diff core vision")
        typed("unified-ctl config show | head -n 12")
        prompts = tmux.capture().count(PROMPT)
        tmux("send-keys", "-t", "op", "-l", "unified-ctl status --watch -i 1 --sort mem")
        tmux("send-keys", "-t", "op", "Enter")
        tmux.wait_for(lambda t: "q quits" in t, timeout=60)
        time.sleep(3.5)  # a few refreshes
        tmux("send-keys", "-t", "op", "q")
        text = tmux.wait_for(lambda t: t.count(PROMPT) > prompts, timeout=30)
    finally:
        tmux.kill()
    text = "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "operator-session.txt").write_text(text)
    assert "Traceback" not in text and "Error" not in text
    for line in (PROMPT + "unified-ctl status 'Memory*'", "MemoryOrchestratorService",
                 "(the running ones matching)", "profile core -> vision (/etc/unified/unified.yaml):",
                 "autoload: +FaceRecognitionAgent +VisionProcessingAgent",
                 "# unified-ctl config show: /etc/unified/unified.yaml",
                 PROMPT + "unified-ctl status --watch -i 1 --sort mem", "every 1 s, sorted by mem", "q quits"):
        assert line in text, line
    assert text.rstrip().endswith(PROMPT.rstrip())  # q gave the shell back
