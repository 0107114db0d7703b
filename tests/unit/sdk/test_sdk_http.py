"""The HTTP contract with a real agent process: routes, errors, bad input, keep-alive,
health, metrics, the client helper. One agent serves the whole module (fast)."""
import json
import socket
import threading
import time

import pytest

from unified_agents import __version__, client

from .harness import raw_exchange

SAMPLE = "entry_point:sdk_sample_agents:Registry"


@pytest.fixture(scope="module")
def agent(spawn_module):
    return spawn_module("Registry", env={
        "UNIFIED_RUN": SAMPLE, "UNIFIED_MAX_BODY_BYTES": "10000",
        "UNIFIED_REQUEST_TIMEOUT_S": "0.5", "UNIFIED_KEEPALIVE_TIMEOUT_S": "0.5",
        "MAX_THREADS": "4", "UNIFIED_MAX_CONNECTIONS": "1000"})


@pytest.fixture(scope="module")
def reference(spawn_module):
    return spawn_module("VisionAgent", env={
        "UNIFIED_TASK_TYPES": "vision,face", "UNIFIED_SIM_MEMORY_MB": "40",
        "UNIFIED_SIM_VRAM_MB": "1024", "UNIFIED_GROUP": "vision", "UNIFIED_REQUIRED": "false"})


def alive(a) -> bool:
    status, body, _ = a.request("GET", "/health", health=True, timeout=5)
    return a.proc.poll() is None and status == 200 and body["status"] in ("healthy", "degraded")


# ------------------------------------------------------------------ routes
def test_path_params_query_and_json_bodies(agent):
    assert agent.request("GET", "/agents/ServiceRegistry")[:2] == (
        200, {"name": "ServiceRegistry", "port": 7200})
    status, body, _ = agent.request("PUT", "/agents/STT%20Service", {"port": 5800})
    assert (status, body) == (201, {"stored": "STT Service"})
    assert agent.request("GET", "/agents/STT%20Service")[1]["port"] == 5800
    status, body, _ = agent.request("GET", "/agents?x=1&y=a%20b&x=2")
    assert body["query"] == {"x": "2", "y": "a b"}
    assert agent.request("GET", "/agents/")[0] == 200  # trailing slash
    assert agent.request("GET", "/files/a/b/c.txt")[1] == {"rest": "a/b/c.txt"}
    assert agent.request("GET", "/dynamic")[1] == {"dynamic": True}  # add_route in on_start


def test_handler_errors_and_return_types(agent):
    status, body, _ = agent.request("GET", "/agents/Nobody")
    assert status == 404 and body["error"] == "agent Nobody is not registered"
    assert agent.request("GET", "/text")[1] == b"plain text"
    status, body, headers = agent.request("GET", "/none")
    assert status == 204 and body == b""
    status, body, headers = agent.request("GET", "/raw")
    assert (status, body, headers["Content-Type"], headers["X-Extra"]) == (
        202, b"raw", "application/x-test", "1")


def test_unknown_path_404_wrong_method_405(agent):
    status, body, _ = agent.request("GET", "/nope")
    assert status == 404 and body["error"] == "no such path: /nope" and body["request_id"]
    status, body, headers = agent.request("DELETE", "/agents/x")
    assert status == 405 and headers["Allow"] == "GET, HEAD, PUT"
    # the health port serves only /health and /metrics
    assert agent.request("GET", "/agents", health=True)[0] == 404
    assert agent.request("POST", "/task", {"type": "lookup"}, health=True)[0] == 404
    assert agent.request("GET", "/metrics")[0] == 404  # metrics only on the health port


def test_head(agent):
    status, body, headers = agent.request("HEAD", "/health")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_exception_in_handler_is_500_with_request_id_logged_once(agent):
    status, body, headers = agent.request("GET", "/boom", headers={"X-Request-ID": "rid-boom-1"})
    assert status == 500
    assert body == {"error": "internal error: ValueError", "status": 500,
                    "request_id": "rid-boom-1"}
    assert headers["X-Request-ID"] == "rid-boom-1"
    time.sleep(0.05)
    lines = [ln for ln in agent.stderr().splitlines() if "rid-boom-1" in ln]
    assert len(lines) == 1
    assert "ERROR Registry [rid-boom-1] GET /boom failed: ValueError: kaboom" in lines[0]
    assert alive(agent)


def test_request_id_generated_propagated_and_sanitised(agent):
    _, body, headers = agent.request("GET", "/whoami")
    assert len(headers["X-Request-ID"]) == 16 and body["request_id"] == headers["X-Request-ID"]
    assert body["current"] == body["request_id"] and body["route"] == "/whoami"
    _, body, _ = agent.request("GET", "/whoami", headers={"X-Request-ID": "abc-123"})
    assert body["request_id"] == "abc-123"
    _, body, _ = agent.request("GET", "/whoami", headers={"X-Request-ID": "bad id\x7f"})
    assert body["request_id"] != "bad id\x7f" and len(body["request_id"]) == 16


def test_async_routes_run_concurrently_without_pool_threads(agent):
    """MAX_THREADS=4, 12 async handlers sleeping 0.3 s: done together, not in 3 waves."""
    results = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(
        agent.request("GET", "/async/0.3", headers={"X-Request-ID": "async-rid"})))
        for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - t0 < 0.85
    assert [r[0] for r in results] == [200] * 12
    assert all(r[1]["rid"] == "async-rid" for r in results)


# ------------------------------------------------------------------ tasks
def test_task_envelope_and_type_checks(agent):
    status, body, _ = agent.request("POST", "/task", {"type": "lookup", "data": "ServiceRegistry",
                                                     "id": "t1"},
                                    headers={"X-Request-ID": "task-1"})
    assert status == 200
    assert body == {"ok": True, "agent": "Registry", "type": "lookup", "id": "t1",
                    "result": {"found": True}, "request_id": "task-1"}
    status, body, _ = agent.request("POST", "/task", {"type": "vision"})
    assert status == 400 and "task type 'vision' is not served by Registry" in body["error"]
    assert body["task_types"] == ["lookup"]
    assert agent.request("POST", "/task", [1, 2])[0] == 400
    status, body, _ = agent.request("POST", "/task", {"data": 1})
    assert status == 400 and '"type"' in body["error"]
    status, body, _ = agent.request("POST", "/task", "{not json")
    assert status == 400 and body["error"].startswith("bad JSON body: ")
    status, body, _ = agent.request("POST", "/task", b"")
    assert status == 400 and "empty" in body["error"]
    assert agent.request("GET", "/task")[0] == 405


def test_reference_agent(reference):
    status, body, _ = reference.request("GET", "/health")
    assert status == 200
    assert body["implementation"] == "reference" and body["agent"] == "VisionAgent"
    assert body["vram_mb"] == 1024 and body["simulated"]["memory_mb"] == 40
    assert set(body) >= {"status", "agent", "version", "uptime_s", "checks"}
    task = {"type": "face", "data": {"image": "abc"}}
    r1 = reference.request("POST", "/task", task)[1]["result"]
    r2 = reference.request("POST", "/task", dict(reversed(task.items())))[1]["result"]
    assert r1 == r2 and r1["implementation"] == "reference" and r1["type"] == "face"
    assert reference.request("POST", "/task", {"type": "speech"})[0] == 400
    metrics = reference.request("GET", "/metrics", health=True)[1].decode()
    rss = float(next(ln.split()[1] for ln in metrics.splitlines()
                     if ln.startswith("process_resident_memory_bytes")))
    assert rss > 40 * 2**20  # the simulated memory is really resident
    assert "unified_agent_simulated_vram_bytes 1073741824" in metrics


# ------------------------------------------------------------------ health
def test_health_contract_on_both_ports(agent):
    for health in (False, True):
        status, body, _ = agent.request("GET", "/health", health=health)
        assert status == 200
        assert body["status"] == "healthy" and body["agent"] == "Registry"
        assert body["checks"] == {"database": True, "cache": True}
        assert body["queue_size"] >= 0 and body["implementation"] == "entry_point"
        assert isinstance(body["uptime_s"], float) and body["version"] == __version__


def test_health_degraded_and_unhealthy(spawn):
    a = spawn(env={"UNIFIED_RUN": SAMPLE, "SAMPLE_DEGRADED": "1"})
    status, body, _ = a.request("GET", "/health", health=True)
    assert (status, body["status"]) == (200, "degraded")
    b = spawn(env={"UNIFIED_RUN": "entry_point:sdk_sample_agents:factory",
                   "SAMPLE_UNHEALTHY": "1"})
    status, body, _ = b.request("GET", "/health", health=True)
    assert (status, body["status"]) == (503, "unhealthy")
    assert body["checks"]["database"] == {"status": "fail", "error": "locked"}
    assert body["version"] == "9.9.9"


# ------------------------------------------------------------------ metrics
def test_metrics_parse_as_prometheus_text(agent):
    from prometheus_client.parser import text_string_to_metric_families

    agent.request("GET", "/agents/ServiceRegistry")
    agent.request("GET", "/nope")
    status, body, headers = agent.request("GET", "/metrics", health=True)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds",
                 "process_open_fds", "process_start_time_seconds", "unified_agent_build_info",
                 "unified_agent_requests_in_flight", "unified_agent_request_duration_seconds",
                 "unified_agent_startup_duration_seconds"):
        assert name in families, name
    reqs = {tuple(sorted(s.labels.items())): s.value
            for s in families["unified_agent_requests"].samples}
    key = (("code", "200"), ("listener", "agent"), ("method", "GET"),
           ("route", "/agents/{name}"))
    assert reqs[key] >= 1  # labelled by route template, not raw path
    assert any(dict(k).get("route") == "unmatched" for k in reqs)
    assert families["unified_agent_requests_in_flight"].samples[0].value == 0
    assert families["process_resident_memory_bytes"].samples[0].value > 5e6


def test_metrics_of_an_sdk_agent_and_a_reference_agent_pass_promtool_check_metrics(agent,
                                                                                    reference):
    from tests.promlint import promtool_findings

    agent.request("GET", "/agents/ServiceRegistry")
    agent.request("PUT", "/agents/x", b"x" * 20000)                 # a bad request (413)
    reference.request("POST", "/task", {"type": "face", "data": {}})  # a task
    for who in (agent, reference):
        text = who.request("GET", "/metrics", health=True)[1].decode()
        assert "unified_agent_tasks_total{" in text or who is agent
        assert promtool_findings(text) == "", text


# ------------------------------------------------------------------ bad input
def test_body_over_limit_is_413(agent):
    status, body, _ = agent.request("PUT", "/agents/x", b"x" * 20000)
    assert status == 413 and "over the limit of 10000 bytes" in body["error"]
    chunked = (b"POST /task HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"1000\r\n" + b"a" * 4096 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n")
    assert raw_exchange(agent.port, chunked).startswith(b"HTTP/1.1 413 ")
    expect = (b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n"
              b"Expect: 100-continue\r\n\r\n")
    assert raw_exchange(agent.port, expect).startswith(b"HTTP/1.1 413 ")


def test_chunked_body_and_expect_continue(agent):
    body = json.dumps({"type": "lookup", "data": "x"}).encode()
    req = (b"POST /task HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close"
           b"\r\n\r\n" + b"%x\r\n" % 5 + body[:5] + b"\r\n" + b"%x\r\n" % (len(body) - 5)
           + body[5:] + b"\r\n0\r\n\r\n")
    out = raw_exchange(agent.port, req)
    assert out.startswith(b"HTTP/1.1 200 ") and b'"found":false' in out
    s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
    s.sendall(b"POST /task HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\n\r\n" % len(body))
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    s.close()


def test_keepalive_pipelining_and_http10(agent):
    s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
    s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Request-ID: p1\r\n\r\n"
              b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Request-ID: p2\r\n\r\n")
    data = b""
    while data.count(b"HTTP/1.1 200") < 2:
        data += s.recv(65536)
    assert data.index(b'"p1"') < data.index(b'"p2"')
    s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rest = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    assert rest.startswith(b"HTTP/1.1 200") and b"Connection: close" in rest
    s.close()
    out = raw_exchange(agent.port, b"GET /health HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out


@pytest.mark.parametrize("garbage,code", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"400"),     # a TLS ClientHello
    (b"\x00\xff\xfe garbage\r\n\r\n", b"400"),
    (b"GET\r\n\r\n", b"400"),
    (b"GET / HTTP/2.0\r\n\r\n", b"505"),
    (b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
    (b"POST /task HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"400"),
    (b"POST /task HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", b"400"),
    (b"POST /task HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    (b"POST /task HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    (b"GET /" + b"a" * 9000, b"414"),
    (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", b"431"),
])
def test_malformed_requests_get_an_error_and_a_close(agent, garbage, code):
    out = raw_exchange(agent.port, garbage)
    assert out.startswith(b"HTTP/1.1 " + code), out[:80]
    assert b"Connection: close" in out


def test_slow_client_times_out_with_408(agent):
    s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
    t0 = time.monotonic()
    data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 0.3 < time.monotonic() - t0 < 3
    s.close()


def test_hundreds_of_malformed_and_half_open_connections_leave_it_healthy(agent):
    # 300 half-open connections (connected, nothing sent) on the agent port
    idle = [socket.create_connection(("127.0.0.1", agent.port), timeout=5) for _ in range(300)]
    try:
        assert alive(agent)  # the health port is unaffected
        assert agent.request("GET", "/agents/ServiceRegistry")[0] == 200
        bad = [b"\x00" * 100, b"{json}\r\n\r\n", b"POST /task HTTP/1.1\r\nContent-Length: "
               b"5\r\n\r\n{bad}", b"PUT /agents/x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
               b"GET /%%% HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
        outs = []
        for i in range(300):
            data = bad[i % len(bad)]
            s = socket.create_connection(("127.0.0.1", agent.port), timeout=5)
            s.sendall(data)
            if i % 3 == 0:
                s.close()  # hang up without reading the answer
                continue
            outs.append(s.recv(12))
            s.close()
        assert all(o.startswith(b"HTTP/1.1 4") for o in outs), set(outs)
    finally:
        for s in idle:
            s.close()
    assert alive(agent)
    assert agent.request("GET", "/agents/ServiceRegistry")[0] == 200
    metrics = agent.request("GET", "/metrics", health=True)[1].decode()
    assert 'unified_agent_bad_requests_total{code="400"}' in metrics


# ------------------------------------------------------------------ client helper
def test_client_helper(agent):
    url = agent.url("/agents/ServiceRegistry")
    assert client.get_json(url, timeout=5) == {"name": "ServiceRegistry", "port": 7200}
    out = client.post_json(agent.url("/task"), {"type": "lookup", "data": "x"},
                           request_id="client-rid")
    assert out["request_id"] == "client-rid"
    with pytest.raises(client.AgentCallError) as ei:
        client.get_json(agent.url("/agents/Nobody"))
    assert ei.value.status == 404 and "not registered" in str(ei.value)
    with pytest.raises(client.AgentCallError) as ei:
        client.get_json(f"http://127.0.0.1:{agent.port + 0}/nope")
    assert ei.value.status == 404
    import socket as _s
    dead = _s.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    with pytest.raises(client.AgentCallError) as ei:
        client.get_json(f"http://127.0.0.1:{port}/health", timeout=1)
    assert ei.value.status is None and "ConnectionRefusedError" in str(ei.value)


def test_client_propagates_request_id_from_inside_a_handler(agent):
    status, body, _ = agent.request("POST", "/call", {"url": agent.url("/whoami")},
                                    headers={"X-Request-ID": "chain-42"})
    assert status == 200 and body["downstream"]["request_id"] == "chain-42"


def test_keepalive_client_reconnects_after_server_closed_idle_connection(agent):
    c = client.Client(agent.url(""), timeout=5)
    first = c.get_json("/whoami")
    assert c.get_json("/whoami")["request_id"] != first["request_id"]
    time.sleep(0.7)  # > UNIFIED_KEEPALIVE_TIMEOUT_S: the agent closed the connection
    assert c.get_json("/agents/ServiceRegistry")["port"] == 7200
    c.close()


def test_cache_release_is_served_only_by_agents_that_can_release(agent, reference):
    status, body = agent.request("POST", "/cache/release")[:2]
    assert (status, body["freed_bytes"]) == (200, 1234)
    assert reference.request("POST", "/cache/release")[0] == 404  # "unsupported", not an error


def test_a_route_declared_for_the_health_port_is_not_on_the_agent_port(agent):
    assert agent.request("GET", "/only-health", health=True)[:2] == (200, {"port": "health"})
    assert agent.request("GET", "/only-health")[0] == 404


class _ResetFirst:
    """A listener that resets its first `resets` connections once their request has
    arrived (what a kill -9 does to a request in flight), then answers 200 {"n": i}."""

    def __init__(self, resets=1):
        import socket
        import struct
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen = []

        def serve():
            i = 0
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                head = conn.recv(65536).decode("latin-1")
                self.seen.append(head.split("\r\n", 1)[0])
                i += 1
                if i <= resets:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    body = b'{"n": %d}' % i
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                                 + body)
                conn.close()

        threading.Thread(target=serve, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"


def test_client_retries_a_get_reset_in_flight_once():
    srv = _ResetFirst()
    assert client.get_json(srv.url("/x"), timeout=5) == {"n": 2}
    assert srv.seen == ["GET /x HTTP/1.1", "GET /x HTTP/1.1"]
    srv.sock.close()


def test_client_never_repeats_a_post_without_idempotency_key():
    srv = _ResetFirst()
    with pytest.raises(client.AgentCallError):
        client.post_json(srv.url("/x"), {"a": 1}, timeout=5)
    assert len(srv.seen) == 1
    srv.sock.close()


def test_client_repeats_a_post_with_idempotency_key_and_gives_up_after_one_retry():
    srv = _ResetFirst(resets=2)
    c = client.Client(srv.url(""), timeout=5)
    with pytest.raises(client.AgentCallError):
        c.post_json("/x", {"a": 1}, headers={"Idempotency-Key": "k1"})
    assert srv.seen == ["POST /x HTTP/1.1", "POST /x HTTP/1.1"]
    assert c.post_json("/x", {"a": 1}, headers={"Idempotency-Key": "k1"}) == {"n": 3}
    srv.sock.close()
