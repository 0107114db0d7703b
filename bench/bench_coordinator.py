"""RequestCoordinator: latency it adds and requests/s through it to a warm agent.

Same task, same warm agent (MemoryClient, a "memory" list of an empty namespace: a cheap
read; core profile), sent
either directly to the agent's port or to RequestCoordinator (7201), which routes it there.
Everything on the container's loopback, bounded in count and time.

- latency: one keep-alive connection, sequential requests (a Python client inside the
  container): p50/p99 direct vs through the coordinator; "added" is the difference.
- throughput: 8 keep-alive connections for a few seconds, with wrk when the host has it
  (run in the container's network namespace: `nsenter -n`, host binary, container
  loopback) and with a Python client inside the container (bounded by its own CPU: a
  floor, not the coordinator's ceiling).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile

ORDER = 40
# a cheap task of a core agent (every agent of core does its real job since issue 14; the
# reference agent StreamingTTSAgent served here before)
AGENT, AGENT_PORT, COORD_PORT, TYPE = "MemoryClient", 5713, 7201, "memory"
DATA = {"op": "list", "namespace": "bench"}
SEQ_REQUESTS = 2000
CONNS, SECONDS = 8, 4

CLIENT = r"""
import json, socket, sys, threading, time
mode, port, body = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
req = (b"POST /task HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body

def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def one(s):
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head[9:12])
    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < n:
        rest += s.recv(65536)
    return status

if mode == "seq":
    count = int(sys.argv[4])
    s = conn()
    for _ in range(200):                      # warm-up: pools, caches, branch predictors
        one(s)
    lat, bad = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        bad += one(s) != 200
        lat.append(time.perf_counter() - t0)
    lat.sort()
    print(json.dumps({"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "bad": bad}))
else:
    conns, seconds = int(sys.argv[4]), float(sys.argv[5])
    done, bad = [0] * conns, [0] * conns
    end = time.monotonic() + seconds
    def loop(i):
        s = conn()
        while time.monotonic() < end:
            bad[i] += one(s) != 200
            done[i] += 1
    ts = [threading.Thread(target=loop, args=(i,)) for i in range(conns)]
    t0 = time.monotonic()
    for t in ts: t.start()
    for t in ts: t.join()
    print(json.dumps({"rps": sum(done) / (time.monotonic() - t0), "bad": sum(bad)}))
"""


def _client(c, *args, timeout=120):
    out = c.run(["python3", "-c", CLIENT, *map(str, args)], timeout=timeout).stdout
    return json.loads(out)


def _wrk(c, port, body):
    """→ (req/s, p50 s, non-2xx) with the host's wrk in the container's network namespace."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
        script = f.name
    out = subprocess.run(["nsenter", "-t", str(c.leader), "-n", "wrk", "-t2", f"-c{CONNS}",
                          f"-d{SECONDS}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}/task"],
                         capture_output=True, text=True, timeout=SECONDS + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50 = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p50, int(non2xx.group(1)) if non2xx else 0


def _cpu_quota(c, agent):
    return c.run(["systemctl", "show", "-p", "CPUQuotaPerSecUSec", "--value",
                  f"unified-agent@{agent}.service"]).stdout.strip()


def run(c, runs, summary):
    c.run(["unified-ctl", "profile", "switch", "core", "--json"], timeout=240)
    body = json.dumps({"type": TYPE, "data": DATA})
    c.wait_until(f"curl -sf -X POST -d '{body}' http://127.0.0.1:{COORD_PORT}/task", timeout=30)
    seq = {"direct": [], "coord": []}
    py = {"direct": [], "coord": []}
    wrk = {"direct": [], "coord": []}
    wrk_p50 = {"direct": [], "coord": []}
    bad = 0
    has_wrk = shutil.which("wrk") is not None and shutil.which("nsenter") is not None
    for i in range(runs):
        for key, port in (("direct", AGENT_PORT), ("coord", COORD_PORT)):
            s = _client(c, "seq", port, body, SEQ_REQUESTS)
            seq[key].append(s)
            t = _client(c, "load", port, body, CONNS, SECONDS)
            py[key].append(t["rps"])
            bad += s["bad"] + t["bad"]
            if has_wrk:
                rps, p50, non2xx = _wrk(c, port, body)
                wrk[key].append(rps)
                wrk_p50[key].append(p50)
                bad += non2xx
        print(f"  run {i + 1}: p50 direct {seq['direct'][-1]['p50'] * 1e3:.3f} ms, "
              f"via coordinator {seq['coord'][-1]['p50'] * 1e3:.3f} ms; "
              f"{py['coord'][-1]:.0f} req/s (python)"
              + (f", {wrk['coord'][-1]:.0f} req/s (wrk)" if has_wrk else ""), flush=True)

    # ENABLE_TRACING on (coordinator and agent): the same sequential latency, so its cost
    # per request shows beside the default (off)
    traced = []
    with c.agent_env(["RequestCoordinator", AGENT], "90-bench-tracing", ENABLE_TRACING="true"):
        c.wait_until(f"curl -sf -X POST -d '{body}' http://127.0.0.1:{COORD_PORT}/task",
                     timeout=30)
        for _ in range(runs):
            t = _client(c, "seq", COORD_PORT, body, SEQ_REQUESTS)
            traced.append(t)
            bad += t["bad"]
    c.wait_until(f"curl -sf -X POST -d '{body}' http://127.0.0.1:{COORD_PORT}/task", timeout=30)

    def med(xs):
        return summary(xs)["median"]

    d50 = med([s["p50"] for s in seq["direct"]])
    c50 = med([s["p50"] for s in seq["coord"]])
    d99 = med([s["p99"] for s in seq["direct"]])
    c99 = med([s["p99"] for s in seq["coord"]])
    added = [c["p50"] - d["p50"] for c, d in zip(seq["coord"], seq["direct"])]
    added99 = [c["p99"] - d["p99"] for c, d in zip(seq["coord"], seq["direct"])]
    lines = [
        "## RequestCoordinator: added latency and throughput", "",
        f"`POST /task {{\"type\": \"{TYPE}\", ...}}` to a warm agent ({AGENT}, a list of an empty namespace), sent "
        f"directly to its port {AGENT_PORT} or through RequestCoordinator ({COORD_PORT}), "
        "which routes it by type over a keep-alive pool. Container loopback; "
        f"coordinator CPUQuota {_cpu_quota(c, 'RequestCoordinator')}/s, agent "
        f"{_cpu_quota(c, AGENT)}/s (the catalog's cpu_percent).", "",
        "| measure | direct to the agent | through RequestCoordinator | added | target |",
        "| --- | --- | --- | --- | --- |",
        f"| latency p50, 1 connection, {SEQ_REQUESTS} sequential requests | {d50 * 1e3:.3f} ms | "
        f"{c50 * 1e3:.3f} ms | {med(added) * 1e3:.3f} ms | ≤ 1 ms added |",
        f"| latency p99, same | {d99 * 1e3:.3f} ms | {c99 * 1e3:.3f} ms | "
        f"{med(added99) * 1e3:.3f} ms | — |",
        f"| latency p50, same, ENABLE_TRACING=true (coordinator and agent: a journal entry "
        f"each per task) | — | {med([t['p50'] for t in traced]) * 1e3:.3f} ms | "
        f"{(med([t['p50'] for t in traced]) - c50) * 1e3:.3f} ms over tracing off | — |",
    ]
    if has_wrk:
        lines.append(
            f"| requests/s, {CONNS} connections, {SECONDS} s, wrk (host binary, container "
            f"network namespace) | {med(wrk['direct']):.0f} | {med(wrk['coord']):.0f} | "
            f"p50 {med(wrk_p50['direct']) * 1e3:.2f} → {med(wrk_p50['coord']) * 1e3:.2f} ms | "
            "≥ 1,500 req/s |")
    lines.append(
        f"| requests/s, {CONNS} connections, {SECONDS} s, Python client in the container | "
        f"{med(py['direct']):.0f} | {med(py['coord']):.0f} | — | ≥ 1,500 req/s |")
    lines += ["", f"Medians of {runs} runs; {bad} non-200 answers in all runs. "
              + ("" if has_wrk else "wrk is not installed on this host: Python client only. ")
              + "The Python client shares the 2 CPUs and its own GIL with what it measures, so "
              "its requests/s are a floor.", ""]
    return lines
