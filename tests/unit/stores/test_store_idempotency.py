"""POST /task runs at most once per Idempotency-Key (agents/idempotency.py): a repeat answers
the first result; for a state agent the key, the answer and the writes commit together, so
that holds across a crash and a restart of the store."""
import json
import threading

import pytest

from unified_agents.idempotency import HEADER, REPLAYED, Keys, prune
from unified_agents.server import HTTPError, Response
from unified_agents.store import Store

MIGRATIONS = ["CREATE TABLE effects(id INTEGER PRIMARY KEY, what TEXT NOT NULL)"]


@pytest.fixture
def db(tmp_path):
    return tmp_path / "agent.db"


def effects(store) -> list:
    return [r[0] for r in store.query("SELECT what FROM effects ORDER BY id")]


def add_effect(store, what: str):
    """A task handler with a durable effect (an insert) → its Response."""
    def handle():
        n = store.write(lambda c: c.execute("INSERT INTO effects(what) VALUES (?)",
                                            (what,)).lastrowid)
        return Response.json({"row": n, "what": what})
    return handle


def test_a_repeated_key_answers_the_first_result_and_writes_once(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()
    first = keys.run("k1", b'{"a":1}', add_effect(store, "one"), store)
    again = keys.run("k1", b'{"a":1}', add_effect(store, "one"), store)
    assert effects(store) == ["one"]
    assert again.status == first.status and again.body == first.body
    assert again.headers == {REPLAYED: "true"} and not first.headers
    keys.run("k2", b'{"a":1}', add_effect(store, "two"), store)   # another key: another task
    assert effects(store) == ["one", "two"]


def test_the_same_key_with_another_body_is_422(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()
    keys.run("k1", b'{"a":1}', add_effect(store, "one"), store)
    with pytest.raises(HTTPError) as e:
        keys.run("k1", b'{"a":2}', add_effect(store, "other"), store)
    assert e.value.status == 422 and "different task body" in e.value.message
    assert effects(store) == ["one"]


def test_the_first_answer_survives_a_restart_of_the_store(db):
    store = Store(str(db), MIGRATIONS)
    first = Keys().run("k1", b"{}", add_effect(store, "one"), store)
    store.close()
    store = Store(str(db), MIGRATIONS)                 # a new process: nothing in memory
    again = Keys().run("k1", b"{}", add_effect(store, "one"), store)
    assert again.body == first.body and again.headers == {REPLAYED: "true"}
    assert effects(store) == ["one"]


def test_a_task_dying_before_its_commit_leaves_neither_effect_nor_key(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()

    def dies_after_writing():
        add_effect(store, "half")()
        raise SystemExit("killed")                     # the process ends before COMMIT
    with pytest.raises(SystemExit):
        keys.run("k1", b"{}", dies_after_writing, store)
    assert effects(store) == []
    resp = keys.run("k1", b"{}", add_effect(store, "one"), store)   # the retry runs it
    assert not resp.headers and effects(store) == ["one"]


def test_a_failed_task_is_not_remembered_and_its_writes_are_undone(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()

    def refuses():
        add_effect(store, "partial")()
        raise HTTPError(400, "bad input found late")
    with pytest.raises(HTTPError):
        keys.run("k1", b"{}", refuses, store)

    def answers_503():
        add_effect(store, "partial")()
        return Response.json({"error": "busy"}, 503)
    assert keys.run("k1", b"{}", answers_503, store).status == 503
    assert effects(store) == []
    keys.run("k1", b"{}", add_effect(store, "one"), store)
    assert effects(store) == ["one"]


def test_a_repeat_while_the_first_runs_is_409_in_progress(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        assert release.wait(10)
        return add_effect(store, "one")()
    t = threading.Thread(target=keys.run, args=("k1", b"{}", slow, store))
    t.start()
    assert started.wait(10)
    with pytest.raises(HTTPError) as e:
        keys.run("k1", b"{}", add_effect(store, "one"), store)
    release.set()
    t.join(10)
    assert e.value.status == 409 and e.value.headers == {"Retry-After": "1"}
    assert "still running" in e.value.message
    assert effects(store) == ["one"]


def test_without_a_store_keys_are_remembered_in_memory_up_to_a_bound():
    keys = Keys(max_keys=2)
    runs = []

    def handle():
        runs.append(1)
        return Response.json({"n": len(runs)})
    for k in ("a", "b", "a", "c"):
        keys.run(k, b"{}", handle)
    assert len(runs) == 3                              # "a" ran once
    keys.run("a", b"{}", handle)                       # used last but one: remembered ...
    assert len(runs) == 3
    keys.run("b", b"{}", handle)                       # ... "b" was the oldest: forgotten
    assert len(runs) == 4


def test_old_keys_are_pruned_by_age_and_count(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()
    for i in range(5):
        keys.run(f"k{i}", b"{}", add_effect(store, str(i)), store)
    store.write(lambda c: c.execute("UPDATE unified_idempotency SET created = 0 WHERE key = 'k0'"))
    store.write(lambda c: prune(c, max_keys=3))
    left = sorted(r[0] for r in store.query("SELECT key FROM unified_idempotency"))
    assert left == ["k2", "k3", "k4"]


def test_store_transaction_joins_writes_and_reads_of_its_thread(db):
    store = Store(str(db), MIGRATIONS)
    with store.transaction():
        store.write(lambda c: c.execute("INSERT INTO effects(what) VALUES ('a')"))
        with pytest.raises(RuntimeError):              # a caught failure undoes its write only
            store.write(lambda c: (c.execute("INSERT INTO effects(what) VALUES ('b')"),
                                   (_ for _ in ()).throw(RuntimeError("no"))))
        assert store.read(lambda c: c.execute("SELECT count(*) FROM effects").fetchone()[0]) == 1
    assert effects(store) == ["a"]


# ------------------------------------------------------------------ over HTTP
def task(proc, data, key=None):
    headers = {HEADER: key} if key else {}
    return proc.request("POST", "/task", {"type": "memory", "data": data}, headers=headers)


def test_memoryclient_answers_a_repeated_key_from_its_database_even_after_a_restart(
        start_agent):
    mem = start_agent("memory_client", name="MemoryClient")
    put = {"op": "put", "namespace": "idem", "key": "k", "value": "v"}
    status, first, h1 = task(mem, put, "key-1")
    assert status == 200 and first["result"]["version"] == 1 and REPLAYED not in h1
    status, again, h2 = task(mem, put, "key-1")
    assert status == 200 and again == first and h2[REPLAYED] == "true"
    mem.stop()                                         # kill: SIGKILL
    mem = start_agent("memory_client", name="MemoryClient")
    status, again, h3 = task(mem, put, "key-1")
    assert again == first and h3[REPLAYED] == "true"
    status, other, _ = task(mem, dict(put, value="w"), "key-1")
    assert status == 422
    status, bad, _ = task(mem, put, "a key with spaces")
    assert status == 400 and HEADER in bad["error"]
    status, fresh, _ = task(mem, put)                  # no key: runs every time
    assert fresh["result"]["version"] == 2
    got = mem.request("GET", "/items/idem/k")[1]
    assert got["version"] == 2 and json.dumps(got["value"]) == '"v"'


def test_an_async_handler_is_remembered_in_memory():
    import asyncio

    keys = Keys()
    runs = []

    async def handle():
        runs.append(1)
        return Response.json({"n": len(runs)})
    first = asyncio.run(keys.run_async("k", b"{}", handle))
    again = asyncio.run(keys.run_async("k", b"{}", handle))
    assert len(runs) == 1 and again.body == first.body and again.headers == {REPLAYED: "true"}


def test_a_keyed_task_that_only_reads_leaves_no_key_in_the_store(db):
    store = Store(str(db), MIGRATIONS)
    keys = Keys()

    def lookup():
        return Response.json({"rows": len(effects(store))})
    keys.run("read-1", b"{}", lookup, store)
    assert store.query("SELECT count(*) FROM unified_idempotency")[0][0] == 0


def test_answers_kept_in_memory_are_bounded_in_bytes_too():
    keys = Keys(max_keys=100, max_bytes=250)
    for k in ("a", "b", "c"):
        keys.run(k, b"{}", lambda: Response(200, b"x" * 100, "text/plain"))
    assert list(keys.done) == ["b", "c"] and keys.bytes == 200
