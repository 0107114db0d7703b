"""The SDK's HTTP server under byte-level garbage: request lines, headers, framing
(Content-Length, chunked), pipelining and cut-off streams, on both ports of a reference
agent. Every answer is a well-formed HTTP/1.1 response that is never an uncaught exception,
and afterwards the agent is alive, healthy and serves a normal request.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ..sdk.harness import sdk_path, spawn_module  # noqa: F401  (fixtures)
from .conftest import examples
from .fuzz_http import alive, drain_notifications, health, raw

METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE",
           b"CONNECT", b"get", b"G\x00T", b"", b"X" * 20, b"PRI"]
TARGETS = [b"/health", b"/task", b"/metrics", b"/cache/release", b"/", b"*", b"//",
           b"/health?x=1&&=", b"/%", b"/%zz", b"/..%2f..%2fetc/passwd", b"http://h/health",
           b"https://h", b"/" + b"a" * 9000, b"/\xff", b"/a b", b"/task#frag", b""]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"http/1.1", b"HTTP/0.9", b""]
HEADER_NAMES = [b"Host", b"Content-Length", b"Transfer-Encoding", b"Content-Type",
                b"Connection", b"Expect", b"X-Request-ID", b"Authorization", b"Bad Name",
                b"", b"X" * 100, b"Content-length"]
HEADER_VALUES = [b"", b"0", b"5", b"-1", b"99999999999999999999", b"chunked", b"gzip, chunked",
                 b"close", b"keep-alive", b"100-continue", b"application/json", b"\xff\xfe",
                 b"a\rb", b"1, 2", b" 3 ", b"0x10"]
CHUNKS = [b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"5\r\nhi\r\n", b"1;ext=1\r\na\r\n0\r\n\r\n",
          b"FFFFFFFFFFFFFFFF\r\n", b"0\r\nTrailer: x\r\n\r\n"]

header = st.tuples(st.sampled_from(HEADER_NAMES) | st.binary(max_size=10),
                   st.sampled_from(HEADER_VALUES) | st.binary(max_size=10))
one_request = st.builds(
    lambda m, t, v, hs, sep, body: m + b" " + t + b" " + v + sep
    + b"".join(k + b": " + val + sep for k, val in hs) + sep + body,
    st.sampled_from(METHODS), st.sampled_from(TARGETS) | st.binary(max_size=20),
    st.sampled_from(VERSIONS), st.lists(header, max_size=6),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
    st.sampled_from(CHUNKS) | st.binary(max_size=40)
    | st.just(b'{"type": "t", "data": 1}'))
stream = st.one_of(
    st.lists(one_request, min_size=1, max_size=3).map(b"".join),   # pipelined
    st.binary(max_size=200),                                       # noise
    one_request.flatmap(lambda r: st.integers(0, len(r)).map(lambda n: r[:n])),  # cut off
)

STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")


@pytest.fixture(scope="module")
def agent(spawn_module):  # noqa: F811
    ap = spawn_module("FuzzRef", env={"UNIFIED_TASK_TYPES": "t",
                                      "UNIFIED_REQUEST_TIMEOUT_S": "1",
                                      "UNIFIED_MAX_BODY_BYTES": "4096"})
    drain_notifications(ap)
    return ap


@pytest.mark.parametrize("port_kind", ["agent", "health"])
def test_byte_garbage_gets_http_answers_and_never_a_crash(agent, port_kind):
    port = agent.port if port_kind == "agent" else agent.health_port
    seen = {"n": 0, "answered": 0}

    @settings(max_examples=examples(400))
    @given(data=stream)
    def one(data):
        out = raw(port, data)
        seen["n"] += 1
        if out:
            seen["answered"] += 1
            m = STATUS_LINE.match(out)
            assert m, f"not an HTTP/1.1 response to {data[:120]!r}: {out[:200]!r}"
            assert b"internal error" not in out, f"{data[:120]!r} -> {out[:300]!r}"
        alive(agent)

    one()
    print(f"\n{port_kind} port: {seen['n']} byte streams, {seen['answered']} answered")
    alive(agent)
    status, h = health(agent)
    assert status == 200 and h["status"] == "healthy"
    status, body, _ = agent.request("POST", "/task", {"type": "t", "data": "after"})
    assert status == 200 and body["result"]["implementation"] == "reference"
