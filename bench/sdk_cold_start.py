#!/usr/bin/env python3
"""Cold start: process spawn with a pre-bound listening socket → first response.

For each run: bind a fresh listening socket (the socket unit), connect to it and send
`GET /health` (the caller that triggers activation: its connection waits in the backlog),
then start the agent with the socket as fd 3 and time until the response's first byte.
The same is done for a naive agent (http.server + prometheus_client + psutil + yaml, the
design's 163 ms baseline) so the ratio is measured on the same machine in the same run.

    /usr/bin/python3 bench/sdk_cold_start.py [--runs 30] [--no-naive] [--agent-cmd ...]
"""
from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdk_common import (PYTHON, agent_env, listening_socket, machine, spawn_activated,  # noqa: E402
                        summary)

NAIVE = r'''
import os, socket, json, http.server, yaml, psutil, prometheus_client
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"status": "healthy", "agent": "Naive",
                           "rss": psutil.Process().memory_info().rss}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    def server_bind(self):
        pass
    def server_activate(self):
        pass
s = S(("127.0.0.1", 0), H, bind_and_activate=False)
s.socket = socket.socket(fileno=3)
s.serve_forever()
'''

REQ = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def one(argv, env_extra, name="Bench") -> float:
    lsock = listening_socket()
    try:
        env = agent_env(name, lsock, env_extra)
        c = socket.create_connection(lsock.getsockname())
        c.settimeout(20)
        c.sendall(REQ)
        t0 = time.perf_counter()
        proc = spawn_activated(argv, env, lsock, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        first = c.recv(1)
        dt = (time.perf_counter() - t0) * 1000
        rest = c.recv(65536)
        if not (first + rest).startswith(b"HTTP/1.1 200") and not (first + rest).startswith(
                b"HTTP/1.0 200"):
            raise SystemExit(f"bad answer: {(first + rest)[:80]!r}")
        c.close()
        proc.terminate()
        proc.wait(10)
        return dt
    finally:
        lsock.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--agent-cmd", default=f"{PYTHON} -m unified_agents run Bench",
                    help="command that starts the SDK agent (default: %(default)s)")
    args = ap.parse_args()
    print(f"# cold start, connect → first response byte ({machine()})")
    variants = [("sdk reference agent", shlex.split(args.agent_cmd), {})]
    if not args.no_naive:
        variants.append(("naive agent (http.server+prometheus_client+psutil+yaml)",
                         [PYTHON, "-c", NAIVE], {}))
    for label, argv, extra in variants:
        one(argv, extra)  # warm the page cache
    results = {label: [] for label, _, _ in variants}
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        for label, argv, extra in variants:
            results[label].append(one(argv, extra))
    for label, xs in results.items():
        print(f"{label:58s} {summary(xs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
