"""The hub's journald follower: counts per agent and priority, last errors, systemd's own
messages about our units, the journalctl command line, and the position (cursor + counts)
kept across restarts, also when the saved cursor is no longer valid."""
from __future__ import annotations

import json
import time

from unified_agents.builtin.hub_journal import (PRIORITIES, JournalFollower, agent_of_unit,
                                                message_text)
from unified_core.timefmt import boot_time

from .conftest import HERE, wait_for

KNOWN = {"Worker", "Sleeper", "RequestCoordinator"}


def entry(unit, msg="hello", prio=6, pid="4242", cursor="c1", **extra):
    e = {"__CURSOR": cursor, "__REALTIME_TIMESTAMP": str(int(time.time() * 1e6)),
         "PRIORITY": str(prio), "MESSAGE": msg, "_PID": pid}
    if pid == "1":
        e["UNIT"], e["_SYSTEMD_UNIT"] = unit, "init.scope"
    else:
        e["_SYSTEMD_UNIT"] = unit
    e.update(extra)
    return e


def follower(tmp_path=None, **kw):
    path = str(tmp_path / "journal.json") if tmp_path is not None else None
    return JournalFollower(path, known=lambda: KNOWN, **kw)


def test_agent_names_come_from_the_unit():
    assert agent_of_unit("unified-agent@STTService.service") == "STTService"
    assert agent_of_unit("unified-agent@STTService.socket") == "STTService"
    assert agent_of_unit("unified-backend@Legacy.service") == "Legacy"
    assert agent_of_unit("sshd.service") is None and agent_of_unit("unified-agent@") is None


def test_counts_per_agent_and_priority_name():
    f = follower()
    f.handle(entry("unified-agent@Worker.service", prio=6))
    f.handle(entry("unified-agent@Worker.service", prio=6))
    f.handle(entry("unified-agent@Worker.service", prio=3, msg="Worker boom"))
    f.handle(entry("unified-agent@Sleeper.service", prio=4))
    counts, errors = f.snapshot()
    assert dict(zip(PRIORITIES, counts["Worker"]))["info"] == 2
    assert dict(zip(PRIORITIES, counts["Worker"]))["err"] == 1
    assert dict(zip(PRIORITIES, counts["Sleeper"]))["warning"] == 1
    assert [e["message"] for e in errors["Worker"]] == ["Worker boom"]
    assert "Sleeper" not in errors            # an agent's warning is not an error
    assert (f.lines, f.lines_ours) == (4, 4)


def test_systemd_messages_about_our_units_count_and_wake_the_systemd_collector():
    woken = []
    f = follower(on_unit_event=woken.append)
    f.handle(entry("unified-agent@Worker.service", pid="1", prio=4,
                   msg="unified-agent@Worker.service: Failed with result 'signal'."))
    f.handle(entry("unified-agent@Worker.service", pid="1", prio=6, msg="Started ..."))
    f.handle(entry("cron.service", pid="1", prio=4, msg="something else"))
    counts, errors = f.snapshot()
    assert woken == ["Worker", "Worker"]
    assert sum(counts["Worker"]) == 2
    (err,) = errors["Worker"]
    assert err["source"] == "systemd" and err["priority"] == "warning"
    assert "Failed with result" in err["message"]
    assert f.lines == 3 and f.lines_ours == 2


def test_agents_outside_the_catalog_and_other_units_are_read_but_not_counted():
    f = follower()
    f.handle(entry("unified-agent@Stranger.service"))
    f.handle(entry("hub-logbench.service"))
    assert f.snapshot() == ({}, {}) and f.lines == 2 and f.lines_ours == 0


def test_last_errors_keep_the_five_newest_and_messages_are_bounded():
    f = follower()
    for i in range(8):
        f.handle(entry("unified-agent@Worker.service", prio=2, msg=f"crit {i}"))
    f.handle(entry("unified-agent@Worker.service", prio=3, msg="x" * 5000))
    errs = f.snapshot()[1]["Worker"]
    assert [e["message"][:6] for e in errs] == ["crit 4", "crit 5", "crit 6", "crit 7", "xxxxxx"]
    assert len(errs[-1]["message"]) <= 400


def test_binary_messages_and_torn_lines_do_not_break_anything():
    assert message_text(list(b"caf\xc3\xa9 \xff")) == "café \ufffd"
    assert message_text(None) == ""
    f = follower()
    f.feed(b'{"__CURSOR": "c1", "_SYSTEMD_UNIT": "unified-agent@Worker.serv')
    f.feed(b"[1, 2]\n")
    f.feed(json.dumps(entry("unified-agent@Worker.service", prio="bogus")).encode())
    counts, _ = f.snapshot()
    assert dict(zip(PRIORITIES, counts["Worker"]))["info"] == 1


def test_command_line_follows_the_slice_and_systemd_and_starts_where_it_stopped(tmp_path):
    f = follower(tmp_path, journalctl="/bin/journalctl")
    a = f.args()
    assert a[:3] == ["/bin/journalctl", "--follow", "--merge"] and "--output=json" in a
    assert a[-3:] == ["_SYSTEMD_SLICE=unified-agents.slice", "+", "_PID=1"]
    assert f"--since=@{boot_time():.0f}" in a and "--lines=all" in a
    f.last_ts = 1234.5
    assert "--since=@1234.500000" in f.args()
    f.cursor = "s=abc;i=1"
    assert "--after-cursor=s=abc;i=1" in f.args() and not any(
        x.startswith("--since") for x in f.args())


def test_state_is_saved_atomically_and_loaded_back(tmp_path):
    f = follower(tmp_path)
    assert not f.save()                        # nothing read yet: nothing to write
    f.handle(entry("unified-agent@Worker.service", prio=3, msg="boom", cursor="c7"))
    assert f.save()
    data = json.loads((tmp_path / "journal.json").read_text())
    assert data["cursor"] == "c7" and data["counts"] == {"Worker": {"err": 1}}
    assert not list(tmp_path.glob("*.tmp"))
    g = follower(tmp_path)
    assert g.cursor == "c7" and g.snapshot() == f.snapshot() and g.lines == 1


def test_an_unreadable_state_file_is_ignored_with_a_note(tmp_path):
    (tmp_path / "journal.json").write_text("{not json")
    f = follower(tmp_path)
    assert f.cursor is None and f.snapshot() == ({}, {})
    assert "ignored unreadable" in f.status()["save_error"]


# ------------------------------------------------------------------ a real subprocess
def fake_journal(tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    path.write_text("")
    monkeypatch.setenv("HUB_FAKE_JOURNAL", str(path))
    return path


def append(path, *entries):
    with open(path, "a") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")


def test_follows_journalctl_and_continues_after_the_saved_cursor(tmp_path, monkeypatch):
    jpath = fake_journal(tmp_path, monkeypatch)
    append(jpath, *(entry("unified-agent@Worker.service", cursor=f"c{i}") for i in range(1, 4)))
    jc = str(HERE / "bin" / "journalctl")
    f = follower(tmp_path, journalctl=jc, save_every_s=0.1).start()
    try:
        wait_for(lambda: f.lines == 3, what="3 lines read")
        append(jpath, entry("unified-agent@Worker.service", prio=3, msg="late", cursor="c4"))
        wait_for(lambda: f.lines == 4, what="a line appended later")
        assert f.status()["running"] and f.status()["ok"]
    finally:
        f.stop()                               # saves
    append(jpath, entry("unified-agent@Worker.service", cursor="c5"))
    g = follower(tmp_path, journalctl=jc).start()
    try:
        wait_for(lambda: g.lines == 5, what="the line written while stopped")
        time.sleep(0.3)
        assert g.lines == 5                    # c1..c4 not read twice
        assert sum(g.snapshot()[0]["Worker"]) == 5
    finally:
        g.stop()
    args = [json.loads(x) for x in (tmp_path / "journal.jsonl.args").read_text().splitlines()]
    assert "--after-cursor=c4" in args[-1], [[x for x in a if "cursor" in x or "since" in x] for a in args]


def test_an_invalid_saved_cursor_falls_back_to_the_time_of_the_last_entry(tmp_path,
                                                                          monkeypatch):
    jpath = fake_journal(tmp_path, monkeypatch)
    append(jpath, entry("unified-agent@Worker.service", cursor="c1"))
    (tmp_path / "journal.json").write_text(json.dumps(
        {"cursor": "vacuumed-away", "last_ts": 1.0, "lines": 10, "counts": {}}))
    f = follower(tmp_path, journalctl=str(HERE / "bin" / "journalctl"))
    f.start()
    try:
        wait_for(lambda: f.lines == 11, timeout=15, what="read again after the bad cursor")
    finally:
        f.stop()
    args = [json.loads(x) for x in (tmp_path / "journal.jsonl.args").read_text().splitlines()]
    assert "--after-cursor=vacuumed-away" in args[0]
    assert "--since=@1.000000" in args[1]
