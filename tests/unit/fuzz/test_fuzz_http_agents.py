"""Every HTTP endpoint of every builtin agent and of the reference agent, under random
requests (fuzz_http.py says what a request is and what every answer must be).

After each agent's batch: the process runs, /health is no worse than before the batch, and
its state is intact: SQLite `PRAGMA integrity_check` of every database, a record written
before the batch where the fuzzer cannot reach it is still there, a write and read round
trip works, and the agent's main views still answer with their data.
"""
from __future__ import annotations

import importlib
import json
import sqlite3

import pytest
from hypothesis import given, settings

from ..sdk.harness import Spawner, sdk_path  # noqa: F401  (fixture)
from .conftest import examples
from .fuzz_fleet import BUILTINS, NAMES, TASKS, FuzzFleet
from .fuzz_http import (RANK, Coverage, alive, check_answer, health, requests, sdk_routes,
                        send)

# examples per agent: more where there is more to break
EXAMPLES = {"MemoryClient": 550, "KnowledgeBase": 450, "SessionMemoryAgent": 450,
            "SystemDigitalTwin": 450, "ModelManagerSuite": 450, "VRAMOptimizerAgent": 300,
            "ServiceRegistry": 300, "RequestCoordinator": 300, "LazyLoader": 300, "Echo": 250}
DATABASES = {"MemoryClient": "memory.db", "KnowledgeBase": "knowledge.db",
             "SessionMemoryAgent": "sessions.db", "SystemDigitalTwin": "twin.db"}
COUNTS: dict = {}


def agent_class(run: str):
    if run == "reference":
        from unified_agents.reference import ReferenceAgent
        return ReferenceAgent
    return importlib.import_module(f"unified_agents.builtin.{run.split(':')[1]}").AGENT


@pytest.fixture(scope="module")
def fleet(sdk_path, tmp_path_factory):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path_factory.mktemp("fuzzfleet"))
    f = FuzzFleet(tmp_path_factory.mktemp("world"), sp)
    try:
        f.start_all()
        yield f
    finally:
        sp.close()
        if COUNTS:
            print("\nfuzz requests per agent:", json.dumps(COUNTS, sort_keys=True),
                  "total", sum(COUNTS.values()))


def call(f, name, method, path, obj=None, health_port=False):
    ports = {"agent": f.ports[name], "health": f.health_ports[name]}
    data = None if obj is None else json.dumps(obj).encode()
    status, ctype, payload = send(ports, "health" if health_port else "agent", method, path,
                                  data, {"Content-Type": "application/json"})
    return status, (json.loads(payload) if payload and "json" in ctype else payload)


# ------------------------------------------------------------------ per-agent state checks
def before_memory(f):
    assert call(f, "MemoryClient", "PUT", "/items/canary/keep", {"value": {"n": 42}})[0] in (200, 201)


def after_memory(f):
    assert call(f, "MemoryClient", "GET", "/items/canary/keep")[1]["value"] == {"n": 42}
    assert call(f, "MemoryClient", "PUT", "/items/after/k", {"value": "v"})[0] in (200, 201)
    assert call(f, "MemoryClient", "GET", "/items/after/k")[1]["value"] == "v"
    spaces = call(f, "MemoryClient", "GET", "/namespaces")[1]["namespaces"]
    assert {"namespace": "canary", "items": 1} == {
        k: v for k, v in next(n for n in spaces if n["namespace"] == "canary").items()
        if k in ("namespace", "items")}


def after_knowledge(f):
    status, doc = call(f, "KnowledgeBase", "POST", "/documents",
                       {"title": "after fuzz", "body": "zebra quokka", "tags": ["t"]})
    assert status == 201
    assert call(f, "KnowledgeBase", "GET", f"/documents/{doc['id']}")[1]["body"] == "zebra quokka"
    hits = call(f, "KnowledgeBase", "GET", "/search?q=quokka")[1]["hits"]
    assert any(h["id"] == doc["id"] for h in hits)


def after_sessions(f):
    status, s = call(f, "SessionMemoryAgent", "POST", "/sessions", {})
    assert status == 201
    sid = s["id"]
    assert call(f, "SessionMemoryAgent", "POST", f"/sessions/{sid}/turns",
                {"role": "user", "content": "hi"})[0] == 201
    got = call(f, "SessionMemoryAgent", "GET", f"/sessions/{sid}")[1]
    assert [t["content"] for t in got["history"]] == ["hi"] and got["turns"] == 1


def after_twin(f):
    assert call(f, "SystemDigitalTwin", "POST", "/memory",
                {"session": "after-fuzz", "role": "user", "content": "still here"})[0] == 201
    turns = call(f, "SystemDigitalTwin", "GET", "/memory?session=after-fuzz")[1]["turns"]
    assert turns[-1]["content"] == "still here"
    st = call(f, "SystemDigitalTwin", "GET", "/state")[1]
    assert set(st["agents"]) == set(NAMES)
    assert call(f, "SystemDigitalTwin", "GET", "/history/lifecycle?limit=5")[0] == 200
    assert call(f, "SystemDigitalTwin", "GET", "/history/snapshots?limit=5")[0] == 200


def after_models(f):
    models = call(f, "ModelManagerSuite", "GET", "/models")[1]["models"]
    names = {m["name"] if isinstance(m, dict) else m for m in models}
    assert {"phi3_mini", "tinyllama", "cloud_llm"} <= names
    assert call(f, "ModelManagerSuite", "GET", "/vram")[0] == 200
    assert call(f, "ModelManagerSuite", "GET", "/routing/stats")[0] == 200


def after_vram(f):
    assert call(f, "VRAMOptimizerAgent", "GET", "/vram")[0] == 200


def after_registry(f):
    rows = call(f, "ServiceRegistry", "GET", "/agents?health=false")[1]["agents"]
    assert {r["name"] for r in rows} == set(NAMES)


def after_coordinator(f):
    status, out = call(f, "RequestCoordinator", "POST", "/task", {"type": "echo", "data": 1})
    assert status == 200 and out["agent"] == "Echo"


def after_loader(f):
    assert call(f, "LazyLoader", "POST", "/load", {"agent": "Echo"})[0] == 200
    assert call(f, "LazyLoader", "GET", "/loads")[0] == 200


def after_echo(f):
    status, out = call(f, "Echo", "POST", "/task", {"type": "echo", "data": "x"})
    assert status == 200 and out["result"]["implementation"] == "reference"


BEFORE = {"MemoryClient": before_memory}
AFTER = {"MemoryClient": after_memory, "KnowledgeBase": after_knowledge,
         "SessionMemoryAgent": after_sessions, "SystemDigitalTwin": after_twin,
         "ModelManagerSuite": after_models, "VRAMOptimizerAgent": after_vram,
         "ServiceRegistry": after_registry, "RequestCoordinator": after_coordinator,
         "LazyLoader": after_loader, "Echo": after_echo}


def integrity(path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


# ------------------------------------------------------------------ the test
@pytest.mark.parametrize("name", list(BUILTINS))
def test_random_requests_never_crash_an_agent_nor_corrupt_its_state(fleet, name):
    ap = fleet.procs[name]
    routes = sdk_routes(agent_class(BUILTINS[name]))
    ports = {"agent": ap.port, "health": ap.health_port}
    h0 = health(ap)[1]["status"]
    if name in BEFORE:
        BEFORE[name](fleet)
    cov = Coverage(routes)

    @settings(max_examples=examples(EXAMPLES[name]))
    @given(req=requests(routes, TASKS.get(name, ())))
    def one(req):
        listener, method, target, data, hdrs, route = req
        what = f"{name} {method} {target} body={data[:80] if data else data!r}"
        status, ctype, payload = send(ports, listener, method, target, data, hdrs)
        check_answer(status, ctype, payload, method, what)
        cov.record(route, status)
        alive(ap)

    one()
    COUNTS[name] = cov.count
    print(f"\n{name}: {cov.count} requests, statuses {dict(sorted(cov.statuses.items()))}")
    assert not cov.missed(), f"routes never reached: {sorted(cov.missed())}"
    alive(ap)
    status, h1 = health(ap)
    assert RANK[h1["status"]] <= RANK[h0], f"{name} health {h0} -> {h1}"
    if name in DATABASES:
        assert integrity(fleet.state / DATABASES[name]) == "ok"
    AFTER[name](fleet)
