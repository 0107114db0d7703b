#!/usr/bin/python3
"""A deterministic OpenAI-compatible stand-in for the LLM agents' tests (test-only code).

Implements GET /v1/models, GET /health and POST /v1/chat/completions like llama.cpp's
llama-server, answering from a SCRIPT instead of a model: a list of rules
    {"match": "substring", "answers": ["first reply", "second reply", ...]}
tried in order against the request's LAST user message; the first rule whose substring it
contains answers with its next reply (the last one repeats). No rule matches → the reply
"stand-in: no scripted answer", which carries no final answer. usage counts words.

    srv = StandIn(script).start(); srv.url  # 'http://127.0.0.1:PORT/v1'; srv.requests

Standalone, with llama-server's arguments (TinyLlamaServiceEnhanced starts it as its
"server binary"; the system test runs it under systemd-run):
    llm_stand_in.py --port N [--host H] [-m MODEL_PATH] [--script SCRIPT.json]
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NO_RULE = "stand-in: no scripted answer"


class StandIn:
    def __init__(self, script: list | None = None, model: str = "stand-in",
                 host: str = "127.0.0.1", port: int = 0):
        self.script = list(script or [])
        self.model = model
        self.used: dict[int, int] = {}
        self.requests: list[dict] = []
        self.delay_s = 0.0            # each completion takes this long (budget tests)
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": outer.model, "object": "model", "owned_by": "stand-in"}]})
                elif self.path == "/health":
                    self._send(200, {"status": "ok"})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                msgs = body.get("messages") or []
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                reply = outer.answer(msgs)
                words = sum(len(str(m.get("content", "")).split()) for m in msgs)
                self._send(200, {
                    "id": "chatcmpl-stand-in", "object": "chat.completion",
                    "model": body.get("model", outer.model),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": words, "completion_tokens": len(reply.split()),
                              "total_tokens": words + len(reply.split())}})

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/v1"

    def answer(self, messages: list) -> str:
        last = next((str(m.get("content", "")) for m in reversed(messages)
                     if m.get("role") == "user"), "")
        with self.lock:
            self.requests.append({"messages": messages, "last": last})
            for i, rule in enumerate(self.script):
                if rule["match"] in last:
                    n = self.used.get(i, 0)
                    self.used[i] = n + 1
                    answers = rule["answers"]
                    return answers[min(n, len(answers) - 1)]
        return NO_RULE

    def start(self) -> "StandIn":
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: list[str]) -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("-m", "--model", default="stand-in")
    p.add_argument("--script")
    a, _ = p.parse_known_args(argv)   # llama-server's other options are accepted, unused
    script = json.load(open(a.script)) if a.script else []
    srv = StandIn(script, model=os.path.basename(a.model), host=a.host, port=a.port)
    print(f"serving {srv.url}", flush=True)
    srv.httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
