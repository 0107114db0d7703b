"""Weekly and capacity reports: what the journal says about each agent (pure rules), and the
reports as files, with each missing source named."""
from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from unified_ctl import cli as cli_mod
from unified_ctl import report_render, reports
from unified_core import paths
from unified_ctl import report_journal as rj
from unified_core.catalog import load_catalog

from tests.host_tools import require_module

from .opsfakes import JournalFakeSystemd

DAY = 86400.0
UNTIL = 7 * DAY


def ev(t, agent, mid, **kw):
    return {"__REALTIME_TIMESTAMP": str(int(t * 1e6)), "UNIT": f"unified-agent@{agent}.service",
            "MESSAGE_ID": mid, **kw}


def msg(t, agent, prio, text):
    return {"__REALTIME_TIMESTAMP": str(int(t * 1e6)), "_SYSTEMD_UNIT": f"unified-agent@{agent}.service",
            "PRIORITY": str(prio), "MESSAGE": text}


def week(events, messages=(), active=None):
    return rj.analyse(list(events), list(messages), 0.0, UNTIL, active or {})


def test_a_crash_and_its_restart_count_as_one_failure_and_its_downtime():
    w, _ = week([ev(100, "MemoryClient", rj.STARTING), ev(101, "MemoryClient", rj.STARTED),
                 ev(1000, "MemoryClient", rj.FAILURE_RESULT), ev(1000.5, "MemoryClient", rj.RESTART_SCHEDULED),
                 ev(1001, "MemoryClient", rj.STOPPED), ev(1001, "MemoryClient", rj.STARTING),
                 ev(1003, "MemoryClient", rj.STARTED)])
    m = w["MemoryClient"]
    assert (m.failures, m.restarts, m.starts) == (1, 1, 2)
    assert m.down_s == pytest.approx(3.0)
    assert m.up_s == pytest.approx((1000 - 101) + (UNTIL - 1003))
    assert m.failure_episodes == [(1000.0, 3.0)]
    assert m.load_times == [1.0, 2.0]


def test_an_agent_running_before_the_week_and_stopped_by_a_switch_was_never_down():
    w, _ = week([ev(5000, "TutorAgent", rj.STOPPING), ev(5001, "TutorAgent", rj.STOPPED)])
    t = w["TutorAgent"]
    assert t.up_s == pytest.approx(5001) and t.down_s == 0 and t.availability == 1.0 and t.stops == 1


def test_an_idle_exit_is_neither_downtime_nor_a_failure():
    w, _ = week([ev(10, "TutorAgent", rj.STARTED), ev(310, "TutorAgent", rj.SUCCESS),
                 ev(400, "TutorAgent", rj.STARTED), ev(700, "TutorAgent", rj.STOPPING),
                 ev(701, "TutorAgent", rj.SUCCESS)])
    t = w["TutorAgent"]
    assert t.idle_exits == 1 and t.failures == 0 and t.down_s == 0  # the second exit was asked for
    assert t.up_s == pytest.approx(300 + 301)


def test_a_crash_loop_ending_in_start_limit_is_down_until_the_end_of_the_week():
    w, _ = week([ev(10, "STTService", rj.STARTED), ev(20, "STTService", rj.FAILURE_RESULT),
                 ev(21, "STTService", rj.FAILED)])
    s = w["STTService"]
    assert s.failures == 1 and s.down_s == pytest.approx(UNTIL - 20)
    assert s.availability == pytest.approx(10 / (UNTIL - 10))


def test_an_agent_without_events_that_runs_now_was_up_all_week():
    w, _ = week([], active={"ServiceRegistry": True, "TutorAgent": False})
    assert w["ServiceRegistry"].availability == 1.0 and "TutorAgent" not in w


def test_oom_kills_cpu_and_memory_peak_are_taken_from_systemd():
    w, _ = week([ev(1, "X", rj.STARTED), ev(50, "X", rj.OUT_OF_MEMORY),
                 ev(51, "X", rj.RESOURCES, CPU_USAGE_NSEC="2500000000", MEMORY_PEAK="104857600"),
                 ev(51, "X", rj.FAILURE_RESULT)])
    assert (w["X"].oom_kills, w["X"].cpu_s, w["X"].memory_peak_bytes) == (1, 2.5, 104857600)


def test_errors_warnings_and_breaker_openings_come_from_the_agents_messages():
    w, breakers = week([], [msg(5, "KnowledgeBase", 3, "KnowledgeBase error: disk I/O error"),
                            msg(6, "KnowledgeBase", 4, "KnowledgeBase slow query"),
                            msg(7, "RequestCoordinator", 4, "RequestCoordinator [r1] circuit breaker closed -> open "
                                "agent=VisionProcessingAgent failures=5 last_failure=timeout")])
    kb = w["KnowledgeBase"]
    assert (kb.errors, kb.warnings, kb.last_error) == (1, 1, "KnowledgeBase error: disk I/O error")
    assert breakers == [{"time": 7.0, "reporter": "RequestCoordinator", "agent": "VisionProcessingAgent",
                         "from": "closed"}]


# -- the reports ------------------------------------------------------------------------------
@pytest.fixture()
def sd(ops_env, monkeypatch):
    monkeypatch.setenv("UNIFIED_REPORTS_DIR", str(ops_env / "reports"))
    cat = load_catalog(paths.catalog_file(), env={})
    now = __import__("time").time()
    life = [ev(now - 3600, "MemoryClient", rj.FAILURE_RESULT), ev(now - 3598, "MemoryClient", rj.STARTING),
            ev(now - 3585, "MemoryClient", rj.STARTED)]
    fake = JournalFakeSystemd(cat, answers={
        "_PID=1": "\n".join(json.dumps(e) for e in life) + "\n",
        "warning": json.dumps(msg(now - 100, "MemoryClient", 3, "MemoryClient error: boom")) + "\n"})
    fake.start([cat.profiles["core"].target])
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    return fake


def test_weekly_report_says_what_happened_and_what_it_could_not_see(sd):
    cat = load_catalog(paths.catalog_file(), env={})
    r = reports.weekly(cat, sd)
    mc = next(a for a in r["agents"] if a["agent"] == "MemoryClient")
    assert mc["failures"] == 1 and mc["slow_loads"] == [13.0] and mc["errors"] == 1
    assert r["alerts"]["EssentialAgentDown"][0]["agent"] == "MemoryClient"
    assert r["alerts"]["SlowAgentLoading"] == [{"name": "MemoryClient", "agent": "MemoryClient", "seconds": 13.0}]
    assert any("SystemDigitalTwin" in m for m in r["missing"])
    assert any("routing" in m and "ModelManagerSuite" in m for m in r["missing"])
    md = report_render.weekly_markdown(r)
    assert "| MemoryClient | essential |" in md and "EssentialAgentDown: 1 episodes" in md
    # the journal is asked for our agents only, as JSON, over the window
    q = next(c[1] for c in sd.calls if c[0] == "journalctl" and "_PID=1" in c[1])
    assert "-o" in q and "json" in q and "--since" in q


def test_report_weekly_writes_markdown_json_and_keeps_a_capacity_sample(sd, ops_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on a host without python3-matplotlib
    res = CliRunner().invoke(cli_mod.cli, ["-c", paths.catalog_file(), "report", "weekly"])
    assert res.exit_code == 0, res.output
    md = next((ops_env / "reports").glob("weekly-*.md")).read_text()
    data = json.loads(next((ops_env / "reports").glob("weekly-*.json")).read_text())
    assert data["plot"] is None and "python3-matplotlib is not installed" in data["plot_note"]
    assert "python3-matplotlib is not installed" in md
    assert len(reports.load_samples()) == 1


def test_weekly_png_when_matplotlib_is_installed(sd, ops_env):
    require_module("matplotlib")
    res = CliRunner().invoke(cli_mod.cli, ["-c", paths.catalog_file(), "report", "weekly", "--json"])
    out = json.loads(res.output)
    assert out["png"] and open(out["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert f"![the week]({out['png'].rsplit('/', 1)[1]})" in open(out["markdown"]).read()


def test_capacity_trend_from_samples_and_advice_when_a_limit_is_near(sd, ops_env):
    cat = load_catalog(paths.catalog_file(), env={})
    now = __import__("time").time()
    # 10 days of samples: state grows 100 MB/day, agents' memory 20 MB/day
    for d in range(10):
        reports.keep_sample({"time": now - (10 - d) * DAY, "state_bytes": d * 100 * 2**20,
                             "journal_bytes": 0, "agents_memory_bytes": 1000 * 2**20 + d * 20 * 2**20})
    r = reports.capacity(cat, sd, record=False)
    assert r["trend_per_day"]["state_bytes"] == pytest.approx(100 * 2**20)
    assert r["trend_per_day"]["agents_memory_bytes"] == pytest.approx(20 * 2**20)
    assert r["source"] == "capacity samples" and any("SystemDigitalTwin" in m for m in r["missing"])
    full = r["profiles"]["full"]
    assert full["agent_limits_all_mb"] == sum(a.resources.memory_mb for a in cat.agents.values())
    assert full["limit_mb"] == 8192 and full["used_now_mb"] is None
    md = report_render.capacity_markdown(r)
    assert "+100.00 MB/day" in md and "## Profiles" in md


def test_slope_needs_two_points_an_hour_apart():
    assert reports.slope_per_day([(0, 1)]) is None
    assert reports.slope_per_day([(0, 1), (60, 5)]) is None
    assert reports.slope_per_day([(0, 0), (DAY, 10), (2 * DAY, 20)]) == pytest.approx(10)


def test_twin_history_feeds_peaks_when_it_serves_them():
    rows = [{"time": 1, "agent": "A", "memory_bytes": 5, "vram_mb": 100},
            {"time": 2, "agent": "A", "memory_bytes": 9, "vram_mb": 50}]
    assert reports.peaks(rows) == {"A": {"memory_peak_bytes": 9, "vram_peak_mb": 100}}


def test_twin_snapshots_from_its_database_when_the_twin_is_not_running(sd, ops_env):
    import sqlite3

    db = sqlite3.connect(str(ops_env / "state" / "twin.db"))
    db.executescript("""
        CREATE TABLE snapshots(id INTEGER PRIMARY KEY, ts REAL NOT NULL, profile TEXT, active INTEGER NOT NULL,
            dormant INTEGER NOT NULL, failed INTEGER NOT NULL, memory_bytes INTEGER, cpu_seconds REAL, gpu TEXT);
        CREATE TABLE snapshot_agents(snapshot_id INTEGER NOT NULL, agent TEXT NOT NULL, state TEXT NOT NULL,
            pid INTEGER, memory_bytes INTEGER, cpu_seconds REAL, restarts INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(snapshot_id, agent)) WITHOUT ROWID;""")
    now = __import__("time").time()
    gpu = json.dumps({"by_agent": {"ModelManagerSuite": 3 * 2**30}})
    db.execute("INSERT INTO snapshots VALUES (1, ?, 'core', 2, 0, 0, 300, 1.0, ?)", (now - 60, gpu))
    db.execute("INSERT INTO snapshots VALUES (2, ?, 'core', 2, 0, 0, 300, 1.0, NULL)", (now - 30,))
    db.executemany("INSERT INTO snapshot_agents VALUES (?, ?, 'active', 1, ?, 0.5, 0)",
                   [(1, "ModelManagerSuite", 200 * 2**20), (2, "ModelManagerSuite", 250 * 2**20)])
    db.commit()
    db.close()
    cat = load_catalog(paths.catalog_file(), env={})
    sd.stop(["unified-agent@SystemDigitalTwin.service"])  # the twin is down: read its file
    rows, why = reports.twin_resources(cat, sd, now - 3600, now)
    assert why is None and len(rows) == 2
    assert reports.peaks(rows) == {"ModelManagerSuite": {"memory_peak_bytes": 250 * 2**20, "vram_peak_mb": 3072}}
    r = reports.weekly(cat, sd)
    mm = next(a for a in r["agents"] if a["agent"] == "ModelManagerSuite")
    assert mm["memory_peak_bytes"] == 250 * 2**20 and mm["vram_peak_mb"] == 3072
    assert not any("SystemDigitalTwin history" in m for m in r["missing"])
