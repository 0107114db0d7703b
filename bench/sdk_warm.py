#!/usr/bin/env python3
"""Warm agent: /health latency, requests/s with keep-alive (wrk), idle RSS.

Starts the SDK's reference agent socket-activated (fd 3), and for comparison a threaded
http.server with TCP_NODELAY (the best stdlib alternative: docs/ARCHITECTURE.md,
"The agent's HTTP server"), then measures:
  * sequential keep-alive latency of GET /health (agent port and health port) and of
    POST /task (goes through the worker pool): p50/p99 over --requests requests;
  * wrk throughput (-t2, -c1 and -c8, --seconds each) on GET /health and POST /task;
  * VmRSS of the idle agent after the warm-up.

    /usr/bin/python3 bench/sdk_warm.py [--requests 2000] [--seconds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdk_common import (PYTHON, agent_env, have, listening_socket, machine,  # noqa: E402
                        pct, rss_kb, spawn_activated)

HTTPSERVER = r'''
import json, socket, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def _send(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._send({"status": "healthy", "agent": "HttpServer"})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self._send({"ok": True, "result": json.loads(self.rfile.read(n))})
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def server_bind(self):
        pass
    def server_activate(self):
        pass
    def handle_error(self, request, client_address):
        pass
s = S(("127.0.0.1", 0), H, bind_and_activate=False)
s.socket = socket.socket(fileno=3)
s.serve_forever()
'''

TASK = json.dumps({"type": "bench", "data": {"x": 1}}).encode()


def wait_up(port: int, timeout: float = 15) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                if c.recv(12).startswith(b"HTTP/1."):
                    return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing answers on {port}")


def read_response(sock: socket.socket, buf: bytearray) -> None:
    """Read one response with Content-Length from a keep-alive socket."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
            total = end + 4 + n
            if len(buf) >= total:
                del buf[:total]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk


def latency(port: int, request: bytes, n: int) -> list[float]:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    out = []
    for i in range(n + 50):
        t0 = time.perf_counter()
        s.sendall(request)
        read_response(s, buf)
        if i >= 50:  # warm-up
            out.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return out


def wrk(url: str, conns: int, seconds: int, post: bool) -> str:
    script = None
    cmd = ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    if post:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write('wrk.method = "POST"\nwrk.body = \'%s\'\n'
                     'wrk.headers["Content-Type"] = "application/json"\n' % TASK.decode())
        script.close()
        cmd += ["-s", script.name]
    out = subprocess.run(cmd + [url], capture_output=True, text=True).stdout
    if script:
        os.unlink(script.name)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return (f"{float(rps.group(1)) if rps else float('nan'):9.0f} req/s  "
            f"p50={p50.group(1) if p50 else '?'} p99={p99.group(1) if p99 else '?'}"
            + (f"  ERRORS: {errs.group(0)}" if errs else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    print(f"# warm agent ({machine()})")

    lsock = listening_socket()
    env = agent_env("Bench", lsock, {"UNIFIED_TASK_TYPES": "bench"})
    health_port = int(env["UNIFIED_HEALTH_PORT"])
    agent = spawn_activated([PYTHON, "-m", "unified_agents", "run", "Bench"], env, lsock,
                            stderr=subprocess.DEVNULL)
    port = lsock.getsockname()[1]
    hs_sock = listening_socket()
    hs = spawn_activated([PYTHON, "-c", HTTPSERVER], agent_env("HS", hs_sock), hs_sock,
                         stderr=subprocess.DEVNULL)
    hs_port = hs_sock.getsockname()[1]
    try:
        wait_up(port)
        wait_up(health_port)
        wait_up(hs_port)
        get = b"GET /health HTTP/1.1\r\nHost: b\r\n\r\n"
        post = (b"POST /task HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(TASK)) + TASK
        print("\n## sequential keep-alive latency (one connection)")
        for label, p, req in (("sdk GET /health, agent port (I/O loop)", port, get),
                              ("sdk GET /health, health port", health_port, get),
                              ("sdk POST /task (worker pool)", port, post),
                              ("http.server+TCP_NODELAY GET /health", hs_port, get),
                              ("http.server+TCP_NODELAY POST /task", hs_port, post)):
            xs = latency(p, req, args.requests)
            print(f"{label:42s} p50={pct(xs, 50):6.0f}us p99={pct(xs, 99):6.0f}us "
                  f"(n={len(xs)})")
        print(f"\n## idle RSS after warm-up: sdk agent {rss_kb(agent.pid) / 1024:.1f} MiB, "
              f"http.server {rss_kb(hs.pid) / 1024:.1f} MiB")
        if have("wrk"):
            print(f"\n## wrk -t2 (-t1 for -c1), {args.seconds}s each (wrk shares the cores)")
            for label, p, path, postp in (("sdk GET /health", port, "/health", False),
                                          ("sdk POST /task", port, "/task", True),
                                          ("http.server GET /health", hs_port, "/health", False),
                                          ("http.server POST /task", hs_port, "/task", True)):
                for c in (1, 8):
                    print(f"{label:26s} -c{c:<3d}"
                          f"{wrk(f'http://127.0.0.1:{p}{path}', c, args.seconds, postp)}")
        else:
            print("\n(wrk not installed: apt-get install wrk)")
        print(f"\n## RSS after load: sdk agent {rss_kb(agent.pid) / 1024:.1f} MiB")
    finally:
        for p in (agent, hs):
            p.terminate()
            p.wait(10)
        lsock.close()
        hs_sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
