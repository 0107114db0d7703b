"""Random requests against an agent's routes, and the properties every answer must have.

Routes come from the agent class itself (`declared_routes()` plus the SDK's own /health,
/metrics, /task and /cache/release), so a route added later is fuzzed without editing these
tests, and `Coverage` proves that every route was hit.

A request: the route's method (sometimes another one), its path parameters filled with
hostile text (percent-encoded: '..', NUL, long, non-ASCII, known names), a query string of
known and unknown keys, a body that is nothing / any JSON / a JSON object of known fields
with wrong types / bytes that are not UTF-8, and odd headers.

The properties: the status is a real HTTP status; 5xx only as a deliberate answer (an agent
it depends on is down: 502/503/504), never 500 "internal error" (an uncaught exception);
error bodies are JSON with "error"; the process is still running afterwards.
"""
from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote

from hypothesis import strategies as st

KEYS = ["action", "after", "after_id", "agent", "agents", "all", "backend", "before_id", "body",
        "complexity", "content", "data", "force", "group", "health", "id", "in_profile", "key",
        "limit", "max_tokens", "mb", "messages", "meta", "mode", "model", "name", "namespace",
        "op", "prefix", "profile", "prompt", "q", "query", "required", "role", "session",
        "since", "source", "state", "tag", "tags", "task_type", "temperature", "timeout",
        "title", "ttl_s", "type", "until", "value", "values", "idle_s"]
NAMES = ["Echo", "Sleepy", "Faraway", "ServiceRegistry", "phi3_mini", "tinyllama", "cloud_llm",
         "default", "core", "1", "0", "-1", "x" * 300, "..", ".", "%", "a/b", "a b", "é",
         "\x00", "ns-1", "ns_2", "user", "assistant"]
SCALARS = (st.none() | st.booleans() | st.integers(-2**63, 2**64)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=40) | st.sampled_from(NAMES))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), kids,
                                      max_size=5), max_leaves=15)
FIELD_VALUES = (SCALARS | st.lists(SCALARS, max_size=3)
                | st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=3))

param_text = st.sampled_from(NAMES) | st.text(min_size=1, max_size=40)
query_value = (st.sampled_from(["", "0", "-1", "1", "10", "1000000", "99999999999999999999",
                                "true", "false", "nan", "1e9", "2024-01-01T00:00:00",
                                "now", "-5m", "1h", "*", "\"", "active", "dormant"])
               | st.text(max_size=20))
body = st.one_of(
    st.none(),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(KEYS), FIELD_VALUES, max_size=6).map(
        lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"{", b"[1,", b'{"a":', b"\xff\xfe", b"null", b'""', b"[]", b"{}",
                     b"NaN", b'{"a": Infinity}', b"1" * 400, b'{"type": 1}',
                     b'{"type": "echo", "data": {"op": "delete"}}']))
headers = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form"
                                     "-urlencoded", "", "multipart/form-data; boundary=x"]),
    "X-Request-ID": st.sampled_from(["abc", "a" * 200, "bad id", "é", "../../etc"]),
    "Authorization": st.sampled_from(["Bearer x", "Basic Zm9v", "", "Bearer " + "a" * 100]),
    "X-Forwarded-For": st.sampled_from(["10.0.0.1", "127.0.0.1, 10.0.0.2"]),
    "X-Unified-Origin": st.sampled_from(["remote", "local", ""]),
})
OTHER_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def sdk_routes(cls) -> list[tuple[str, str, str]]:
    """(method, template, listener) of every route an agent of class `cls` serves."""
    from unified_agents.agent import Agent

    a = cls.__new__(cls)  # no __init__: only the declarations are read
    out = {("GET", "/health", "agent"), ("GET", "/health", "health"),
           ("GET", "/metrics", "health"), ("POST", "/task", "agent")}
    if getattr(cls, "release_caches") is not getattr(Agent, "release_caches"):
        out.add(("POST", "/cache/release", "agent"))
    for method, path, _, _, listener, _ in a.declared_routes():
        for kind in (("agent", "health") if listener == "both" else (listener,)):
            out.add((method, path, kind))
    return sorted(out)


@st.composite
def requests(draw, routes, task_types=()):
    """→ (listener, method, target, body, headers, route)."""
    route = draw(st.sampled_from(routes))
    method, template, listener = route
    if draw(st.integers(0, 19)) == 0:
        method = draw(st.sampled_from(OTHER_METHODS))
    parts = []
    for seg in template.split("/")[1:]:
        if seg.startswith("{") and seg.endswith("}"):
            value = draw(param_text)
            if seg.endswith(":path}"):
                value = "/".join(quote(p, safe="") for p in value.split("/")) or "x"
            else:
                value = quote(value, safe="")
            parts.append(value)
        else:
            parts.append(seg)
    target = "/" + "/".join(parts)
    q = draw(st.lists(st.tuples(st.sampled_from(KEYS) | st.text(min_size=1, max_size=8),
                                query_value), max_size=4))
    if q:
        target += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in q)
    data = draw(body)
    if template == "/task" and task_types and draw(st.booleans()):
        # a well-formed envelope often, so the handler (not only the parser) is reached
        payload = {"type": draw(st.sampled_from(list(task_types)) | st.text(max_size=8)),
                   "data": draw(FIELD_VALUES | st.dictionaries(st.sampled_from(KEYS),
                                                               FIELD_VALUES, max_size=5))}
        data = json.dumps(payload).encode()
    return listener, method, target, data, draw(headers), route


def send(host_ports: dict, listener, method, target, data, hdrs, timeout=5.0):
    """→ (status, content_type, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", host_ports[listener], timeout=timeout)
    try:
        conn.request(method, target, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


def check_answer(status: int, ctype: str, payload: bytes, method: str, what: str) -> None:
    assert 100 <= status <= 599, f"{what}: status {status}"
    if method == "HEAD":
        return
    if status >= 400:
        assert "json" in ctype, f"{what}: error {status} with Content-Type {ctype!r}"
        err = json.loads(payload)
        assert isinstance(err, dict) and isinstance(err.get("error"), str), f"{what}: {err!r}"
        # 5xx may be deliberate (a dependency down: 502/503/504; 501 no tasks here) but
        # never the SDK's answer to an exception the handler let escape
        assert status != 500 or not err["error"].startswith("internal error"), \
            f"{what}: uncaught exception: {err['error']}"
    elif "json" in ctype and payload:
        json.loads(payload)


class Coverage:
    """Which routes the examples reached (a route the fuzzer never hits is not fuzzed)."""

    def __init__(self, routes):
        self.routes = set(routes)
        self.hit: set = set()
        self.statuses: dict = {}
        self.count = 0

    def record(self, route, status) -> None:
        self.hit.add(route)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.count += 1

    def missed(self) -> set:
        return self.routes - self.hit


def drain_notifications(ap) -> None:
    """Read the agent's sd_notify datagrams for as long as it runs, as PID 1 does. The
    harness reads them only until READY=1; the agent's STATUS= updates then fill the
    socket's queue (net.unix.max_dgram_qlen, 10 here) and its next sendto() blocks the I/O
    loop: a hang of the test's making (found by these tests, ~10 s into a run)."""
    import threading

    n = ap.notify
    if n is None:
        return

    def loop():
        n.sock.settimeout(None)
        while True:
            try:
                n.sock.recv(4096)
            except OSError:
                return

    threading.Thread(target=loop, daemon=True).start()


def alive(ap) -> None:
    assert ap.proc.poll() is None, f"agent exited {ap.proc.returncode}: {ap.stderr()[-2000:]}"


def health(ap) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", ap.health_port, timeout=10)
    try:
        conn.request("GET", "/health")
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def raw(port: int, data: bytes, timeout: float = 3.0) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()
