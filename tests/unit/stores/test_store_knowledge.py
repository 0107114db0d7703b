"""KnowledgeBase (agents/builtin/knowledge_base.py): documents with title, body and tags,
ranked full-text search with snippets, bounds and clear 400s."""
import pytest

from unified_agents.server import HTTPError
from unified_agents.store import Store, StoreFull
from unified_agents.builtin.knowledge_base import MIGRATIONS, KnowledgeDB


@pytest.fixture
def kb(tmp_path):
    return KnowledgeDB(Store(str(tmp_path / "knowledge.db"), MIGRATIONS), 50, 5000)


def add(kb, title, body, tags=()):
    return kb.add({"title": title, "body": body, "tags": list(tags)})["id"]


def test_a_document_round_trips_with_its_tags_and_source(kb):
    d = kb.add({"title": "VRAM", "body": "How VRAM is budgeted.", "tags": ["gpu", "ops"],
                "source": "docs/vram.md"})
    got = kb.get(d["id"])
    assert (got["title"], got["body"], got["tags"], got["source"], got["version"]) == \
        ("VRAM", "How VRAM is budgeted.", ["gpu", "ops"], "docs/vram.md", 1)


def test_a_title_match_ranks_above_a_body_mention(kb):
    body_only = add(kb, "Operations notes", "restart the agent; also check the watchdog " * 3)
    about = add(kb, "Watchdog", "What systemd does when an agent hangs.")
    hits = kb.search("watchdog")
    assert [h["id"] for h in hits] == [about, body_only]
    assert hits[0]["title_highlight"] == "[Watchdog]"
    assert "[watchdog]" in hits[1]["snippet"]


def test_search_stems_words_and_filters_by_tag(kb):
    a = add(kb, "Loading models", "The loader loads models lazily", ["models"])
    add(kb, "Loading audio", "Audio capture loads buffers", ["audio"])
    assert len(kb.search("load")) == 2                       # loading/loads/loader ~ load
    assert [h["id"] for h in kb.search("load", tag="models")] == [a]


def test_the_snippet_shows_the_words_around_the_match(kb):
    body = "filler " * 200 + "the socket holds connections while the agent restarts " + \
        "filler " * 200
    add(kb, "Sockets", body)
    snip = kb.search("connections")[0]["snippet"]
    assert "[connections]" in snip and len(snip) < 400 and snip.startswith("…")


def test_replace_reindexes_and_delete_unindexes(kb):
    i = add(kb, "Old title", "alpha words", ["t1"])
    kb.replace(i, {"title": "New title", "body": "beta words", "tags": ["t2"]})
    assert kb.search("alpha") == [] and [h["id"] for h in kb.search("beta")] == [i]
    assert kb.get(i)["version"] == 2
    assert [t["tag"] for t in kb.tags()] == ["t2"]
    kb.delete(i)
    assert kb.search("beta") == [] and kb.tags() == []
    for fn in (lambda: kb.get(i), lambda: kb.delete(i),
               lambda: kb.replace(i, {"title": "x", "body": "y"})):
        with pytest.raises(HTTPError) as e:
            fn()
        assert e.value.status == 404


def test_listing_is_newest_first_in_pages_and_by_tag(kb):
    ids = [add(kb, f"doc {n}", "b", ["even" if n % 2 == 0 else "odd"]) for n in range(5)]
    page = kb.list(2)
    assert [d["id"] for d in page["documents"]] == ids[::-1][:2] and "body" not in \
        page["documents"][0]
    nxt = kb.list(2, before_id=page["next_before_id"])
    assert [d["id"] for d in nxt["documents"]] == ids[::-1][2:4]
    assert [d["id"] for d in kb.list(10, tag="even")["documents"]] == [ids[4], ids[2], ids[0]]


@pytest.mark.parametrize("doc, status, needle", [
    ({"body": "b"}, 400, '"title" is missing'),
    ({"title": "   ", "body": "b"}, 400, '"title" is blank'),
    ({"title": 5, "body": "b"}, 400, '"title" must be a string'),
    ({"title": "t", "body": "b" * 5001}, 413, "allowed: 1-5000"),
    ({"title": "t" * 513, "body": "b"}, 413, "allowed: 1-512"),
    ({"title": "t", "body": "b", "tags": [1]}, 400, "list of strings"),
    ({"title": "t", "body": "b", "author": "x"}, 400, "unknown field(s) author"),
    (["t", "b"], 400, "must be a JSON object"),
])
def test_bad_documents_are_refused_naming_the_field(kb, doc, status, needle):
    with pytest.raises(HTTPError) as e:
        kb.add(doc)
    assert e.value.status == status and needle in e.value.message
    assert kb.count() == 0


def test_a_full_knowledge_base_refuses_new_documents_with_507(tmp_path):
    kb = KnowledgeDB(Store(str(tmp_path / "k.db"), MIGRATIONS), 2, 100)
    add(kb, "a", "b")
    add(kb, "c", "d")
    with pytest.raises(StoreFull) as e:
        add(kb, "e", "f")
    assert e.value.status == 507 and kb.count() == 2


# ----------------------------------------------------------------------------- over HTTP
def test_http_documents_search_and_task(start_agent):
    a = start_agent("knowledge_base")
    st, d, _ = a.request("POST", "/documents", {"title": "Circuit breakers",
                                                "body": "A breaker opens after failures.",
                                                "tags": ["coordinator"]})
    assert st == 201
    assert a.request("GET", f"/documents/{d['id']}")[1]["title"] == "Circuit breakers"
    st, res, _ = a.request("GET", "/search?q=breaker&tag=coordinator")
    assert st == 200 and res["hits"][0]["id"] == d["id"]
    st, res, _ = a.request("POST", "/task", {"type": "knowledge_search", "data": "failures"})
    assert st == 200 and res["result"]["hits"][0]["id"] == d["id"]
    st, res, _ = a.request("PUT", f"/documents/{d['id']}", {"title": "Breakers", "body": "x"})
    assert st == 200 and res["version"] == 2
    assert a.request("DELETE", f"/documents/{d['id']}")[0] == 200
    for method, path, body, status in (
            ("POST", "/documents", b"{bad", 400),
            ("POST", "/documents", {"title": "t"}, 400),
            ("GET", "/documents/abc", None, 400),
            ("GET", "/documents/999", None, 404),
            ("GET", "/search?q=", None, 400),
            ("GET", "/search?q=%22x&mode=fts5", None, 400),
            ("GET", "/documents?limit=0", None, 400),
            ("POST", "/task", {"type": "knowledge_search", "data": {"limit": 3}}, 400)):
        st, resp, _ = a.request(method, path, body)
        assert st == status, (path, resp)
    st, h, _ = a.request("GET", "/health", health=True)
    assert st == 200 and h["status"] == "healthy" and h["documents"] == 0
