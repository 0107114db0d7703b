"""A local OpenAI-compatible test server (GET /v1/models, POST /v1/chat/completions).

Stands in for llama.cpp / Ollama / vLLM / the cloud in tests: answers "echo: <last user
message>", records requests, and can be told to fail (HTTP status) or to be slow.

    srv = OpenAITestServer(model="phi3").start()      # 127.0.0.1, a free port
    srv.url                                           # 'http://127.0.0.1:PORT/v1'
    srv.fail_status = 503; srv.delay_s = 0.5; srv.stop()

Also runs standalone (the system test copies it into the container):
    python3 openai_test_server.py PORT [MODEL]
"""
from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAITestServer:
    def __init__(self, model: str = "test-model", port: int = 0, api_key: str | None = None):
        self.model = model
        self.api_key = api_key
        self.fail_status: int | None = None
        self.delay_s = 0.0
        self.requests: list[tuple[str, str, dict | None]] = []
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

            def _gate(self, body) -> bool:
                outer.requests.append((self.command, self.path, body))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.api_key and self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    self._send(401, {"error": {"message": "invalid api key"}})
                    return False
                if outer.fail_status:
                    self._send(outer.fail_status, {"error": {"message": "told to fail"}})
                    return False
                return True

            def do_GET(self):
                if not self._gate(None):
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": outer.model, "object": "model", "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(n) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                if not self._gate(body):
                    return
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                msgs = body.get("messages") or []
                last = next((m.get("content", "") for m in reversed(msgs)
                             if m.get("role") == "user"), "")
                self._send(200, {
                    "id": "chatcmpl-test", "object": "chat.completion",
                    "model": body.get("model", outer.model),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"echo: {last}"}}],
                    "usage": {"prompt_tokens": len(str(last).split()), "completion_tokens": 2,
                              "total_tokens": len(str(last).split()) + 2}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = None

    def start(self) -> "OpenAITestServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    srv = OpenAITestServer(model=sys.argv[2] if len(sys.argv) > 2 else "test-model",
                           port=int(sys.argv[1]))
    print(f"serving {srv.url}", flush=True)
    srv.httpd.serve_forever()
