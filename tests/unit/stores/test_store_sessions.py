"""SessionMemoryAgent (agents/builtin/session_memory.py): sessions with a sliding expiry,
turns appended in a bounded window, expired sessions purged on a timer."""
import time

import pytest

from unified_agents.server import HTTPError
from unified_agents.store import Store, StoreFull
from unified_agents.builtin.session_memory import MIGRATIONS, SessionDB


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sdb(tmp_path, clock):
    return SessionDB(Store(str(tmp_path / "sessions.db"), MIGRATIONS), default_ttl=60,
                     max_sessions=3, max_turns=4, max_chars=100, clock=clock)


def status_of(fn):
    with pytest.raises(HTTPError) as e:
        fn()
    return e.value.status, e.value.message


def test_a_session_keeps_its_turns_in_order(sdb):
    s = sdb.create({"metadata": {"user": "ana"}})
    sdb.append(s["id"], {"role": "user", "content": "hi"})
    sdb.append(s["id"], {"role": "assistant", "content": "hello", "meta": {"model": "x"}})
    got = sdb.get(s["id"])
    assert [(t["role"], t["content"]) for t in got["history"]] == [("user", "hi"),
                                                                  ("assistant", "hello")]
    assert got["metadata"] == {"user": "ana"} and got["turns"] == 2
    assert got["history"][1]["meta"] == {"model": "x"}


def test_writes_renew_the_expiry_reads_do_not(sdb, clock):
    s = sdb.create({"id": "s1", "ttl_s": 10})
    clock.now += 8
    sdb.get("s1")                                   # a read: no renewal
    sdb.append("s1", {"role": "user", "content": "still here"})   # renews to now + 10
    clock.now += 8
    assert sdb.get("s1")["turns"] == 1
    clock.now += 3
    st, msg = status_of(lambda: sdb.get("s1"))
    assert st == 404 and "expired" in msg
    assert s["expires"] == 1_000_000.0 + 10


def test_an_expired_session_refuses_turns_even_before_the_purge(sdb, clock):
    sdb.create({"id": "s1", "ttl_s": 5})
    clock.now += 6
    assert status_of(lambda: sdb.append("s1", {"role": "user", "content": "late"}))[0] == 404
    assert [s["id"] for s in sdb.list(10)] == []


def test_the_purge_deletes_expired_sessions_with_their_turns_and_keeps_live_ones(sdb, clock):
    sdb.create({"id": "old", "ttl_s": 5})
    sdb.append("old", {"role": "user", "content": "bye"})
    sdb.create({"id": "new", "ttl_s": 50})
    clock.now += 10
    assert sdb.purge() == 1
    c = sdb.store.conn()
    assert [r[0] for r in c.execute("SELECT id FROM sessions")] == ["new"]
    assert c.execute("SELECT count(*) FROM turns WHERE session_id = 'old'").fetchone()[0] == 0
    assert sdb.count() == 1 and sdb.purged == 1


def test_only_the_newest_turns_are_kept_per_session(sdb):
    sdb.create({"id": "s"})
    for i in range(7):
        sdb.append("s", {"role": "user", "content": f"m{i}"})
    got = sdb.get("s")
    assert [t["content"] for t in got["history"]] == ["m3", "m4", "m5", "m6"]
    assert got["turns"] == 4
    assert [t["content"] for t in sdb.get("s", limit=2)["history"]] == ["m5", "m6"]


def test_a_live_id_cannot_be_created_twice_but_an_expired_one_can_be_reused(sdb, clock):
    sdb.create({"id": "s", "ttl_s": 5})
    assert status_of(lambda: sdb.create({"id": "s"}))[0] == 409
    sdb.append("s", {"role": "user", "content": "old turn"})
    clock.now += 6
    sdb.create({"id": "s"})
    assert sdb.get("s")["history"] == []


def test_too_many_live_sessions_is_507_while_expired_ones_make_room(sdb, clock):
    for i in range(3):
        sdb.create({"id": f"s{i}", "ttl_s": 10 + i})
    with pytest.raises(StoreFull) as e:
        sdb.create({"id": "s3"})
    assert e.value.status == 507 and "SESSION_MAX_SESSIONS=3" in e.value.message
    clock.now += 10.5                                  # s0 expired, not yet purged
    assert sdb.create({"id": "s3"})["id"] == "s3"


def test_touch_renews_and_may_change_the_ttl(sdb, clock):
    sdb.create({"id": "s", "ttl_s": 5})
    clock.now += 4
    assert sdb.touch("s", {"ttl_s": 100})["expires"] == clock.now + 100
    clock.now += 50
    assert sdb.get("s")["ttl_s"] == 100


@pytest.mark.parametrize("call, status, needle", [
    (lambda s: s.create({"ttl_s": 0}), 400, "out of range"),
    (lambda s: s.create({"ttl_s": "10"}), 400, "must be an integer"),
    (lambda s: s.create({"id": "has space"}), 400, "characters outside"),
    (lambda s: s.create({"metadata": [1]}), 400, "JSON object"),
    (lambda s: s.create({"nope": 1}), 400, "unknown field(s) nope"),
    (lambda s: s.append("live", {"role": "user"}), 400, '"content" is missing'),
    (lambda s: s.append("live", {"role": "user", "content": "x" * 101}), 413, "0-100"),
    (lambda s: s.append("live", {"role": 3, "content": "x"}), 400, "must be a string"),
    (lambda s: s.append("nosuch", {"role": "user", "content": "x"}), 404, "no session"),
])
def test_bad_input_is_refused_naming_the_field(sdb, call, status, needle):
    sdb.create({"id": "live"})
    st, msg = status_of(lambda: call(sdb))
    assert st == status and needle in msg


# ----------------------------------------------------------------------------- over HTTP
def test_http_sessions_expire_and_are_purged_on_the_timer(start_agent, state_dir):
    a = start_agent("session_memory", SESSION_PURGE_S=0.2)
    st, s, _ = a.request("POST", "/sessions")              # no body at all: defaults
    assert st == 201 and s["ttl_s"] == 3600
    st, short, _ = a.request("POST", "/sessions", {"id": "brief", "ttl_s": 1})
    st, t, _ = a.request("POST", "/sessions/brief/turns", {"role": "user", "content": "hi"})
    assert st == 201 and t["turns"] == 1
    assert a.request("GET", "/sessions/brief")[1]["history"][0]["content"] == "hi"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st, h, _ = a.request("GET", "/health", health=True)
        if h["purged"] >= 1:
            break
        time.sleep(0.1)
    assert h["purged"] == 1 and h["sessions"] == 1
    assert a.request("GET", "/sessions/brief")[0] == 404
    st, res, _ = a.request("POST", "/task", {"type": "session_memory", "data": {
        "op": "append", "session": s["id"], "role": "user", "content": "via task"}})
    assert st == 200 and res["result"]["turns"] == 1
    for method, path, body, status in (
            ("POST", "/sessions", b"[oops", 400),
            ("POST", f"/sessions/{s['id']}/turns", b"", 400),
            ("POST", f"/sessions/{s['id']}/turns", {"role": "user", "content": 5}, 400),
            ("GET", "/sessions/bad%20id", None, 400),
            ("GET", f"/sessions/{s['id']}?limit=-1", None, 400),
            ("POST", "/task", {"type": "session_memory", "data": {"op": "get"}}, 400)):
        st, resp, _ = a.request(method, path, body)
        assert st == status, (path, resp)
    assert a.request("GET", "/health", health=True)[1]["status"] == "healthy"
