"""LLM backends against a local OpenAI-compatible test server on 127.0.0.1."""
from __future__ import annotations

import socket
import sys
import types

import pytest

from unified_agents.llm_backends import (BackendError, InProcessBackend, OpenAIBackend,
                                         load_inprocess)
from unified_core.model import Model
from .openai_test_server import OpenAITestServer


@pytest.fixture
def server():
    s = OpenAITestServer(model="phi-3-mini-q4").start()
    yield s
    s.stop()


def test_check_lists_the_servers_models(server):
    b = OpenAIBackend(server.url)
    assert b.check(2) == {"server_models": ["phi-3-mini-q4"]}
    assert server.requests[-1][:2] == ("GET", "/v1/models")


def test_generate_sends_chat_completions_with_the_servers_model(server):
    b = OpenAIBackend(server.url)
    b.check(2)
    out = b.generate({"prompt": "hello there", "max_tokens": 8, "temperature": 0,
                      "ignored": "x"})
    assert out["text"] == "echo: hello there" and out["finish_reason"] == "stop"
    method, path, body = server.requests[-1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert body == {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8,
                    "temperature": 0, "model": "phi-3-mini-q4"}


def test_configured_model_and_api_key_are_sent(server):
    server.api_key = "sk-test"
    with pytest.raises(BackendError) as ei:
        OpenAIBackend(server.url).check(2)
    assert ei.value.kind == "rejected" and ei.value.status == 401
    b = OpenAIBackend(server.url, model="gpt-4o", api_key="sk-test")
    out = b.generate({"messages": [{"role": "user", "content": "hi"}]})
    assert out["model"] == "gpt-4o"


def test_server_errors_are_unreachable_and_client_errors_rejected(server):
    b = OpenAIBackend(server.url)
    server.fail_status = 503
    with pytest.raises(BackendError) as ei:
        b.check(2)
    assert ei.value.kind == "unreachable" and "HTTP 503" in str(ei.value)
    server.fail_status = 400
    with pytest.raises(BackendError) as ei:
        b.generate({"prompt": "x"})
    assert ei.value.kind == "rejected"


def test_refused_connection_is_unreachable():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(BackendError) as ei:
        OpenAIBackend(f"http://127.0.0.1:{port}/v1").check(1)
    assert ei.value.kind == "unreachable" and "ConnectionRefused" in str(ei.value)


def test_a_slow_server_times_out(server):
    server.delay_s = 0.5
    with pytest.raises(BackendError, match="timed out") as ei:
        OpenAIBackend(server.url).check(0.1)
    assert ei.value.kind == "unreachable"


def test_a_wrong_path_prefix_is_rejected_not_retried(server):
    b = OpenAIBackend(server.url.replace("/v1", ""))   # no /v1: the server answers 404
    with pytest.raises(BackendError) as ei:
        b.check(2)
    assert ei.value.kind == "rejected" and "404" in str(ei.value)


@pytest.fixture
def html_server():
    """Something that is not an OpenAI server: answers every request with an HTML page."""
    import threading

    lsock = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return
            c.recv(65536)
            body = b"<html>captive portal</html>"
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{lsock.getsockname()[1]}/v1"
    lsock.close()


def test_answers_that_are_not_openai_shaped_are_bad_responses(html_server):
    with pytest.raises(BackendError, match="invalid JSON: <html>captive portal") as ei:
        OpenAIBackend(html_server).check(2)
    assert ei.value.kind == "bad_response"


@pytest.mark.parametrize("endpoint", ["ftp://x/v1", "127.0.0.1:8080", ""])
def test_bad_endpoints_are_refused_up_front(endpoint):
    with pytest.raises(BackendError, match="allowed: http"):
        OpenAIBackend(endpoint)


class TinyModel(InProcessBackend):
    def __init__(self, model):
        self.model = model
        self.loaded = False

    def load(self):
        self.loaded = True

    def vram_mb(self):
        return 123

    def generate(self, request, timeout=None):
        return {"text": request["prompt"][::-1], "model": self.model.name, "usage": {},
                "finish_reason": "stop"}


def test_inprocess_backends_come_from_the_catalog_path(monkeypatch):
    mod = types.ModuleType("tiny_models_for_test")
    mod.TinyModel = TinyModel
    mod.NotABackend = lambda m: object()
    monkeypatch.setitem(sys.modules, "tiny_models_for_test", mod)
    b = load_inprocess(Model("tiny", "inprocess", 100, path="tiny_models_for_test:TinyModel"))
    assert b.check(1) == {"vram_mb": 123} and b.loaded
    assert b.generate({"prompt": "abc"})["text"] == "cba"
    with pytest.raises(BackendError, match="not an InProcessBackend"):
        load_inprocess(Model("t", "inprocess", 1, path="tiny_models_for_test:NotABackend"))
    with pytest.raises(BackendError, match="ModuleNotFoundError"):
        load_inprocess(Model("t", "inprocess", 1, path="no_such_module_xyz:f"))
    with pytest.raises(BackendError, match="allowed: 'package.module:callable'"):
        load_inprocess(Model("t", "inprocess", 1, path="no_colon"))
