#!/usr/bin/python3
"""Steady HTTP load for fault tests, run INSIDE the container (loopback only, bounded).

    python3 loadgen.py --rate 100 --duration 20 --url http://127.0.0.1:7200/health ...

Requests are spread over the URLs at a fixed total rate, each on a fresh connection (the
way a new client meets a restarting agent); prints one JSON line: sent, ok, failed, the
failures by kind, latency p50/p99/max. Stops by itself after --duration or on SIGTERM.

--retries N retries a request whose connection was reset or closed before the answer
(RemoteDisconnected, ConnectionResetError, BrokenPipeError) up to N times, as an HTTP client
may for an idempotent request (RFC 9110 9.2.2) and as unified_agents.client does: a kill -9
cannot answer the requests already inside the killed process, so "no request lost" is
only true with it. Retries are counted ("retried"); a refused connection is never retried.
"""
import argparse
import http.client
import json
import queue
import signal
import threading
import time
import urllib.parse

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--method", default="GET")
    ap.add_argument("--body", default=None)
    ap.add_argument("--url", action="append", required=True)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--retries", type=int, default=0)
    a = ap.parse_args()
    targets = [urllib.parse.urlsplit(u) for u in a.url]
    lock = threading.Lock()
    res = {"sent": 0, "ok": 0, "failed": 0, "errors": {}, "retried": 0, "reset_kinds": {}}
    reset = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
    lat = []
    tickets: queue.Queue = queue.Queue()

    def worker():
        while tickets.get() is not None:
            with lock:
                i = res["sent"]
                res["sent"] += 1
            u = targets[i % len(targets)]
            t0 = time.monotonic()
            for attempt in range(a.retries + 1):
                try:
                    c = http.client.HTTPConnection(u.hostname, u.port, timeout=a.timeout)
                    headers = {"Content-Type": "application/json"} if a.body else {}
                    c.request(a.method, u.path or "/", body=a.body, headers=headers)
                    r = c.getresponse()
                    r.read()
                    c.close()
                    ok = 200 <= r.status < 300
                    kind = None if ok else f"http {r.status}"
                except reset as e:
                    ok, kind = False, type(e).__name__
                    if attempt < a.retries:
                        with lock:
                            res["retried"] += 1
                            res["reset_kinds"][kind] = res["reset_kinds"].get(kind, 0) + 1
                        continue
                except Exception as e:  # every failure counts, by kind
                    ok, kind = False, type(e).__name__
                break
            dt = time.monotonic() - t0
            with lock:
                if ok:
                    res["ok"] += 1
                    lat.append(dt)
                else:
                    res["failed"] += 1
                    res["errors"][kind] = res["errors"].get(kind, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.workers)]
    for t in threads:
        t.start()
    t_end = time.monotonic() + a.duration
    interval = 1.0 / a.rate
    nxt = time.monotonic()
    while not stop.is_set() and time.monotonic() < t_end:
        tickets.put(1)
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))
    for _ in threads:
        tickets.put(None)
    for t in threads:
        t.join(a.timeout + 5)
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
    res.update(p50_ms=q(0.5), p99_ms=q(0.99), max_ms=round(lat[-1] * 1000, 2) if lat else None)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
