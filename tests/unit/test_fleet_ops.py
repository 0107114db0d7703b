"""Fleet changes one at a time (the fleet lock), switches that converge on what systemd
really runs, and the runbook's variables as visible, clearable overrides."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from unified_ctl import cli as cli_mod
from unified_ctl import fleetlock, ports
from unified_core import profiles, runtime
from unified_core.catalog import load_catalog
from unified_core.errors import UnifiedError

from .fakes import FakeSystemd

ROOT = pathlib.Path(__file__).parents[2]
CATALOG = ROOT / "etc/unified/unified.yaml"
RUNBOOK_VARS = ("PROFILE", "LOG_LEVEL", "DEBUG_MODE", "CPU_PERCENT", "MEMORY_MB", "MAX_THREADS", "VRAM_LIMIT_MB",
                "ENABLE_METRICS", "ENABLE_TRACING", "ENABLE_DATA_OPTIMIZER", "CONFIG", "DISABLE_AUTO_RESTART")
HOLDER = """import sys, time
from unified_ctl import fleetlock
with fleetlock.hold("unified-ctl profile switch learning", timeout=0):
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
    print(time.monotonic(), flush=True)   # the moment just before it lets go
"""


@pytest.fixture()
def cat():
    return load_catalog(str(CATALOG))


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "live_listeners", lambda: [])
    (tmp_path / "etc").mkdir()
    shutil.copy(CATALOG, tmp_path / "etc" / "unified.yaml")
    for var, sub in (("UNIFIED_ETC", "etc"), ("UNIFIED_RUN_DIR", "run"), ("UNIFIED_RUNTIME_UNITS", "units"),
                     ("UNIFIED_STATE_DIR", "state")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in RUNBOOK_VARS:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture()
def fake(cat, env, monkeypatch):
    sd = FakeSystemd(cat)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: sd))
    return sd


def ctl(*args, env=None, input=None):
    return CliRunner(mix_stderr=False).invoke(cli_mod.cli, list(args), env=env, input=input)


def out(res) -> str:
    return res.stdout + res.stderr


@pytest.fixture()
def holder(env):
    """Another process holding the fleet lock (as `unified-ctl profile switch learning`)."""
    procs = []

    def start(seconds=60.0):
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(seconds)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ))
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture()
def healthy(monkeypatch):
    """Every agent answers /health (the readiness wait of a switch ends at once)."""
    from unified_core.health import HealthResult

    monkeypatch.setattr(profiles, "probe", lambda host, port, timeout=1.0: HealthResult(True, "healthy", {}))


# ------------------------------------------------------------------ one fleet change at a time
def test_switch_refuses_while_another_holds_the_lock_naming_its_pid_and_command(fake, holder):
    p = holder()
    res = ctl("--lock-timeout", "0", "profile", "switch", "core", "--no-wait")
    assert res.exit_code == 75
    assert f"another fleet operation is running: pid {p.pid} (unified-ctl profile switch learning, since " in res.stderr
    assert "nothing was changed" in res.stderr and fake.calls == []
    assert profiles.read_selected() is None


@pytest.mark.parametrize("args", [("apply",), ("agent", "start", "TutorAgent"), ("agent", "stop", "TutorAgent"),
                                  ("agent", "restart", "TutorAgent"), ("config", "rollback"),
                                  ("recover", "--yes", "--keep-state"), ("overrides", "clear")])
def test_every_fleet_change_takes_the_lock(fake, holder, args):
    holder()
    res = ctl("--lock-timeout", "0", *args)
    assert res.exit_code == 75, out(res)
    assert "another fleet operation is running" in res.stderr and fake.calls == []


def test_status_names_the_fleet_change_in_progress(fake, holder):
    assert json.loads(ctl("status", "--json", "--no-health").stdout)["fleet_change"] is None
    p = holder()
    data = json.loads(ctl("status", "--json", "--no-health").stdout)
    assert data["fleet_change"]["pid"] == p.pid
    assert data["fleet_change"]["command"] == "unified-ctl profile switch learning"
    assert f"a fleet change is in progress: pid {p.pid} (unified-ctl profile switch learning, since" in \
        ctl("status", "--no-health").stdout


def test_a_second_switch_waits_for_the_first_and_says_for_whom(fake, holder):
    p = holder(1.0)
    res = ctl("profile", "switch", "core", "--no-wait")
    switched = time.monotonic()
    assert res.exit_code == 0, out(res)
    assert f"waiting for pid {p.pid} (unified-ctl profile switch learning, since " in res.stderr
    # it ran only after the holder let go (CLOCK_MONOTONIC is one clock for both processes)
    assert float(p.stdout.readline()) < switched
    assert profiles.read_selected() == "core"


def test_a_lock_left_by_a_holder_killed_with_sigkill_blocks_nobody(env, holder):
    p = holder()
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert fleetlock.read_holder().pid == p.pid  # its record is still in the file ...
    with fleetlock.hold("test", timeout=0):     # ... but the kernel dropped its lock
        assert fleetlock.read_holder().pid == os.getpid()


def test_emergency_stop_never_waits_it_ends_the_holder(fake, holder):
    fake.start([fake.catalog.profiles["core"].target])
    p = holder()
    res = ctl("--lock-timeout", "0", "emergency-stop", "--yes")
    assert res.exit_code == 0, out(res)
    assert f"ended pid {p.pid} (unified-ctl profile switch learning" in res.stdout
    assert p.wait(5) == -signal.SIGTERM
    assert not any(fake.is_active(u) for u in fake.state)


def test_a_command_waiting_when_an_emergency_stop_runs_gives_up(env, holder):
    p = holder()
    seen = []

    def waiter():
        try:
            with fleetlock.hold("unified-ctl profile switch vision", timeout=30):
                seen.append("ran")
        except UnifiedError as e:
            seen.append(e.message)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    with fleetlock.preempt("unified-ctl emergency-stop") as ended:
        assert ended.pid == p.pid
    t.join(10)
    assert len(seen) == 1 and "an emergency-stop ran while this command waited" in seen[0]
    with fleetlock.hold("later", timeout=0):  # a command begun after the emergency runs
        pass


def test_recover_holds_the_lock_once_for_its_stop_and_its_switch(fake, healthy):
    res = ctl("recover", "--yes", "--keep-state", "--profile", "core")
    assert res.exit_code == 0, out(res)
    assert profiles.read_selected() == "core"
    assert ("start", ("unified-profile-core.target", "unified.target")) in fake.calls


# ------------------------------------------------------------------ converging on systemd's state
def test_a_switch_stops_agents_a_switch_killed_halfway_left_queued(fake, cat):
    fake.start([cat.profiles["core"].target])
    # `profile switch learning` was SIGKILLed after queueing its target: systemd still
    # holds start jobs for learning's agents, none of them active yet
    only_learning = sorted(set(cat.profiles["learning"].agents) - set(cat.profiles["vision"].agents))
    fake.jobs = [("unified-profile-learning.target", "start")] + [
        (u, "start") for a in only_learning for u in (cat.agents[a].socket, cat.agents[a].service)]
    res = ctl("profile", "switch", "vision", "--no-wait", "--json")
    assert res.exit_code == 0, out(res)
    assert sorted(json.loads(res.stdout)["stop"]) == only_learning
    assert "unified-profile-learning.target" in {u for c in fake.calls if c[0] == "stop" for u in c[1]}
    fake.run_jobs()  # whatever systemd had left to do
    running = {a for a in cat.agents if fake.is_active(cat.agents[a].socket) or fake.is_active(cat.agents[a].service)}
    assert running == set(cat.profiles["vision"].agents)


def test_what_runs_outside_the_profile_when_the_wait_ends_is_stopped(fake, cat):
    fake.start([cat.profiles["core"].target, cat.agents["TutorAgent"].service])
    assert profiles.stray_agents(cat, fake, "core") == ["TutorAgent"]
    assert not fake.is_active(cat.agents["TutorAgent"].service)
    assert profiles.stray_agents(cat, fake, "core") == []


# ------------------------------------------------------------------ overrides
def test_read_only_commands_ignore_a_bad_runbook_variable_in_the_shell(fake, cat):
    fake.start([cat.profiles["core"].target])
    bad = {"LOG_LEVEL": "verbose", "MAX_THREADS": "lots", "CONFIG": "/nonexistent.yaml"}
    for args in (("profile", "list"), ("profile", "show", "core"), ("status", "--no-health"),
                 ("profile", "current"), ("validate",), ("overrides", "show")):
        res = ctl(*args, env=bad)
        assert res.exit_code == 0, (args, out(res))
        assert "verbose" not in out(res)
    assert runtime.read_launch_environment() == {}


def test_a_switch_prints_each_override_it_applies_and_where_it_is_stored(fake):
    res = ctl("profile", "switch", "core", "--no-wait", env={"LOG_LEVEL": "debug", "MAX_THREADS": "4"})
    assert res.exit_code == 0, out(res)
    where = runtime.launch_environment_file()
    for kv in ("LOG_LEVEL=DEBUG", "MAX_THREADS=4"):
        assert (f"note: override {kv} (from the environment) -> every agent, stored in {where} until reboot; "
                "clear with `unified-ctl overrides clear`") in res.stdout
    assert runtime.overrides_in_force() == {"LOG_LEVEL": "DEBUG", "MAX_THREADS": "4"}


def test_a_later_switch_without_them_keeps_the_overrides_and_says_so(fake):
    ctl("profile", "switch", "core", "--no-wait", env={"LOG_LEVEL": "DEBUG"})
    res = ctl("profile", "switch", "vision", "--no-wait", env={"VRAM_LIMIT_MB": "2000"})
    assert res.exit_code == 0, out(res)
    assert "note: override LOG_LEVEL=DEBUG still in force (an earlier launch set it" in res.stdout
    assert "note: override VRAM_LIMIT_MB=2000 (from the environment)" in res.stdout
    assert runtime.overrides_in_force() == {"LOG_LEVEL": "DEBUG", "VRAM_LIMIT_MB": "2000"}


def test_status_shows_the_overrides_in_force(fake, cat):
    fake.start([cat.profiles["core"].target])
    ctl("profile", "switch", "core", "--no-wait", env={"LOG_LEVEL": "DEBUG"})
    data = json.loads(ctl("status", "--json", "--no-health").stdout)
    assert data["overrides"] == {"LOG_LEVEL": "DEBUG"}
    text = ctl("status", "--no-health").stdout
    assert f"overrides in force until reboot ({runtime.launch_environment_file()}): LOG_LEVEL=DEBUG" in text
    assert json.loads(ctl("overrides", "show", "--json").stdout)["overrides"] == {"LOG_LEVEL": "DEBUG"}


def test_overrides_clear_removes_them_and_restarts_the_running_agents(fake, cat):
    fake.start([cat.profiles["core"].target])
    ctl("profile", "switch", "core", "--no-wait", env={"LOG_LEVEL": "DEBUG", "MAX_THREADS": "4"})
    fake.calls.clear()
    res = ctl("overrides", "clear")
    assert res.exit_code == 0, out(res)
    assert "cleared LOG_LEVEL=DEBUG MAX_THREADS=4; restarted the 16 running agents" in res.stdout
    assert not os.path.exists(runtime.launch_environment_file())
    assert fake.calls[0] == ("daemon-reload",)
    (restart,) = [c for c in fake.calls if c[0] == "try-restart"]
    assert sorted(restart[1]) == sorted(cat.agents[a].service for a in cat.profiles["core"].agents)
    assert json.loads(ctl("status", "--json", "--no-health").stdout)["overrides"] == {}
    assert ctl("overrides", "clear").stdout.strip() == "no overrides were in force"


def test_recover_sets_only_its_own_debug_level_not_the_shells_variables(fake, healthy):
    res = ctl("recover", "--yes", "--keep-state", env={"MAX_THREADS": "2", "LOG_LEVEL": "verbose"})
    assert res.exit_code == 0, out(res)
    assert "note: override LOG_LEVEL=DEBUG (from the environment) -> every agent" in res.stdout
    assert runtime.overrides_in_force() == {"LOG_LEVEL": "DEBUG"}


def test_emergency_stop_kills_and_stops_again_when_systemd_cancels_its_stop_job():
    from unified_core.errors import SystemdError
    from unified_ctl import operations

    class CancelsOnce(FakeSystemd):
        """An agent SIGTERMed while starting: its Restart= replaces the first stop job."""

        def stop(self, units, no_block=False):
            if not any(c[0] == "stop" for c in self.calls):
                self._log("stop", tuple(units))
                raise SystemdError("`systemctl stop` failed (exit 1): Job for "
                                   "unified-agent@VRAMOptimizerAgent.service canceled.")
            super().stop(units, no_block)

    sd = CancelsOnce()
    sd.state = {"unified-agent@VRAMOptimizerAgent.service": "active",
                "unified-agent@VRAMOptimizerAgent.socket": "active"}
    assert operations.stop_everything(sd) == []
    assert ("kill", ("unified-agent@VRAMOptimizerAgent.service",
                     "unified-agent@VRAMOptimizerAgent.socket"), "SIGKILL") in sd.calls
    assert set(sd.state.values()) == {"inactive"}


def test_emergency_stop_names_what_a_second_failed_stop_left_running():
    from unified_core.errors import SystemdError
    from unified_ctl import operations

    class NeverStops(FakeSystemd):
        def stop(self, units, no_block=False):
            raise SystemdError("`systemctl stop` failed (exit 1): Job canceled.")

    sd = NeverStops()
    sd.state = {"unified-agent@A.service": "active"}
    with pytest.raises(SystemdError):
        operations.stop_everything(sd)
