"""State agents: latency of an acknowledged (committed, fsync'ed) write and of a search, and
write throughput, over HTTP on loopback inside the container (MemoryClient, KnowledgeBase,
SystemDigitalTwin's conversation memory). Bounded: a few thousand requests per run, data
removed afterwards."""
from __future__ import annotations

import json

ORDER = 40

SCRIPT = r'''
import http.client, json, statistics, sys, threading, time
tag = sys.argv[1]

def conn(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

def call(c, method, path, body=None):
    data = json.dumps(body) if body is not None else None
    c.request(method, path, data, {"Content-Type": "application/json"} if data else {})
    r = c.getresponse()
    out = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {out[:200]!r}")
    return json.loads(out) if out else None

def timed(n, fn):
    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - t0) * 1000)
    return lat

def throughput(port, seconds, fn, threads=4):
    count = [0] * threads
    end = time.monotonic() + seconds
    def work(n):
        c = conn(port)
        i = 0
        while time.monotonic() < end:
            fn(c, n, i)
            i += 1
        count[n] = i
    ts = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    t0 = time.monotonic()
    [t.start() for t in ts]
    [t.join() for t in ts]
    return sum(count) / (time.monotonic() - t0)

out = {}
words = "agent socket systemd memory vram profile watchdog restart journal metrics".split()
mc = conn(5713)
out["memory_put_ms"] = timed(500, lambda i: call(mc, "PUT", f"/items/{tag}/k{i}", {
    "value": {"text": f"{words[i % 10]} note {i} about {words[(i * 7) % 10]}"}}))
out["memory_put_per_s"] = throughput(5713, 3, lambda c, n, i: call(
    c, "PUT", f"/items/{tag}/t{n}-{i}", {"value": f"{words[i % 10]} {i}"}))
out["memory_search_ms"] = timed(200, lambda i: call(
    mc, "GET", f"/search?q={words[i % 10]}&namespace={tag}&limit=10"))
out["memory_items"] = call(mc, "DELETE", f"/items/{tag}")["deleted"]

kb = conn(5715)
ids = []
body = " ".join(words * 30)
out["kb_add_ms"] = timed(200, lambda i: ids.append(call(kb, "POST", "/documents", {
    "title": f"{words[i % 10]} guide {i}", "body": body, "tags": [tag]})["id"]))
out["kb_search_ms"] = timed(200, lambda i: call(kb, "GET", f"/search?q={words[i % 10]}&tag={tag}"))
for i in ids:
    call(kb, "DELETE", f"/documents/{i}")

tw = conn(7220)
out["twin_memory_add_ms"] = timed(500, lambda i: call(tw, "POST", "/memory", {
    "session": tag, "role": "user", "content": f"turn {i}"}))
out["twin_memory_add_per_s"] = throughput(7220, 3, lambda c, n, i: call(c, "POST", "/memory", {
    "session": f"{tag}-{n}", "role": "user", "content": f"turn {i}"}))
for s in [tag] + [f"{tag}-{n}" for n in range(4)]:
    call(tw, "POST", "/memory/clear", {"session": s})
print(json.dumps(out))
'''


def _pct(values, q):
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run(c, runs, summary):
    c.run(["unified-ctl", "profile", "switch", "core", "--json"], timeout=300)
    c.write_file("/root/bench_stores.py", SCRIPT)
    rounds = []
    for i in range(min(runs, 3)):  # each round is ~10 s of load on a shared machine
        r = c.run(["python3", "/root/bench_stores.py", f"bench{i}"], timeout=300)
        rounds.append(json.loads(r.stdout.strip().splitlines()[-1]))
    c.run(["rm", "-f", "/root/bench_stores.py"])
    sync = json.loads(c.run(["curl", "-sf", "http://127.0.0.1:6713/health"]).stdout)[
        "checks"]["database"]["synchronous"]

    def lat(key):
        allv = [x for r in rounds for x in r[key]]
        return f"{_pct(allv, 0.5):.2f} ms", f"{_pct(allv, 0.95):.2f} ms", len(allv)

    def rate(key):
        s = summary([r[key] for r in rounds])
        return f"{s['median']:.0f}/s"

    lines = ["## State agents (SQLite)", "",
             f"Over HTTP on loopback inside the container, one keep-alive connection for "
             f"latencies, 4 for throughput; every write acknowledged after COMMIT with "
             f"synchronous={sync} (docs/STATE.md). {len(rounds)} rounds.", "",
             "| operation | p50 | p95 | n | throughput (4 connections) |",
             "| --- | --- | --- | --- | --- |"]
    for label, key, tput in (
            ("MemoryClient PUT /items/NS/KEY (new key)", "memory_put_ms", "memory_put_per_s"),
            ("MemoryClient GET /search (FTS5, 10 hits)", "memory_search_ms", None),
            ("KnowledgeBase POST /documents (~2 KB body)", "kb_add_ms", None),
            ("KnowledgeBase GET /search (bm25 + snippet)", "kb_search_ms", None),
            ("SystemDigitalTwin POST /memory", "twin_memory_add_ms", "twin_memory_add_per_s")):
        p50, p95, n = lat(key)
        lines.append(f"| {label} | {p50} | {p95} | {n} | {rate(tput) if tput else '—'} |")
    lines.append("")
    return lines
