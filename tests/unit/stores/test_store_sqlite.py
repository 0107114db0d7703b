"""The SQLite helper every state agent uses (agents/store.py): WAL + synchronous=FULL,
migrations by user_version, integrity check with quarantine, bounded size, durability of
acknowledged writes across kill -9."""
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from unified_agents.server import HTTPError
from unified_agents.fts import fts_error, fts_query
from unified_agents.periodic import Periodic
from unified_agents.store import Store, StoreFull, StoreOpenError

from ..sdk.harness import ROOT

V1 = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"
V2 = "ALTER TABLE t ADD COLUMN tag TEXT"


def insert(c, v):
    return c.execute("INSERT INTO t(v) VALUES (?)", (v,)).lastrowid


def test_a_new_database_is_wal_with_full_sync_and_the_schema_of_every_migration(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1, V2])
    c = s.conn()
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2          # FULL
    assert c.execute("PRAGMA user_version").fetchone()[0] == 2
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2          # incremental
    s.write(lambda c: c.execute("INSERT INTO t(v, tag) VALUES ('x', 'y')"))
    assert [tuple(r) for r in s.query("SELECT v, tag FROM t")] == [("x", "y")]


def test_migrations_run_only_the_missing_steps_and_keep_the_data(tmp_path):
    p = str(tmp_path / "a.db")
    s1 = Store(p, [V1])
    s1.write(insert, "kept")
    s1.close()
    s2 = Store(p, [V1, V2])
    assert s2.query("PRAGMA user_version")[0][0] == 2
    assert [r["v"] for r in s2.query("SELECT v FROM t")] == ["kept"]


def test_a_failing_migration_changes_nothing_and_says_which_version(tmp_path):
    p = str(tmp_path / "a.db")
    Store(p, [V1]).close()
    bad = "ALTER TABLE t ADD COLUMN w TEXT; ALTER TABLE nosuch ADD COLUMN z TEXT"
    with pytest.raises(StoreOpenError, match="migration to schema version 2 failed"):
        Store(p, [V1, bad])
    c = sqlite3.connect(p)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 1
    assert [r[1] for r in c.execute("PRAGMA table_info(t)")] == ["id", "v"]  # no half step


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    p = str(tmp_path / "a.db")
    Store(p, [V1, V2]).close()
    with pytest.raises(StoreOpenError, match="schema version 2, newer than this code knows"):
        Store(p, [V1])


def test_a_corrupt_file_is_moved_aside_and_a_fresh_database_serves(tmp_path):
    p = tmp_path / "a.db"
    p.write_bytes(b"this is not sqlite" * 500)
    (tmp_path / "a.db-wal").write_bytes(b"junk")
    s = Store(str(p), [V1])
    assert s.quarantined and os.path.exists(s.quarantined)
    assert open(s.quarantined, "rb").read().startswith(b"this is not sqlite")
    assert os.path.exists(s.quarantined + "-wal")
    s.write(insert, "fresh")
    h = s.health()
    assert h["status"] == "degraded" and h["quarantined"] == s.quarantined


def test_with_on_corrupt_fail_a_corrupt_file_stops_the_start_and_is_left_alone(tmp_path):
    p = tmp_path / "a.db"
    p.write_bytes(b"x" * 8192)
    with pytest.raises(StoreOpenError, match="corrupt.*backup"):
        Store(str(p), [V1], on_corrupt="fail")
    assert p.read_bytes() == b"x" * 8192


def test_a_damaged_page_is_found_by_the_integrity_check(tmp_path):
    p = str(tmp_path / "a.db")
    s = Store(p, [V1])
    s.write(lambda c: [insert(c, "v" * 500) for _ in range(200)])
    s.close()
    with open(p, "r+b") as f:      # scribble over a b-tree page in the middle of the file
        f.seek(4096 * 3)
        f.write(os.urandom(4096))
    s2 = Store(p, [V1])
    assert s2.quarantined is not None
    assert s2.query("SELECT count(*) FROM t")[0][0] == 0


def test_a_write_past_max_bytes_is_a_507_and_the_store_keeps_working(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1], max_bytes=64 * 1024)
    with pytest.raises(StoreFull) as e:
        for _ in range(1000):
            s.write(insert, "x" * 4000)
    assert e.value.status == 507 and "is full" in e.value.message
    n = s.query("SELECT count(*) FROM t")[0][0]
    assert 0 < n < 1000
    s.write(lambda c: c.execute("DELETE FROM t WHERE id IN (SELECT id FROM t LIMIT 5)"))
    s.write(insert, "fits again")
    assert s.health()["status"] in ("ok", "degraded")


def test_an_exception_inside_a_write_rolls_back_everything_it_did(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1])

    def tx(c):
        insert(c, "a")
        insert(c, "b")
        raise HTTPError(400, "validation failed halfway")
    with pytest.raises(HTTPError):
        s.write(tx)
    assert s.query("SELECT count(*) FROM t")[0][0] == 0
    s.write(insert, "after")   # the connection is usable (no transaction left open)
    assert s.query("SELECT count(*) FROM t")[0][0] == 1


def test_threads_get_their_own_connection_and_all_concurrent_writes_commit(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1])
    seen = set()

    def work(n):
        seen.add(id(s.conn()))
        for i in range(50):
            s.write(insert, f"{n}-{i}")
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8
    assert s.query("SELECT count(*) FROM t")[0][0] == 400
    assert s.writes == 400


def test_readers_see_committed_data_while_another_connection_writes(tmp_path):
    p = str(tmp_path / "a.db")
    s = Store(p, [V1])
    s.write(insert, "one")
    other = sqlite3.connect(p, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                  # e.g. a restore holding the lock
    other.execute("INSERT INTO t(v) VALUES ('uncommitted')")
    assert [r["v"] for r in s.query("SELECT v FROM t")] == ["one"]  # WAL: not blocked
    other.execute("ROLLBACK")


def test_stats_and_health_describe_the_file(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1], max_bytes=1 << 20)
    s.write(insert, "x")
    st = s.health()
    assert st["status"] == "ok" and st["schema_version"] == 1 and st["synchronous"] == "FULL"
    assert st["bytes"] > 0 and st["max_bytes"] == 1 << 20 and st["writes"] == 1
    assert "unified_x_db_writes_total 1" in s.metrics_lines("unified_x")


CHILD = r"""
import sys
sys.path.insert(0, sys.argv[2])
from tests import conftest  # noqa: F401  (maps agents/ to unified_agents)
from unified_agents.store import Store
s = Store(sys.argv[1], ["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)"])
i = 0
while True:
    i += 1
    rid = s.write(lambda c: c.execute("INSERT INTO t(v) VALUES (?)", (f"v{i}",)).lastrowid)
    print(rid, flush=True)           # acknowledged only after COMMIT returned
"""


def test_every_acknowledged_write_survives_kill_9_of_the_writer(tmp_path):
    p = str(tmp_path / "a.db")
    child = subprocess.Popen([sys.executable, "-c", CHILD, p, str(ROOT)],
                             stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    acked = []
    deadline = time.monotonic() + 20
    while len(acked) < 300 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    acked += [int(x) for x in child.stdout.read().split()]  # lines already written
    assert len(acked) >= 300, f"the writer acknowledged only {len(acked)} writes"
    c = sqlite3.connect(p)   # what the restarted agent sees: WAL replayed
    present = {r[0] for r in c.execute("SELECT id FROM t")}
    missing = [i for i in acked if i not in present]
    assert missing == []
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_search_text_becomes_quoted_terms_so_no_user_input_is_a_syntax_error():
    assert fts_query("running dogs") == '"running" "dogs"'
    assert fts_query("embed* AND") == '"embed"* "AND"'
    assert fts_query('say "hi"', "any") == '"say" OR """hi"""'
    assert fts_query("a OR b", "fts5") == "a OR b"
    for bad, mode in (("", "all"), ("   ", "any"), ("x", "regex")):
        with pytest.raises(HTTPError) as e:
            fts_query(bad, mode)
        assert e.value.status == 400
    c = sqlite3.connect(":memory:")
    c.execute("CREATE VIRTUAL TABLE f USING fts5(x)")
    for q in ('AND', 'NEAR(', '"', 'a:b', '*', '-x', "(((", "^"):
        c.execute("SELECT * FROM f WHERE f MATCH ?", (fts_query(q),)).fetchall()
    with pytest.raises(sqlite3.OperationalError) as e:
        c.execute("SELECT * FROM f WHERE f MATCH ?", (fts_query("AND", "fts5"),))
    err = fts_error(e.value, "fts5")
    assert err is not None and err.status == 400 and "fts5: syntax error" in err.message
    assert fts_error(e.value, "all") is None   # quoted words never cause one: a real error


def test_a_periodic_task_keeps_running_after_an_exception():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
    p = Periodic("t", 0.02, fn).start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.stop()
    assert len(calls) >= 3 and p.errors == 1 and p.last_error == ""


def test_a_full_file_system_is_a_507_naming_the_path_and_health_degrades_until_freed(
        tmp_path, monkeypatch):
    import unified_agents.store as store
    s = Store(str(tmp_path / "a.db"), [V1], max_bytes=64 * 1024)
    free = {"bytes": 100 << 20}
    monkeypatch.setattr(store, "disk_free", lambda d: free["bytes"])
    free["bytes"] = 512 << 10       # the disk, not max_page_count, is what is short
    with pytest.raises(StoreFull) as e:
        for _ in range(1000):
            s.write(insert, "x" * 4000)
    assert e.value.status == 507
    assert f"the file system holding {s.path} is full (512 KiB free)" in e.value.message
    assert s.health()["status"] == "degraded" and "file system full" in s.health()["problem"]
    free["bytes"] = 100 << 20
    assert "file system" not in s.health().get("problem", "")   # max_bytes may still be near


def test_vacuum_free_gives_every_free_page_back_not_just_one(tmp_path):
    s = Store(str(tmp_path / "a.db"), [V1])
    for _ in range(200):
        s.write(insert, "x" * 2000)
    s.write(lambda c: c.execute("DELETE FROM t WHERE id > 10"))
    assert s.query("PRAGMA freelist_count")[0][0] > 50
    s.vacuum_free(100000)
    assert s.query("PRAGMA freelist_count")[0][0] == 0
    assert len(s.query("SELECT id FROM t")) == 10
