"""ENABLE_DATA_OPTIMIZER (agents/optimizer.py): idle-time ANALYZE, incremental vacuum and
WAL truncation on a real SQLite file, never beside a write, never losing an acknowledged one."""
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from unified_agents.config import load
from unified_agents.optimizer import DataOptimizer
from unified_agents.store import Store, agent_store

from ..sdk.harness import ROOT

V1 = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"


def fill(s: Store, n: int, size: int = 2000) -> None:
    for _ in range(n):
        s.write(lambda c: c.execute("INSERT INTO t(v) VALUES (?)", ("x" * size,)))


def wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


def wait_for(cond, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_an_idle_store_gets_free_pages_returned_the_wal_truncated_and_statistics(tmp_path):
    p = str(tmp_path / "a.db")
    s = Store(p, [V1, "CREATE INDEX t_v ON t(v)"])
    fill(s, 300)
    s.write(lambda c: c.execute("DELETE FROM t WHERE id % 3 != 0"))
    free_before = s.stats()["free_bytes"]
    size_before = os.path.getsize(p) + wal_bytes(p)
    assert free_before > 0 and wal_bytes(p) > 0
    s.optimize_when_idle(0.3)
    wait_for(lambda: s.optimizer.runs >= 1)
    st = s.stats()
    assert st["free_bytes"] == 0 and wal_bytes(p) == 0
    assert s.optimizer.reclaimed_bytes > 0
    assert os.path.getsize(p) < size_before
    assert s.query("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 't'")[0][0] >= 1
    assert len(s.query("SELECT id FROM t")) == 100
    text = "\n".join(s.metrics_lines("unified_x"))
    assert "unified_x_db_optimizer_runs_total 1" in text
    assert "unified_x_db_wal_bytes 0" in text
    assert f"unified_x_db_optimizer_reclaimed_bytes_total {s.optimizer.reclaimed_bytes}" in text
    assert s.query("PRAGMA integrity_check")[0][0] == "ok"
    s.close()


def test_it_runs_only_after_the_idle_time_and_only_when_something_was_written(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1])
    opt = DataOptimizer(s, idle_s=60.0)          # not started: due() asked directly
    fill(s, 1)
    assert not opt.due()                         # written just now
    s.last_write -= 61
    assert opt.due()
    opt.run()
    assert not opt.due()                         # nothing written since that run
    fill(s, 1)
    s.last_write -= 61
    assert opt.due()


def test_a_run_waits_for_the_write_in_flight_and_the_write_commits(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1])
    fill(s, 5)
    opt = DataOptimizer(s, idle_s=0.0)
    in_write, release, order = threading.Event(), threading.Event(), []

    def slow_write(c):
        c.execute("INSERT INTO t(v) VALUES ('slow')")
        in_write.set()
        release.wait(10)
        order.append("write")

    w = threading.Thread(target=lambda: s.write(slow_write))
    w.start()
    in_write.wait(10)
    r = threading.Thread(target=lambda: (opt.run(), order.append("optimize")))
    r.start()
    r.join(0.3)
    assert order == []                            # the run is waiting for the write lock
    release.set()
    w.join(10)
    r.join(10)
    assert order == ["write", "optimize"]
    assert s.query("SELECT count(*) FROM t WHERE v = 'slow'")[0][0] == 1


def test_an_old_database_without_incremental_auto_vacuum_is_converted_once(tmp_path):
    p = str(tmp_path / "old.db")
    c = sqlite3.connect(p)                        # as an older version created it
    c.executescript(f"{V1}; PRAGMA user_version=1;")
    c.close()
    s = Store(p, [V1])
    assert s.query("PRAGMA auto_vacuum")[0][0] == 0
    fill(s, 200)
    s.write(lambda c: c.execute("DELETE FROM t WHERE id > 20"))
    assert s.stats()["free_bytes"] > 0
    result = DataOptimizer(s, idle_s=0.0).run()
    assert result["converted_to_incremental"] and result["free_pages_reclaimed"] > 0
    assert s.query("PRAGMA auto_vacuum")[0][0] == 2
    assert s.stats()["free_bytes"] == 0 and s.query("SELECT count(*) FROM t")[0][0] == 20
    assert s.query("PRAGMA integrity_check")[0][0] == "ok"


def test_agent_store_starts_the_optimizer_only_when_the_setting_is_on(tmp_path):
    base = {"UNIFIED_AGENT": "MemoryClient", "UNIFIED_PORT": "17001",
            "UNIFIED_HEALTH_PORT": "18001", "STATE_DIRECTORY": str(tmp_path)}
    off = agent_store(load(base), "off.db", [V1])
    assert off.optimizer is None and off.stats()["optimizer"] is None
    on = agent_store(load({**base, "ENABLE_DATA_OPTIMIZER": "true",
                           "DATA_OPTIMIZER_IDLE_S": "7"}), "on.db", [V1])
    assert on.optimizer is not None and on.optimizer.idle_s == 7.0
    assert "unified_x_db_optimizer_runs_total 0" in on.metrics_lines("unified_x")
    on.close()
    off.close()


CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from tests import conftest  # noqa: F401  (maps agents/ to unified_agents)
from unified_agents.store import Store
s = Store(sys.argv[1], ["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"])
s.optimize_when_idle(0.05)
i = 0
while True:
    i += 1
    rid = s.write(lambda c: c.execute("INSERT INTO t(v) VALUES (?)", ("x" * 3000,)).lastrowid)
    print(rid, s.optimizer.runs, flush=True)     # acknowledged only after COMMIT returned
    if i % 20 == 0:
        s.write(lambda c: c.execute("UPDATE t SET v = 'y' WHERE id < ?", (rid - 10,)))
        time.sleep(0.3)                          # idle: the optimizer runs now
"""


def test_acknowledged_writes_survive_kill_9_while_the_optimizer_works(tmp_path):
    p = str(tmp_path / "a.db")
    child = subprocess.Popen([sys.executable, "-c", CHILD, p, str(ROOT)],
                             stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    acked, runs = [], 0
    deadline = time.monotonic() + 60
    while (len(acked) < 200 or runs < 3) and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        rid, runs = map(int, line.split())
        acked.append(rid)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    acked += [int(x.split()[0]) for x in child.stdout.read().splitlines() if x.strip()]
    assert runs >= 3, f"the optimizer ran only {runs} times beside the writer"
    c = sqlite3.connect(p)
    present = {r[0] for r in c.execute("SELECT id FROM t")}
    assert [i for i in acked if i not in present] == []
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
