"""The harness itself: commands inside, timeouts, isolation, and teardown in every case
(normal stop, SIGTERM/Ctrl-C of the owner, SIGKILL of the owner followed by a sweep)."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import harness

HERE = Path(__file__).resolve().parent


def test_run_returns_output_and_failures_show_it(container):
    r = container.run("echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n")
    with pytest.raises(harness.ContainerCommandError) as e:
        container.run("echo boom >&2; exit 3")
    assert e.value.returncode == 3
    assert "boom" in str(e.value)
    assert container.run("exit 4", check=False).returncode == 4
    assert container.run(["pwd"], cwd="/etc").stdout.strip() == "/etc"
    assert container.run(["id", "-un"], user="nobody").stdout.strip() == "nobody"


def test_commands_run_inside_a_booted_systemd(container):
    assert container.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert container.state in ("running", "degraded")
    assert container.run(["hostname"]).stdout.strip() == container.name
    assert container.run("systemctl is-system-running", check=False).stdout.strip() \
        in ("running", "degraded")


def test_own_network_namespace(container):
    host_net = os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{container.leader}/ns/net") != host_net
    # a port taken on the host is free inside: tests never clash with the host's ports
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        container.run(["python3", "-c", "import socket; s = socket.socket(); "
                       f"s.bind(('127.0.0.1', {port})); s.listen()"])


def test_files_in_and_out(container, tmp_path):
    container.write_file("/root/systest-file", "hello\n")
    try:
        assert container.read_file("/root/systest-file") == "hello\n"
        assert container.host_path("/root/systest-file").read_text() == "hello\n"
    finally:
        container.run(["rm", "-f", "/root/systest-file"])


def test_timeout_kills_the_command(container):
    with pytest.raises(subprocess.TimeoutExpired):
        container.run(["sleep", "300"], timeout=1)
    container.wait_until("! pgrep -x sleep", timeout=10)


def test_stop_leaves_nothing(rootfs):
    c = harness.Container(rootfs, label="stop-test").start()
    leader, start, nspawn, d = c.leader, c.leader_start, c.proc.pid, c.dir
    c.stop()
    assert not harness._alive(leader, start)
    assert c.proc.poll() is not None, f"nspawn {nspawn} still running"
    assert not d.exists()
    assert not os.path.ismount(d / "root")


_OWNER = """
import json, sys, time
sys.path.insert(0, {here!r})
import harness
harness.install_signal_handlers()
c = harness.Container({rootfs!r}, label="owner").start()
print(json.dumps(dict(name=c.name, leader=c.leader, start=c.leader_start,
                      nspawn=c.proc.pid, dir=str(c.dir))), flush=True)
time.sleep(300)
"""


def _owner_process(rootfs):
    """A separate Python process that owns a booted container (a stand-in for pytest)."""
    p = subprocess.Popen([sys.executable, "-c", _OWNER.format(here=str(HERE),
                                                              rootfs=str(rootfs))],
                         stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(120, p.kill)
    timer.start()
    try:
        line = p.stdout.readline()
    finally:
        timer.cancel()
    assert line, f"owner process exited {p.poll()} before its container booted"
    return p, json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_owner_interrupted_tears_down(rootfs, sig):
    p, info = _owner_process(rootfs)
    try:
        p.send_signal(sig)
        # stop_all's own bounds: poweroff call 10 s + wait 15 s + SIGKILL wait 10 s + leader
        # gone 10 s, then removing the copy; under CI's load a clean run took over 60 s once
        p.wait(timeout=120)
        assert not harness._alive(info["leader"], info["start"])
        assert not harness._alive(info["nspawn"])
        assert not Path(info["dir"]).exists()
    finally:
        p.kill()
        p.wait(timeout=10)
        harness.sweep_stale()


def test_sigkilled_owner_is_swept(rootfs):
    p, info = _owner_process(rootfs)
    p.kill()
    p.wait(timeout=10)
    # What a SIGKILLed test run leaves: the container keeps running, holding its copy.
    assert harness._alive(info["leader"], info["start"])
    harness.sweep_stale(verbose=False)  # (a concurrent run's sweep may have come first)
    assert harness._wait_gone(info["leader"], info["start"], 10)
    assert harness._wait_gone(info["nspawn"], None, 10)
    assert not Path(info["dir"]).exists()
