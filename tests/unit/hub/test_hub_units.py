"""The hub's systemd and resource collectors: agent state from service + socket, startup
duration from systemd's timestamps, only loaded units are shown, memory/CPU from the cgroup
or psutil, and a failing source keeps the last result."""
from __future__ import annotations

import os

import pytest

from unified_core.poller import Poller
from unified_core.units import (PROPS, ResourceCollector, SystemdCollector, UnitReader,
                                read_cgroup, read_units, unit_facts)

NOW = 1000.0           # monotonic seconds
WALL = 1_700_000_000.0


def facts(svc, sock=None, backend=None):
    return unit_facts("X", svc, sock or {}, NOW, WALL, backend)


def test_active_agent_startup_is_exec_to_ready():
    u = facts({"ActiveState": "active", "SubState": "running", "MainPID": "77",
               "InactiveExitTimestampMonotonic": str(int(990e6)),
               "ActiveEnterTimestampMonotonic": str(int(992.5e6)), "NRestarts": "3",
               "ControlGroup": "/unified.slice/x.service", "CPUUsageNSec": "2000000000",
               "MemoryCurrent": "[not set]"}, {"ActiveState": "active", "SubState": "running"})
    assert (u.state, u.pid, u.restarts, u.startup_s, u.starting) == ("active", 77, 3, 2.5, False)
    assert u.start_wall == WALL - 10 and u.cpu_ns == 2_000_000_000 and u.memory_current is None
    assert u.service == "active/running"


def test_since_is_the_last_state_change_of_the_service_or_the_socket():
    u = facts({"ActiveState": "inactive", "StateChangeTimestampMonotonic": str(int(900e6))},
              {"ActiveState": "active", "StateChangeTimestampMonotonic": str(int(970e6))})
    assert u.state == "dormant" and u.since_wall == WALL - 30
    assert facts({}, {}).since_wall is None                 # never changed since boot


def test_starting_agent_reports_the_time_so_far():
    u = facts({"ActiveState": "activating", "SubState": "start", "MainPID": "5",
               "InactiveExitTimestampMonotonic": str(int(988e6)),
               "ActiveEnterTimestampMonotonic": str(int(900e6))})
    assert u.state == "starting" and u.starting and u.startup_s == 12.0


def test_dormant_failed_and_stopped_have_no_process_facts():
    dormant = facts({"ActiveState": "inactive", "MainPID": "0"}, {"ActiveState": "active"})
    failed = facts({"ActiveState": "failed", "Result": "signal", "MainPID": "0",
                    "ControlGroup": "/x"}, {"ActiveState": "active"})
    stopped = facts({}, {})
    assert (dormant.state, failed.state, stopped.state) == ("dormant", "failed", "stopped")
    assert failed.result == "signal"
    for u in (dormant, failed, stopped):
        assert u.pid is None and u.cgroup == "" and not u.running


def test_command_agent_uses_its_backend_process():
    u = facts({"ActiveState": "active", "MainPID": "10", "ControlGroup": "/proxy"},
              {"ActiveState": "active"},
              backend={"ActiveState": "active", "MainPID": "11", "ControlGroup": "/backend",
                       "InactiveExitTimestampMonotonic": str(int(995e6)),
                       "ActiveEnterTimestampMonotonic": str(int(996e6))})
    assert (u.pid, u.cgroup, u.startup_s) == (11, "/backend", 1.0)


class RecordingSystemd:
    """systemctl's answers for list-units/show, recording what was asked."""

    def __init__(self, units, fail=None):
        self.units = units
        self.fail = fail
        self.shown = []

    def list_units(self, patterns):
        if self.fail:
            raise RuntimeError(self.fail)
        return [{"unit": u, "load": "loaded", "active": p.get("ActiveState", "inactive"),
                 "sub": "x", "description": ""} for u, p in self.units.items()]

    def show(self, units, props):
        self.shown.append((list(units), tuple(props)))
        return {u: dict(self.units.get(u, {})) for u in units}


class View:
    """FleetView's part the collector uses (snap, reader, read), over a Catalog object."""

    def __init__(self, cat, sd=None, **reader_kw):
        from unified_core.fleetview import Snapshot

        self.snap = Snapshot(cat, "core", 1)
        self.reader = UnitReader(sd, **reader_kw)

    def read(self):
        return self.snap, self.reader.read(self.snap.catalog)


def test_only_loaded_units_are_shown_and_every_agent_gets_a_state(catalog):
    sd = RecordingSystemd({"unified-agent@Worker.service": {"ActiveState": "active",
                                                           "MainPID": "9"},
                           "unified-agent@Worker.socket": {"ActiveState": "active"},
                           "unified-agent@Sleeper.socket": {"ActiveState": "active"}})
    units = read_units(catalog, sd)
    assert set(units) == set(catalog.agents)
    assert (units["Worker"].state, units["Sleeper"].state, units["Faraway"].state) == \
        ("active", "dormant", "stopped")
    (asked, props), = sd.shown
    assert sorted(asked) == sorted(sd.units) and props == PROPS


def test_a_failing_systemd_keeps_the_last_view_and_says_why(catalog):
    sd = RecordingSystemd({"unified-agent@Worker.service": {"ActiveState": "active"}})
    col = SystemdCollector(View(catalog, sd), 5.0)
    assert col.run_once() and col.units["Worker"].state == "active"
    sd.fail = "Failed to connect to bus"
    assert not col.run_once()
    assert col.units["Worker"].state == "active"            # the last good view stays
    st = col.status()
    assert st["errors"] == 1 and "Failed to connect to bus" in st["error"] and not st["ok"]
    sd.fail = None
    assert col.run_once() and col.status()["ok"]


def test_poller_runs_its_update_hook_and_survives_a_broken_one():
    calls = []

    class P(Poller):
        name = "p"

        def collect(self):
            calls.append("collect")

    def hook():
        calls.append("hook")
        raise ValueError("consumer bug")

    p = P(1.0, on_update=hook)
    assert p.run_once() and calls == ["collect", "hook"] and p.status()["ok"]


def test_poller_rejects_a_non_positive_interval():
    with pytest.raises(ValueError, match="interval_s"):
        Poller(0)


# ------------------------------------------------------------------ resources
def write_cgroup(root, cg, memory=None, usage_usec=None, pids=()):
    d = root / cg.lstrip("/")
    d.mkdir(parents=True, exist_ok=True)
    if memory is not None:
        (d / "memory.current").write_text(f"{memory}\n")
    if usage_usec is not None:
        (d / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 1\n")
    (d / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))


def running(name, pid, cg, cpu_ns=None, mem=None, start=1, wall=1.0):
    from .test_hub_alerts import unit

    u = unit(name)
    u.pid, u.cgroup, u.cpu_ns, u.memory_current = pid, cg, cpu_ns, mem
    u.start_us, u.start_wall = start, wall
    return u


def test_cgroup_v2_files_are_preferred(tmp_path):
    write_cgroup(tmp_path, "/a.slice/w.service", memory=123456, usage_usec=2_500_000,
                 pids=(1, 2))
    assert read_cgroup("/a.slice/w.service", (str(tmp_path),)) == (123456, 2.5, [1, 2])


def test_without_memory_controller_rss_of_the_cgroup_pids_is_summed(tmp_path):
    import psutil

    me = os.getpid()
    write_cgroup(tmp_path, "/a.slice/w.service", usage_usec=1_000_000, pids=(me,))
    units = {"Worker": running("Worker", me, "/a.slice/w.service")}
    rc = ResourceCollector(lambda: units, 1.0, roots=(str(tmp_path),))
    rc.collect()
    s = rc.samples["Worker"]
    rss = psutil.Process(me).memory_info().rss
    assert s.source == "psutil" and abs(s.memory_bytes - rss) < 32 << 20
    assert s.cpu_seconds == 1.0 and s.cpu_percent is None and s.pids == 1


def test_systemd_memory_is_used_when_the_cgroup_has_none(tmp_path):
    write_cgroup(tmp_path, "/w.service", pids=())
    units = {"Worker": running("Worker", None, "/w.service", cpu_ns=3_000_000_000, mem=777)}
    rc = ResourceCollector(lambda: units, 1.0, roots=(str(tmp_path),))
    rc.collect()
    s = rc.samples["Worker"]
    assert (s.memory_bytes, s.source, s.cpu_seconds) == (777, "systemd", 3.0)


def test_cpu_percent_is_the_difference_of_two_samples_of_the_same_process(tmp_path):
    t = [100.0]
    write_cgroup(tmp_path, "/w.service", memory=1, usage_usec=1_000_000)
    units = {"Worker": running("Worker", 9, "/w.service")}
    rc = ResourceCollector(lambda: units, 1.0, roots=(str(tmp_path),), clock=lambda: t[0])
    rc.collect()
    write_cgroup(tmp_path, "/w.service", memory=1, usage_usec=1_500_000)
    t[0] = 110.0
    # each systemd read recomputes the wall-clock start time (float noise): same start
    units["Worker"] = running("Worker", 9, "/w.service", wall=1.0000001)
    rc.collect()
    assert rc.samples["Worker"].cpu_percent == 5.0          # 0.5 s of CPU in 10 s
    units["Worker"] = running("Worker", 10, "/w.service", start=2)   # restarted
    t[0] = 120.0
    rc.collect()
    assert rc.samples["Worker"].cpu_percent is None


def test_agents_not_running_get_no_sample(tmp_path):
    from .test_hub_alerts import unit

    units = {"Sleeper": unit("Sleeper", "dormant")}
    rc = ResourceCollector(lambda: units, 1.0, roots=(str(tmp_path),))
    rc.collect()
    assert rc.samples == {}


# ------------------------------------------------------------------ incremental show
class Listing(RecordingSystemd):
    """list-units answers from self.units too (ActiveState/SubState as systemctl lists)."""

    def list_units(self, patterns):
        return [{"unit": u, "load": "loaded", "active": p.get("ActiveState", "inactive"),
                 "sub": p.get("SubState", "dead"), "description": ""}
                for u, p in self.units.items()]


def shown_last(sd):
    return sorted(sd.shown[-1][0]) if sd.shown else None


def incremental(catalog, events=True):
    t = [0.0]
    sd = Listing({"unified-agent@Worker.service": {"ActiveState": "active",
                                                   "SubState": "running", "NRestarts": "0"},
                  "unified-agent@Worker.socket": {"ActiveState": "active",
                                                  "SubState": "running"},
                  "unified-agent@Sleeper.socket": {"ActiveState": "active",
                                                   "SubState": "listening"}})
    view = View(catalog, sd, full_every_s=60, events_ok=lambda: events, clock=lambda: t[0])
    col = SystemdCollector(view, 5.0, clock=lambda: t[0])
    return col, sd, t


def test_steady_state_shows_nothing_after_the_first_full_read(catalog):
    col, sd, t = incremental(catalog)
    col.collect()
    assert len(shown_last(sd)) == 3
    t[0] = 10
    col.collect()
    assert len(sd.shown) == 1 and col.shown == {"full": 1, "partial": 1, "units": 3}
    assert col.units["Worker"].state == "active"          # from the cached properties


def test_a_state_change_shows_that_unit_only(catalog):
    col, sd, t = incremental(catalog)
    col.collect()
    sd.units["unified-agent@Sleeper.service"] = {"ActiveState": "active", "SubState": "running"}
    col.collect()
    assert shown_last(sd) == ["unified-agent@Sleeper.service"]
    assert col.units["Sleeper"].state == "active"


def test_systemd_logging_about_an_agent_shows_it_even_in_the_same_state(catalog):
    col, sd, t = incremental(catalog)
    col.collect()
    sd.units["unified-agent@Worker.service"]["NRestarts"] = "1"   # restarted in between
    col.collect()
    assert col.units["Worker"].restarts == 0                # not seen: nothing changed
    col.touch("Worker")
    col.collect()
    assert shown_last(sd) == ["unified-agent@Worker.service", "unified-agent@Worker.socket"]
    assert col.units["Worker"].restarts == 1


def test_full_reads_periodically_and_always_without_journal_events(catalog):
    col, sd, t = incremental(catalog)
    col.collect()
    t[0] = 61
    col.collect()
    assert len(sd.shown) == 2 and len(shown_last(sd)) == 3
    col, sd, t = incremental(catalog, events=False)
    col.collect()
    col.collect()
    assert len(sd.shown) == 2 and col.shown["full"] == 2


def test_units_no_longer_loaded_are_forgotten(catalog):
    col, sd, t = incremental(catalog)
    col.collect()
    del sd.units["unified-agent@Worker.service"], sd.units["unified-agent@Worker.socket"]
    col.collect()
    assert col.units["Worker"].state == "stopped" and "unified-agent@Worker.service" not in col.view.reader.props


def test_a_process_is_running_while_its_cgroup_lists_it(tmp_path):
    from unified_core.units import process_running

    write_cgroup(tmp_path, "/w.service", pids=(4242, 4243))
    u = running("Worker", 4242, "/w.service")
    assert process_running(u, (str(tmp_path),))
    u.pid = 4244                              # the unit's process is another one now
    assert not process_running(u, (str(tmp_path),))
    u.cgroup, u.pid = "", os.getpid()         # no cgroup known: /proc decides
    assert process_running(u, (str(tmp_path),))
    u.pid = None
    assert not process_running(u, (str(tmp_path),))
