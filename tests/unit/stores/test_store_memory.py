"""MemoryClient (agents/builtin/memory_client.py): items in namespaces, put/get/delete/list,
full-text search, bounds and clear 400s, and acknowledged writes surviving kill -9."""
import threading
import time
import urllib.parse

import pytest

from unified_agents.server import HTTPError
from unified_agents.store import Store, StoreFull
from unified_agents.builtin.memory_client import MIGRATIONS, MemoryDB, extract_text

from ..sdk.harness import listening_socket


@pytest.fixture
def mem(tmp_path):
    return MemoryDB(Store(str(tmp_path / "memory.db"), MIGRATIONS), 100, 2048)


def test_put_creates_then_replaces_with_a_new_version(mem):
    created, item = mem.put("notes", "k1", {"value": {"text": "first"}, "tags": ["a"]})
    assert created and item["version"] == 1
    created, item = mem.put("notes", "k1", {"value": "second", "tags": ["b", "b"]})
    assert not created and item["version"] == 2 and item["tags"] == ["b"]
    got = mem.get("notes", "k1")
    assert got["value"] == "second" and got["tags"] == ["b"] and got["version"] == 2


def test_namespaces_keep_equal_keys_apart(mem):
    mem.put("a", "k", {"value": 1})
    mem.put("b", "k", {"value": 2})
    assert mem.get("a", "k")["value"] == 1 and mem.get("b", "k")["value"] == 2
    assert [(n["namespace"], n["items"]) for n in mem.namespaces()] == [("a", 1), ("b", 1)]
    assert mem.delete_namespace("a") == {"deleted": 1, "namespace": "a"}
    with pytest.raises(HTTPError) as e:
        mem.get("a", "k")
    assert e.value.status == 404


def test_delete_removes_the_item_and_its_search_entry(mem):
    mem.put("n", "k", {"value": "zebra crossing"})
    assert len(mem.search("zebra")) == 1
    assert mem.delete("n", "k")["deleted"] is True
    assert mem.search("zebra") == []
    with pytest.raises(HTTPError) as e:
        mem.delete("n", "k")
    assert e.value.status == 404


def test_list_pages_through_keys_in_order_with_prefix(mem):
    for k in ("b1", "a1", "b2", "b3", "c1"):
        mem.put("n", k, {"value": k})
    page = mem.list("n", 2, prefix="b")
    assert [i["key"] for i in page["items"]] == ["b1", "b2"] and "value" not in page["items"][0]
    page2 = mem.list("n", 2, after=page["next_after"], prefix="b", values=True)
    assert [(i["key"], i["value"]) for i in page2["items"]] == [("b3", "b3")]
    assert "next_after" not in page2


def test_search_finds_words_inside_nested_values_with_stemming_and_ranks_them(mem):
    mem.put("n", "doc1", {"value": {"title": "Cooking", "steps": ["boil water", "add pasta"]}})
    mem.put("n", "doc2", {"value": "pasta pasta pasta with pasta sauce"})
    mem.put("n", "doc3", {"value": "the dog was running"})
    hits = mem.search("pasta")
    assert [h["key"] for h in hits] == ["doc2", "doc1"]         # more mentions rank first
    assert hits[0]["score"] >= hits[1]["score"]
    assert "[pasta]" in hits[0]["snippet"]
    assert [h["key"] for h in mem.search("runs")] == ["doc3"]  # porter: runs ~ running
    assert [h["key"] for h in mem.search("boil* pasta")] == ["doc1"]
    assert {h["key"] for h in mem.search("dog water", mode="any")} == {"doc1", "doc3"}


def test_search_filters_by_namespace_and_whole_tags(mem):
    mem.put("a", "1", {"value": "apple pie", "tags": ["food", "sweet"]})
    mem.put("b", "2", {"value": "apple tree", "tags": ["plant"]})
    mem.put("a", "3", {"value": "apple juice", "tags": ["sweetener"]})
    assert {h["key"] for h in mem.search("apple", ns="a")} == {"1", "3"}
    assert [h["key"] for h in mem.search("apple", tag="sweet")] == ["1"]


def test_fts5_syntax_errors_are_400_not_500(mem):
    mem.put("n", "k", {"value": "x"})
    for ns in (None, "n", "empty"):   # the query is parsed even where no row could match
        with pytest.raises(HTTPError) as e:
            mem.search('"unbalanced', mode="fts5", ns=ns)
        assert e.value.status == 400
    assert mem.store.health()["status"] == "ok"   # a user's typo is not a database problem


@pytest.mark.parametrize("body, status, needle", [
    ({}, 400, '"value" is missing'),
    ({"value": 1, "extra": 2}, 400, "unknown field(s) extra"),
    ({"value": "x" * 3000}, 413, "allowed: at most 2048"),
    ({"value": 1, "tags": "a"}, 400, '"tags" must be a list of strings'),
    ({"value": 1, "tags": ["has space"]}, 400, "no spaces"),
    ({"value": 1, "tags": ["t"] * 40}, 413, "at most 32"),
])
def test_bad_items_are_refused_naming_the_field(mem, body, status, needle):
    with pytest.raises(HTTPError) as e:
        mem.put("n", "k", body)
    assert e.value.status == status and needle in e.value.message
    assert mem.count() == 0


def test_beyond_the_item_limit_a_new_key_is_507_but_replacing_one_still_works(tmp_path):
    mem = MemoryDB(Store(str(tmp_path / "m.db"), MIGRATIONS), 2, 2048)
    mem.put("n", "a", {"value": 1})
    mem.put("n", "b", {"value": 2})
    with pytest.raises(StoreFull) as e:
        mem.put("n", "c", {"value": 3})
    assert e.value.status == 507 and "MEMORYCLIENT_MAX_ITEMS=2" in e.value.message
    assert mem.put("n", "a", {"value": 10})[1]["version"] == 2
    mem.delete("n", "b")
    assert mem.put("n", "c", {"value": 3})[0] is True


def test_text_extraction_takes_every_string_in_document_order():
    assert extract_text({"a": "x", "b": [1, "y", {"c": "z"}], "d": None}) == "x\ny\nz"
    assert extract_text(42) == ""


# ----------------------------------------------------------------------------- over HTTP
@pytest.fixture
def agent(start_agent):
    return start_agent("memory_client", MEMORYCLIENT_MAX_VALUE_BYTES=1024,
                       MEMORYCLIENT_MAX_ITEMS=500)


def test_http_put_get_search_delete(agent):
    st, body, _ = agent.request("PUT", "/items/notes/greeting", {"value": "hello world",
                                                                 "tags": ["t1"]})
    assert st == 201 and body["version"] == 1
    st, body, _ = agent.request("PUT", "/items/notes/greeting", {"value": "hello again"})
    assert st == 200 and body["version"] == 2
    st, body, _ = agent.request("GET", "/items/notes/greeting")
    assert st == 200 and body["value"] == "hello again"
    st, body, _ = agent.request("POST", "/items/notes", {"value": "generated key"})
    assert st == 201 and len(body["key"]) > 10
    st, body, _ = agent.request("GET", "/search?q=hello&namespace=notes")
    assert st == 200 and [h["key"] for h in body["hits"]] == ["greeting"]
    key = urllib.parse.quote("a/b c", safe="")
    assert agent.request("PUT", f"/items/notes/{key}", {"value": 1})[0] == 201
    assert agent.request("GET", "/items/notes/a%2Fb%20c")[1]["key"] == "a/b c"
    assert agent.request("DELETE", "/items/notes/greeting")[0] == 200
    assert agent.request("GET", "/items/notes/greeting")[0] == 404
    st, body, _ = agent.request("POST", "/task", {"type": "memory", "data": {
        "op": "put", "namespace": "t", "key": "k", "value": {"x": "via task"}}})
    assert st == 200 and body["result"]["version"] == 1
    st, body, _ = agent.request("POST", "/task", {"type": "memory",
                                                  "data": {"op": "search", "q": "task"}})
    assert [h["key"] for h in body["result"]["hits"]] == ["k"]


@pytest.mark.parametrize("method, path, body, status", [
    ("PUT", "/items/notes/k", b"{not json", 400),
    ("PUT", "/items/notes/k", b"", 400),
    ("PUT", "/items/notes/k", [1, 2], 400),
    ("PUT", "/items/notes/k", {"value": "x" * 2000}, 413),
    ("PUT", "/items/bad%20ns/k", {"value": 1}, 400),
    ("PUT", "/items/" + "n" * 65 + "/k", {"value": 1}, 413),
    ("PUT", "/items/notes/" + "k" * 300, {"value": 1}, 400),
    ("GET", "/search", None, 400),
    ("GET", "/search?q=x&limit=abc", None, 400),
    ("GET", "/search?q=x&bogus=1", None, 400),
    ("GET", "/search?q=AND&mode=fts5", None, 400),
    ("POST", "/task", {"type": "memory", "data": {"op": "explode"}}, 400),
    ("POST", "/task", {"type": "memory", "data": "nope"}, 400),
])
def test_http_bad_input_is_a_clear_400_and_the_agent_stays_healthy(agent, method, path, body,
                                                                   status):
    st, resp, _ = agent.request(method, path, body)
    assert st == status, resp
    assert isinstance(resp, dict) and resp["error"]
    st, health, _ = agent.request("GET", "/health", health=True)
    assert st == 200 and health["status"] == "healthy"
    assert agent.proc.poll() is None


def test_http_health_and_metrics_show_the_database(agent):
    agent.request("PUT", "/items/n/k", {"value": 1})
    st, h, _ = agent.request("GET", "/health", health=True)
    assert h["implementation"] == "builtin" and h["items"] == 1
    assert h["checks"]["database"]["status"] == "ok"
    assert h["checks"]["database"]["synchronous"] == "FULL"
    st, text, _ = agent.request("GET", "/metrics", health=True)
    assert b"unified_memory_items 1" in text and b"unified_memory_db_writes_total" in text


def test_http_acknowledged_puts_survive_kill_9_during_writes(start_agent):
    lsock = listening_socket()          # held like systemd's socket: survives the agent
    a = start_agent("memory_client", lsock=lsock)
    acked, errors, stop = [], [], threading.Event()

    def writer(n):
        i = 0
        while not stop.is_set():
            i += 1
            key = f"w{n}-{i}"
            try:
                st, _, _ = a.request("PUT", f"/items/load/{key}", {"value": key}, timeout=5)
                if st in (200, 201):
                    acked.append(key)
            except OSError as e:        # the connection the kill cut: not acknowledged
                errors.append(type(e).__name__)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    a.proc.kill()                       # kill -9 in the middle of the writes
    a.proc.wait(5)
    b = start_agent("memory_client", lsock=lsock)   # what systemd's Restart= does
    time.sleep(0.3)                     # writes queued in the socket reach the new process
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 200
    stored = {i["key"] for page in _all_keys(b, "load") for i in page}
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged writes"


def _all_keys(agent, ns):
    after = ""
    while True:
        st, body, _ = agent.request("GET", f"/items/{ns}?limit=1000&after={after}")
        assert st == 200
        yield body["items"]
        if "next_after" not in body:
            return
        after = urllib.parse.quote(body["next_after"])
