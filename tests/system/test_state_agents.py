"""The state agents on real systemd: SystemDigitalTwin, MemoryClient, KnowledgeBase and
SessionMemoryAgent keep their SQLite databases under /var/lib/unified; kill -9 during writes
loses no acknowledged write; the runbook's `curl -X POST http://localhost:7220/memory/clear`
works literally; bad input is a 400 and the agent stays up.

Writers run INSIDE the container on loopback, bounded in time. Each test leaves the core
profile selected and running and removes the data it added.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest

STATE = "/var/lib/unified"
AGENTS = {  # agent: (agent port, health port, database file)
    "SystemDigitalTwin": (7220, 8220, "twin.db"),
    "MemoryClient": (5713, 6713, "memory.db"),
    "KnowledgeBase": (5715, 6715, "knowledge.db"),
    "SessionMemoryAgent": (5574, 6574, "sessions.db"),
}

# Writes in 4 threads, each on a fresh connection (a client meeting a restarting agent),
# until --seconds pass; prints one JSON line: the acknowledged ids/keys and failures by kind.
WRITER = r'''
import argparse, http.client, json, threading, time
ap = argparse.ArgumentParser()
ap.add_argument("--target", choices=["twin", "memory"], required=True)
ap.add_argument("--seconds", type=float, default=8)
ap.add_argument("--tag", default="kill9")
a = ap.parse_args()
acked, errors, lock = [], {}, threading.Lock()
end = time.monotonic() + a.seconds
def work(n):
    i = 0
    while time.monotonic() < end:
        i += 1
        try:
            c = http.client.HTTPConnection("127.0.0.1", 7220 if a.target == "twin" else 5713,
                                           timeout=30)
            if a.target == "twin":
                body = {"session": f"{a.tag}-{n}", "role": "user", "content": f"turn {i}"}
                c.request("POST", "/memory", json.dumps(body),
                          {"Content-Type": "application/json"})
            else:
                key = f"{a.tag}-{n}-{i}"
                c.request("PUT", f"/items/{a.tag}/{key}", json.dumps({"value": key}),
                          {"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            c.close()
            if r.status in (200, 201):
                ack = json.loads(data)["id"] if a.target == "twin" else key
                with lock:
                    acked.append(ack)
            else:
                with lock:
                    errors[f"http {r.status}"] = errors.get(f"http {r.status}", 0) + 1
        except Exception as e:  # not acknowledged: fine, it only must not be claimed
            with lock:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        time.sleep(0.002)
ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({"acked": acked, "errors": errors}))
'''


def switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr


def profile_agents(c, name) -> list[str]:
    shown = json.loads(c.run(["unified-ctl", "profile", "show", name, "--json"]).stdout)
    return [a["name"] for a in shown["agents"]]


def main_pid(c, agent) -> int:
    return int(c.unit_property(f"unified-agent@{agent}.service", "MainPID"))


def curl_json(c, method, url, body=None, *, expect=200):
    args = ["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method, url]
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        args += ["-H", "Content-Type: application/json", "--data-binary", data]
    r = c.run(args, timeout=60)
    text, _, code = r.stdout.rpartition("\n")
    assert int(code) == expect, f"{method} {url} → {code}: {text}"
    return json.loads(text) if text.strip() else None


@pytest.fixture
def core(container):
    switch(container, "core")
    container.write_file("/root/state_writer.py", WRITER)
    for agent in AGENTS:
        container.wait_until(["systemctl", "is-active", f"unified-agent@{agent}.service"],
                             timeout=60)
    yield container
    container.run(["rm", "-f", "/root/state_writer.py"])
    switch(container, "core")


def test_state_agents_run_their_builtins_with_wal_databases_in_the_state_directory(core):
    for agent, (port, hport, db) in AGENTS.items():
        h = curl_json(core, "GET", f"http://127.0.0.1:{hport}/health")
        assert h["status"] == "healthy" and h["implementation"] == "builtin", (agent, h)
        d = h["checks"]["database"]
        assert d["path"] == f"{STATE}/{db}" and d["journal_mode"] == "wal"
        assert d["synchronous"] == "FULL" and d["schema_version"] >= 1
        owner = core.run(["stat", "-c", "%U %a", f"{STATE}/{db}"]).stdout.split()
        assert owner[0] == "unified" and int(owner[1], 8) & 0o007 == 0, (db, owner)


def test_the_runbooks_memory_clear_works_literally(core):
    curl_json(core, "POST", "http://127.0.0.1:7220/memory",
              {"session": "systest-clear", "role": "user", "content": "remember me"}, expect=201)
    before = curl_json(core, "GET", "http://127.0.0.1:7220/memory?session=systest-clear")
    assert before["count"] == 1
    r = core.run("curl -X POST http://localhost:7220/memory/clear", timeout=30)  # as written
    out = json.loads(r.stdout)
    assert out["scope"] == "all" and out["cleared_turns"] >= 1
    after = curl_json(core, "GET", "http://127.0.0.1:7220/memory?session=systest-clear")
    assert after["count"] == 0


@pytest.mark.parametrize("agent, target, check", [
    ("SystemDigitalTwin", "twin", "turns"),
    ("MemoryClient", "memory", "items"),
])
def test_kill_9_during_writes_loses_no_acknowledged_write(core, agent, target, check):
    tag = f"systest{int(time.time())}"
    writer = core.popen(["python3", "/root/state_writer.py", "--target", target,
                         "--seconds", "8", "--tag", tag],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.5)                                   # writes flowing
    pid = main_pid(core, agent)
    killed_at = time.time()
    core.run(["kill", "-9", str(pid)])
    out, err = writer.communicate(timeout=90)
    assert writer.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    acked = result["acked"]
    core.wait_until(["systemctl", "is-active", f"unified-agent@{agent}.service"], timeout=30)
    assert main_pid(core, agent) != pid, "the agent was not restarted"
    print(f"{agent}: {len(acked)} acknowledged writes, failures {result['errors']}")
    assert len(acked) > 100, result["errors"]
    try:
        if check == "turns":
            stored = set()
            for n in range(4):
                got = curl_json(core, "GET", f"http://127.0.0.1:7220/memory?session={tag}-{n}"
                                             "&limit=10000")
                stored |= {t["id"] for t in got["turns"]}
        else:
            stored, after = set(), ""
            while True:
                page = curl_json(core, "GET", f"http://127.0.0.1:5713/items/{tag}?limit=1000"
                                              f"&after={after}")
                stored |= {i["key"] for i in page["items"]}
                if "next_after" not in page:
                    break
                after = page["next_after"]
        missing = set(acked) - stored
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
        # the twin saw it too: lifecycle events of the agent after the kill, ending active
        # (the twin records itself "starting" from its first poll, before READY=1)
        deadline = time.monotonic() + 30
        while True:
            ev = curl_json(core, "GET", "http://127.0.0.1:7220/history/lifecycle?agent="
                                        f"{agent}&since={killed_at - 1:.0f}")["events"]
            if (ev and ev[-1]["state"] == "active") or time.monotonic() > deadline:
                break
            time.sleep(1)
        print(f"twin lifecycle of {agent}:", [(e["event"], e["state"], e["pid"]) for e in ev])
        assert ev and ev[-1]["state"] == "active" and ev[-1]["pid"] == main_pid(core, agent)
    finally:
        if check == "turns":
            for n in range(4):
                curl_json(core, "POST", "http://127.0.0.1:7220/memory/clear",
                          {"session": f"{tag}-{n}"})
        else:
            curl_json(core, "DELETE", f"http://127.0.0.1:5713/items/{tag}")


# State-changing tasks through RequestCoordinator, each with its own Idempotency-Key, retried
# with that key until acknowledged (what a careful client does). 4 threads, one session each,
# at most --max tasks a thread; prints one JSON line: per task its content and the turn id
# its (first) answer named, how many needed a retry, failures by kind.
APPENDER = r'''
import argparse, http.client, json, threading, time, uuid
ap = argparse.ArgumentParser()
ap.add_argument("--tag", required=True)
ap.add_argument("--seconds", type=float, default=8)
ap.add_argument("--max", type=int, default=600)
a = ap.parse_args()
done, retried, errors, lock = {}, [0], {}, threading.Lock()
end = time.monotonic() + a.seconds
def send(body, key):
    c = http.client.HTTPConnection("127.0.0.1", 7201, timeout=30)
    try:
        c.request("POST", "/task", json.dumps(body),
                  {"Content-Type": "application/json", "Idempotency-Key": key})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
def work(n):
    i = 0
    while time.monotonic() < end and i < a.max:
        i += 1
        content = f"{a.tag}-{n}-{i}"
        body = {"type": "session_memory", "data": {"op": "append", "session": f"{a.tag}-{n}",
                                                   "role": "user", "content": content}}
        key, tries, give_up = str(uuid.uuid4()), 0, time.monotonic() + 60
        while time.monotonic() < give_up:
            tries += 1
            try:
                status, data = send(body, key)
            except Exception as e:
                status, data = type(e).__name__, b""
            if status in (200, 201):
                with lock:
                    done[content] = json.loads(data)["result"]["id"]
                    retried[0] += tries > 1
                break
            with lock:
                errors[str(status)] = errors.get(str(status), 0) + 1
            time.sleep(0.2)
        time.sleep(0.003)
ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({"done": done, "retried": retried[0], "errors": errors}))
'''


def coordinator_retries(c, agent) -> int:
    metrics = c.run("curl -s http://127.0.0.1:8201/metrics").stdout
    prefix = f'unified_coordinator_retries_total{{target="{agent}"}} '
    return sum(int(float(line[len(prefix):])) for line in metrics.splitlines()
               if line.startswith(prefix))


def test_tasks_retried_across_kill_9_take_effect_exactly_once(core):
    """kill -9 of SessionMemoryAgent (twice) while it appends turns sent through
    RequestCoordinator with Idempotency-Keys: every task retried until acknowledged is stored
    once, as the turn its answer named (a second run would add a second row)."""
    tag = f"idem{int(time.time())}"
    agent = "SessionMemoryAgent"
    for n in range(4):
        curl_json(core, "POST", "http://127.0.0.1:5574/sessions", {"id": f"{tag}-{n}",
                                                                   "ttl_s": 3600}, expect=201)
    core.write_file("/root/appender.py", APPENDER)
    retries_before = coordinator_retries(core, agent)
    try:
        writer = core.popen(["python3", "/root/appender.py", "--tag", tag, "--seconds", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pids = []
        for pause in (2.0, 2.5):
            time.sleep(pause)                          # tasks flowing
            pid = main_pid(core, agent)
            core.run(["kill", "-9", str(pid)])
            pids.append(pid)
            core.wait_until(f"test $(systemctl show -p MainPID --value "
                            f"unified-agent@{agent}.service) -ne {pid}", timeout=30)
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        done = result["done"]
        retries = coordinator_retries(core, agent) - retries_before
        print(f"{len(done)} tasks acknowledged; retried by the coordinator {retries}, by the "
              f"client {result['retried']}; failures the client saw {result['errors']}")
        assert len(done) > 100 and len(set(pids)) == 2
        # the kills hit tasks in flight: some went down a retry path (else this shows nothing)
        assert retries + result["retried"] > 0, "no task was in flight at either kill"
        stored = {}
        for n in range(4):
            got = curl_json(core, "GET", f"http://127.0.0.1:5574/sessions/{tag}-{n}?limit=10000")
            for t in got["history"]:
                stored.setdefault(t["content"], []).append(t["id"])
        twice = {c: ids for c, ids in stored.items() if len(ids) > 1}
        assert not twice, f"{len(twice)} tasks took effect twice, e.g. {list(twice.items())[:3]}"
        missing = set(done) - set(stored)
        assert not missing, f"{len(missing)} acknowledged tasks lost, e.g. {sorted(missing)[:3]}"
        wrong = {c: (tid, stored[c]) for c, tid in done.items() if stored[c] != [tid]}
        assert not wrong, f"answers naming another turn than the stored one: {list(wrong.items())[:3]}"
        assert set(stored) == set(done)                # and nothing unacknowledged slipped in
    finally:
        core.run(["rm", "-f", "/root/appender.py"])
        core.wait_until(["systemctl", "is-active", f"unified-agent@{agent}.service"], timeout=30)
        for n in range(4):
            curl_json(core, "DELETE", f"http://127.0.0.1:5574/sessions/{tag}-{n}")


BAD = [
    ("SystemDigitalTwin", "POST", "/memory", "{not json", 400),
    ("SystemDigitalTwin", "POST", "/memory", '{"session": "s", "role": "user", "content": 5}', 400),
    ("SystemDigitalTwin", "POST", "/memory",
     json.dumps({"session": "s", "role": "user", "content": "x" * 40000}), 413),
    ("SystemDigitalTwin", "GET", "/history/lifecycle?since=tomorrowish", None, 400),
    ("MemoryClient", "PUT", "/items/systest/k", "{not json", 400),
    ("MemoryClient", "PUT", "/items/systest/k", '{"value": 1, "tags": "x"}', 400),
    ("MemoryClient", "PUT", "/items/systest/k", json.dumps({"value": "x" * 70000}), 413),
    ("MemoryClient", "GET", "/search?q=AND&mode=fts5", None, 400),
    ("KnowledgeBase", "POST", "/documents", '{"title": 7, "body": "b"}', 400),
    ("KnowledgeBase", "POST", "/documents", "[]", 400),
    ("KnowledgeBase", "GET", "/documents/abc", None, 400),
    ("SessionMemoryAgent", "POST", "/sessions", '{"ttl_s": "soon"}', 400),
    ("SessionMemoryAgent", "POST", "/sessions/nosuch/turns", '{"role": "user"}', 400),
]


def test_bad_input_is_a_clear_error_and_no_agent_restarts(core):
    pids = {a: main_pid(core, a) for a in AGENTS}
    restarts = {a: core.unit_property(f"unified-agent@{a}.service", "NRestarts") for a in AGENTS}
    for agent, method, path, body, status in BAD:
        port = AGENTS[agent][0]
        url = shlex.quote(f"http://127.0.0.1:{port}{path}")
        args = f"curl -sS -o /dev/stdout -w '\\n%{{http_code}}' -X {method} {url}"
        if body is not None:
            core.write_file("/root/bad_body", body)
            args += " -H 'Content-Type: application/json' --data-binary @/root/bad_body"
        text, _, code = core.run(args, timeout=30).stdout.rpartition("\n")
        assert int(code) == status, (agent, method, path, code, text)
        assert json.loads(text)["error"], text
    core.run(["rm", "-f", "/root/bad_body"])
    for agent, (_, hport, _) in AGENTS.items():
        assert curl_json(core, "GET", f"http://127.0.0.1:{hport}/health")["status"] == "healthy"
        assert main_pid(core, agent) == pids[agent]
        assert core.unit_property(f"unified-agent@{agent}.service", "NRestarts") == \
            restarts[agent]


def test_documents_and_sessions_survive_kill_9(core):
    doc = curl_json(core, "POST", "http://127.0.0.1:5715/documents",
                    {"title": "Systest durability", "body": "kept across kill -9",
                     "tags": ["systest"]}, expect=201)
    ses = curl_json(core, "POST", "http://127.0.0.1:5574/sessions",
                    {"id": "systest-session", "ttl_s": 600}, expect=201)
    curl_json(core, "POST", "http://127.0.0.1:5574/sessions/systest-session/turns",
              {"role": "user", "content": "hello"}, expect=201)
    try:
        for agent in ("KnowledgeBase", "SessionMemoryAgent"):
            pid = main_pid(core, agent)
            core.run(["kill", "-9", str(pid)])
            core.wait_until(f"test $(systemctl show -p MainPID --value "
                            f"unified-agent@{agent}.service) -ne {pid} && "
                            f"curl -sf http://127.0.0.1:{AGENTS[agent][1]}/health", timeout=30)
        hits = curl_json(core, "GET", "http://127.0.0.1:5715/search?q=durability")["hits"]
        assert [h["id"] for h in hits] == [doc["id"]]
        got = curl_json(core, "GET", "http://127.0.0.1:5574/sessions/systest-session")
        assert [t["content"] for t in got["history"]] == ["hello"]
    finally:
        curl_json(core, "DELETE", f"http://127.0.0.1:5715/documents/{doc['id']}")
        curl_json(core, "DELETE", f"http://127.0.0.1:5574/sessions/{ses['id']}")


def test_the_twin_serves_the_state_and_records_a_profile_switch(core):
    core_agents = profile_agents(core, "core")
    assert len(core_agents) == 16
    # an agent killed by the tests above may still be between restart and READY=1
    deadline = time.monotonic() + 30
    while True:
        state = curl_json(core, "GET", "http://127.0.0.1:7220/state")
        assert state["profile"] == "core" and state["systemd_error"] is None
        not_active = {n: state["agents"][n]["state"] for n in core_agents
                      if state["agents"][n]["state"] != "active"}
        if not not_active or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not not_active, not_active
    snap = curl_json(core, "POST", "http://127.0.0.1:7220/snapshots", expect=201)
    mine = {a["agent"]: a for a in snap["agents"]}
    assert mine["SystemDigitalTwin"]["memory_bytes"] > 10 << 20   # psutil fallback works
    since = time.time() - 1
    switch(core, "vision")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = curl_json(core, "GET", f"http://127.0.0.1:7220/history/profiles?since="
                                          f"{since:.0f}")["profiles"]
            if rows:
                break
            time.sleep(1)
        assert [(r["profile"], r["previous"]) for r in rows] == [("vision", "core")]
    finally:
        switch(core, "core")
    res = curl_json(core, "GET", "http://127.0.0.1:7220/history/resources?since=10m"
                                 "&agent=SystemDigitalTwin")["resources"]
    assert res and isinstance(res[-1]["ts"], float)


# ---------------------------------------------------------------- ENABLE_DATA_OPTIMIZER
OPT_WRITER = r'''
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", 5713, timeout=30)
for i in range(int(sys.argv[1])):
    c.request("PUT", f"/items/systest-opt/k{i}", json.dumps({"value": "x" * 8000}),
              {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), r.status
c.request("DELETE", "/items/systest-opt"); r = c.getresponse(); r.read()
assert r.status == 200, r.status
'''

DB_CHECK = r'''
import json, sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(json.dumps({"integrity": c.execute("PRAGMA integrity_check").fetchone()[0],
                  "auto_vacuum": c.execute("PRAGMA auto_vacuum").fetchone()[0]}))
'''


def memory_metrics(c) -> dict:
    text = c.run(["curl", "-sf", "http://127.0.0.1:6713/metrics"]).stdout
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()
            if ln.startswith("unified_memory_db_")}


def test_the_data_optimizer_returns_freed_pages_and_truncates_the_wal_once_idle(core):
    core.write_file("/root/opt_writer.py", OPT_WRITER)
    core.write_file("/root/db_check.py", DB_CHECK)
    try:
        with core.agent_env(["MemoryClient"], "90-systest-optimizer",
                            ENABLE_DATA_OPTIMIZER="true", DATA_OPTIMIZER_IDLE_S="2"):
            core.wait_until("curl -sf http://127.0.0.1:6713/health", timeout=30)
            core.run(["python3", "/root/opt_writer.py", "400"], timeout=120)
            after_delete = memory_metrics(core)
            assert after_delete["unified_memory_db_free_bytes"] > 1 << 20   # 400 x 8 KB gone
            assert after_delete["unified_memory_db_wal_bytes"] > 0
            runs0 = after_delete["unified_memory_db_optimizer_runs_total"]
            core.wait_until("curl -sf http://127.0.0.1:6713/metrics | grep -q "
                            f"'^unified_memory_db_optimizer_runs_total {int(runs0) + 1}$'",
                            timeout=30)
            m = memory_metrics(core)
            assert m["unified_memory_db_wal_bytes"] == 0
            assert m["unified_memory_db_free_bytes"] == 0
            assert m["unified_memory_db_optimizer_reclaimed_bytes_total"] > 1 << 20
            assert m["unified_memory_db_optimizer_last_run_seconds"] > 0
            h = curl_json(core, "GET", "http://127.0.0.1:6713/health")
            assert h["status"] == "healthy" and h["checks"]["database"]["optimizer"]["runs"] >= 1
            db = json.loads(core.run(["python3", "/root/db_check.py",
                                      f"{STATE}/memory.db"]).stdout)
            assert db == {"integrity": "ok", "auto_vacuum": 2}
        h = curl_json(core, "GET", "http://127.0.0.1:6713/health")
        assert h["checks"]["database"]["optimizer"] is None      # off again without it
    finally:
        core.run(["rm", "-f", "/root/opt_writer.py", "/root/db_check.py"])
