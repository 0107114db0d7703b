#!/usr/bin/env python3
"""`python3 -X importtime` of the agent's start path, up to its first response.

Starts `python3 -X importtime -m unified_agents run Bench` socket-activated, sends one
GET /health, stops it, and prints the modules it imported with their cumulative import
time (top-level imports only, largest first) and the total. -X importtime itself slows
imports down; compare the list, not the absolute sum, with the cold-start benchmark.

    /usr/bin/python3 bench/sdk_importtime.py [--all]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sdk_common import PYTHON, agent_env, listening_socket, machine, spawn_activated  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--all", action="store_true", help="list nested imports too")
    ap.add_argument("--run", default="", help="UNIFIED_RUN of the agent (default reference)")
    args = ap.parse_args()
    lsock = listening_socket()
    extra = {"UNIFIED_RUN": args.run} if args.run else {}
    env = agent_env("Bench", lsock, extra)
    c = socket.create_connection(lsock.getsockname())
    c.settimeout(20)
    c.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    proc = spawn_activated([PYTHON, "-X", "importtime", "-m", "unified_agents", "run", "Bench"],
                           env, lsock, stderr=subprocess.PIPE, text=True)
    answer = c.recv(12)
    c.close()
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    lsock.close()
    if not answer.startswith(b"HTTP/1.1 200"):
        print(err)
        return 1
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line[len("import time:"):].split("|")
        self_us, cum_us, name = int(parts[0]), int(parts[1]), parts[2]
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((depth, cum_us, self_us, name.strip()))
    top = [r for r in rows if r[0] == 0]
    print(f"# -X importtime of the start path up to the first response ({machine()})")
    print(f"{len(rows)} modules imported; top-level cumulative total "
          f"{sum(r[1] for r in top) / 1000:.1f} ms (inflated by -X importtime)")
    for depth, cum, own, name in sorted(rows if args.all else top, key=lambda r: -r[1]):
        print(f"{cum / 1000:8.2f} ms  {'  ' * depth}{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
