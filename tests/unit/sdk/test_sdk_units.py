"""In-process pieces: router, chunked decoding, health status, response conversion, the
worker pool, logging format, notify datagrams."""
import os
import socket
import threading
import time

import pytest

from unified_agents.agent import Agent, Router, is_coroutine_function, route
from unified_agents.log import Logger, describe_exception
from unified_agents.notify import Notifier, watchdog_interval
from unified_agents.runtime import Runtime, WorkerPool, overall_status
from unified_agents.server import BadRequest, HTTPError, Response, _dechunk


def h(req):
    return "x"


async def ah(req):
    return "y"


def test_router_static_params_405_head():
    r = Router()
    r.add("GET", "/health", h)
    r.add("GET", "/agents/{name}", h)
    r.add("PUT", "/agents/{name}", ah)
    r.add("GET", "/agents/{name}/deps", h)
    r.add("GET", "/files/{p:path}", h)
    route_, params = r.match("GET", "/agents/STT")
    assert route_.template == "/agents/{name}" and params == {"name": "STT"}
    assert r.match("PUT", "/agents/a%2Fb")[1] == {"name": "a/b"}
    assert r.match("PUT", "/agents/x")[0].mode == "async"
    assert r.match("GET", "/agents/x/deps")[0].template == "/agents/{name}/deps"
    assert r.match("GET", "/files/a/b")[1] == {"p": "a/b"}
    assert r.match("HEAD", "/health")[0].method == "GET"
    with pytest.raises(HTTPError) as ei:
        r.match("POST", "/agents/x")
    assert ei.value.status == 405 and ei.value.headers["Allow"] == "GET, HEAD, PUT"
    for bad in ("/agents", "/nothing", "/agents/x/y/z", "/files/"):
        with pytest.raises(HTTPError) as ei:
            r.match("GET", bad)
        assert ei.value.status == 404


@pytest.mark.parametrize("template", ["nope", "/a/{b", "/a/{1x}", "/{p:path}/x", "/a/{x}/{x}",
                                      "/a/{x:int}"])
def test_router_rejects_bad_templates(template):
    with pytest.raises(ValueError):
        Router().add("GET", template, h)


def test_router_rejects_duplicates():
    r = Router()
    r.add("GET", "/a/{x}", h)
    with pytest.raises(ValueError, match="declared twice"):
        r.add("GET", "/a/{x}", h)


def test_declared_routes_decorator_and_dict():
    class A(Agent):
        routes = {("post", "/memory/clear"): "clear"}

        @route("GET", "/x")
        @route("GET", "/y", inline=True)
        def xy(self, request):
            return {}

        def clear(self, request):
            return {}

    got = {(m, p, i) for m, p, _, i, _, _ in A().declared_routes()}
    assert got == {("GET", "/x", False), ("GET", "/y", True), ("POST", "/memory/clear", False)}


def test_coroutine_detection():
    class A(Agent):
        async def handle_task(self, task):
            return 1

    assert is_coroutine_function(A().handle_task) and is_coroutine_function(ah)
    assert not is_coroutine_function(Agent().handle_task) and not is_coroutine_function(h)


def test_dechunk():
    buf = bytearray(b"HEAD4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT")
    body, end = _dechunk(buf, 4, 100)
    assert body == b"Wikipedia" and buf[end:] == b"NEXT"
    assert _dechunk(bytearray(b"4\r\nWi"), 0, 100) is None
    with pytest.raises(BadRequest) as ei:
        _dechunk(bytearray(b"10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"), 0, 10)
    assert ei.value.status == 413
    for bad in (b"0x4\r\n", b"-1\r\n", b"4\r\nWikiXX"):
        with pytest.raises(BadRequest):
            _dechunk(bytearray(bad), 0, 100)


@pytest.mark.parametrize("checks,status", [
    ({}, "healthy"),
    ({"db": True, "x": {"status": "ok"}}, "healthy"),
    ({"db": True, "gpu": {"status": "degraded"}}, "degraded"),
    ({"db": False, "gpu": {"status": "degraded"}}, "unhealthy"),
    ({"db": {"ok": False}}, "unhealthy"),
    ({"db": "fail"}, "unhealthy"),
    ({"db": "warning"}, "degraded"),
])
def test_overall_status(checks, status):
    assert overall_status(checks) == status


def test_to_response_conversions():
    tr = Runtime.to_response
    assert tr(None).status == 204
    r = tr({"a": 1})
    assert (r.status, r.body, r.content_type) == (200, b'{"a":1}\n', "application/json")
    r = tr((201, {"a": 1}, {"Location": "/a"}))
    assert r.status == 201 and r.headers == {"Location": "/a"}
    assert tr("hi").content_type.startswith("text/plain")
    assert tr(b"\x00").content_type == "application/octet-stream"
    assert tr((202, None)).status == 202
    resp = Response(418, b"tea")
    assert tr(resp) is resp
    assert tr([1, 2]).body == b"[1,2]\n"


def test_worker_pool_runs_up_to_max_concurrently():
    pool = WorkerPool(4)
    active, peak, done = [0], [0], []
    lock = threading.Lock()

    def work(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
            done.append(i)

    for i in range(20):
        pool.submit(work, i)
    deadline = time.monotonic() + 5
    while len(done) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(done) == list(range(20))
    assert peak[0] == 4 and pool.threads == 4
    # idle workers are reused, not multiplied
    for i in range(3):
        pool.submit(work, 100 + i)
        time.sleep(0.08)
    assert pool.threads == 4


def test_logger_journal_and_plain_formats():
    r, w = os.pipe()
    try:
        log = Logger("STTService", "INFO", journal=True, fd=w)
        log.info("loaded model", rid="abc", model="whisper small")
        log.debug("hidden")
        log.error("two\nlines")
        plain = Logger("STTService", "DEBUG", journal=False, fd=w)
        plain.debug("shown", n=1)
        os.close(w)
        w = None
        out = os.read(r, 65536).decode().splitlines()
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
    assert out[0] == '<6>STTService [abc] loaded model model="whisper small"'
    assert out[1] == "<3>STTService two | lines"
    assert out[2].endswith(" DEBUG STTService shown n=1") and out[2][:4].isdigit()
    assert len(out) == 3


def test_describe_exception_is_one_line():
    try:
        def inner():
            raise KeyError("k")
        inner()
    except KeyError as e:
        text = describe_exception(e, full=True)
    assert text.startswith("KeyError: 'k' (at test_sdk_units.py:")
    assert "in inner < test_sdk_units.py:" in text and "\n" not in text


def test_notifier_abstract_socket_and_watchdog_env(monkeypatch):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"sdk-unit-{os.getpid()}"
    srv.bind("\0" + name)
    srv.settimeout(2)
    try:
        n = Notifier("@" + name)
        assert n.notify("READY=1", "STATUS=ok")
        assert srv.recv(100) == b"READY=1\nSTATUS=ok"
    finally:
        srv.close()
    assert Notifier("").notify("READY=1") is False  # no NOTIFY_SOCKET: a no-op
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 1.5
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 1.5


def test_journal_priority_prefixes_and_debug_access_log(spawn):
    """Under systemd stderr is the journal stream named by JOURNAL_STREAM=dev:inode."""
    a = spawn(env={"LOG_LEVEL": "DEBUG"}, journal=True)
    a.request("GET", "/health", headers={"X-Request-ID": "acc-1"})
    a.request("GET", "/nope")
    time.sleep(0.05)
    lines = a.stderr().splitlines()
    assert lines and all(ln[:3] in ("<6>", "<7>", "<4>", "<3>") for ln in lines), lines
    assert any(ln.startswith("<6>TestAgent ready in ") for ln in lines)
    assert "<7>TestAgent [acc-1] GET /health 200 " in a.stderr()
    b = spawn(env={"LOG_LEVEL": "INFO"})  # not the journal: timestamps, no access log
    b.request("GET", "/health")
    time.sleep(0.05)
    text = b.stderr()
    assert text[:4].isdigit() and " INFO TestAgent ready in " in text
    assert "GET /health" not in text


def test_route_listener_says_which_port_serves_it():
    from unified_agents.agent import route as _route

    class A(Agent):
        @_route("POST", "/load", listener="both")
        def load(self, request):
            return {}

        @_route("GET", "/only-health", listener="health")
        def h(self, request):
            return {}

    got = {(p, listener) for _, p, _, _, listener, _ in A().declared_routes()}
    assert got == {("/load", "both"), ("/only-health", "health")}
    with pytest.raises(ValueError, match="allowed: agent, health, both"):
        _route("GET", "/x", listener="admin")
