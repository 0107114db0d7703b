"""`unified-ctl status --watch` (a top of the fleet) and --sort: the reads (unified_core.fleettop)
with the systemd seam faked and the agents' cgroup files written by the test; the drawing on
a real pseudo-terminal (keys, quitting, the terminal put back) and off one (a table or a JSON
line per read). tests/system/test_cli_conventions.py runs it on systemd."""
from __future__ import annotations

import json
import sys
import termios

import pytest

from unified_core import fleettop, units
from unified_core.fleet import AgentState

from .fakes import FakeSystemd
from .ptyrun import PtyRun
from .test_fleet_ops import ROOT, cat, ctl, env, fake, out  # noqa: F401  (fixtures)


class CgroupFakeSystemd(FakeSystemd):
    """The fake, with each running agent in its own control group (files under roots[0])."""

    def show(self, units_, props=()):
        out = super().show(units_, props)
        for u, p in out.items():
            if p["ActiveState"] == "active" and u.endswith(".service"):
                p["ControlGroup"] = f"/unified.slice/{u}"
        return out


@pytest.fixture()
def cgroups(tmp_path, monkeypatch):
    """write(agent, cpu_seconds, memory_bytes): the agent's cgroup files, as the kernel keeps them."""
    root = tmp_path / "cgroup"
    monkeypatch.setattr(units, "CGROUP_ROOTS", (str(root),))

    def write(agent: str, cpu_s: float, mem: int) -> None:
        d = root / "unified.slice" / f"unified-agent@{agent}.service"
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.stat").write_text(f"usage_usec {int(cpu_s * 1e6)}\nuser_usec 0\nsystem_usec 0\n")
        (d / "memory.current").write_text(f"{mem}\n")
        (d / "cgroup.procs").write_text("4242\n")

    return write


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


MEMORY = ["MemoryClient", "MemoryOrchestratorService"]


def _core(cat):
    sd = CgroupFakeSystemd(cat)
    sd.start([cat.profiles["core"].target])
    return sd


def test_cpu_percent_is_the_cpu_used_between_two_reads_in_percent_of_one_core(cat, env, cgroups):
    sd, clock = _core(cat), Clock()
    top = fleettop.FleetTop(cat, sd, ["ServiceRegistry", "MemoryClient"], health=False, clock=clock)
    cgroups("ServiceRegistry", 10.0, 50 << 20)
    cgroups("MemoryClient", 3.0, 80 << 20)
    first = {r.agent: r for r in top.read().rows}
    assert first["ServiceRegistry"].cpu_percent is None  # one read: nothing to compare with
    assert first["ServiceRegistry"].cpu_seconds == 10.0 and first["MemoryClient"].memory_bytes == 80 << 20
    clock.t += 2.0
    cgroups("ServiceRegistry", 11.0, 50 << 20)  # 1 s of CPU in 2 s
    cgroups("MemoryClient", 3.1, 80 << 20)
    rows = top.read("cpu").rows
    assert [(r.agent, r.cpu_percent) for r in rows] == [("ServiceRegistry", 50.0), ("MemoryClient", 5.0)]


def test_sort_by_memory_puts_the_largest_first_and_unknown_last(cat, env, cgroups):
    sd = _core(cat)
    cgroups("ServiceRegistry", 1.0, 10 << 20)
    cgroups("MemoryClient", 1.0, 90 << 20)
    top = fleettop.FleetTop(cat, sd, ["MemoryOrchestratorService", "ServiceRegistry", "MemoryClient"], health=False)
    assert [r.agent for r in top.read("mem").rows] == ["MemoryClient", "ServiceRegistry", "MemoryOrchestratorService"]
    assert [r.agent for r in top.read("name").rows] == ["MemoryClient", "MemoryOrchestratorService", "ServiceRegistry"]
    assert [r.agent for r in top.read().rows] == ["MemoryOrchestratorService", "ServiceRegistry", "MemoryClient"]


def test_sort_by_cpu_without_a_percent_uses_cpu_time():
    def row(name, pct, secs):
        return AgentState(name, True, "active", "", "", 1, None, secs, None, 0, "", cpu_percent=pct)

    rows = [row("a", None, 5.0), row("b", None, 9.0), row("c", None, None), row("d", 1.0, 0.1)]
    assert [r.agent for r in fleettop.sort_states(rows, "cpu")] == ["d", "b", "a", "c"]
    with pytest.raises(ValueError, match="allowed: name, cpu, mem"):
        fleettop.sort_states(rows, "disk")


def test_the_default_selection_is_read_again_each_time(cat, env, cgroups):
    sd = _core(cat)
    top = fleettop.FleetTop(cat, sd, None, health=False)
    before = [r.agent for r in top.read().rows]
    assert "FaceRecognitionAgent" not in before and before == [a for a in cat.agents if a in before]
    sd.start([cat.agents["FaceRecognitionAgent"].service])  # started by hand, outside the profile
    assert "FaceRecognitionAgent" in [r.agent for r in top.read().rows]


def test_watch_off_a_terminal_prints_a_table_per_read_and_stops_after_iterations(fake, cat):
    fake.start([cat.profiles["core"].target])
    res = ctl("status", "--watch", "-i", "0.2", "--iterations", "2", "--no-health", "Memory*")
    assert res.exit_code == 0, out(res)
    heads = [line for line in res.stdout.splitlines() if "(every 0.2 s" in line]
    assert [h.split("  ", 1)[1] for h in heads] == ["(every 0.2 s, 1/2)", "(every 0.2 s, 2/2)"]
    assert res.stdout.count("MemoryOrchestratorService") == 2 and res.stdout.count("CPU%") == 2


def test_watch_json_is_one_document_per_line_with_status_keys(fake, cat):
    fake.start([cat.profiles["core"].target])
    res = ctl("status", "--iterations", "3", "-i", "0.2", "--json", "--no-health", "--group", "memory_foundation")
    assert res.exit_code == 0, out(res)
    frames = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(frames) == 3
    for f in frames:
        assert {"at", "profile", "target_active", "counts", "agents"} <= set(f)
        assert [a["name"] for a in f["agents"]] == list(cat.groups["memory_foundation"])
    assert frames[0]["at"] < frames[1]["at"] < frames[2]["at"]


def test_status_sort_applies_without_watch_too(fake, cat):
    fake.start([cat.profiles["core"].target])
    res = ctl("status", "--json", "--no-health", "--sort", "name", "Memory*", "ServiceRegistry")
    assert [a["name"] for a in json.loads(res.stdout)["agents"]] == [*MEMORY, "ServiceRegistry"]


def test_dash_n_is_refused_naming_the_interval_option(fake):
    res = ctl("status", "--watch", "-n", "2")
    assert res.exit_code == 2
    assert "-n means --lines in unified-ctl (as in journalctl); the refresh interval is -i/--interval" in res.stderr


def _watch_on_a_pty(tmp_path, *args) -> PtyRun:
    return PtyRun([sys.executable, "-m", "tests.unit.fake_fleet_cli", str(tmp_path / "fleet"), "status", "--watch",
                   "--no-health", *args], cwd=str(ROOT))


def test_watch_on_a_terminal_redraws_sorts_on_keys_and_quits_on_q_restoring_the_terminal(tmp_path):
    run = _watch_on_a_pty(tmp_path, "-i", "0.3", "Memory*")
    try:
        run.read_until("sorted by catalog order")
        assert not run.modes() & (termios.ICANON | termios.ECHO)  # keys read one at a time, not echoed
        run.type(b"m")
        run.read_until("sorted by mem")
        run.type(b"q")
        assert run.wait() == 0
        assert run.modes() & termios.ICANON and run.modes() & termios.ECHO  # the terminal as it was
        text = run.read_until("")
        assert "Traceback" not in text and "MemoryOrchestratorService" in text
        assert b"\x1b[?25h" in run.out[-40:]  # the cursor shown again (Live hid it)
    finally:
        run.close()


def test_watch_on_a_terminal_quits_on_ctrl_c_without_a_traceback(tmp_path):
    run = _watch_on_a_pty(tmp_path, "-i", "5")
    try:
        run.read_until("q quits")
        run.type(b"\x03")
        assert run.wait() == 0
        assert "Traceback" not in run.read_until("") and "Interrupted" not in run.read_until("")
        assert run.modes() & termios.ECHO
    finally:
        run.close()
