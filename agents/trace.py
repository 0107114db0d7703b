"""ENABLE_TRACING: one journal entry per request with per-hop timings, findable by its id.

Every request already has an id (server.Request: the caller's X-Request-ID when it is
1-128 characters of [A-Za-z0-9._:-], else 16 random hex digits), answered in the
X-Request-ID response header and sent along by RequestCoordinator and the SDK client. With
tracing on, the runtime also records when each hop of an agent-port request ended, in
milliseconds since the request was complete:

    queue    a worker thread picked it up (pool / async routes; inline ones skip it)
    route    RequestCoordinator: the routing decision was made (target agent known)
    connect  RequestCoordinator: a connection to the agent was ready (pooled or new;
             a retried forward shows one per try)
    agent    RequestCoordinator: the agent's answer was read
    handle   the handler returned
    respond  the response was written to the socket

and, once the response is written, sends one structured entry to journald (native
protocol: fields, not text) and keeps the last KEEP traces for `GET /debug/state`:

    MESSAGE=trace POST /task 200 in 3.10 ms: queue=0.05 route=0.02 connect=0.11 ...
    REQUEST_ID=...  TRACE_AGENT=RequestCoordinator  TRACE_ROUTE=/task  TRACE_STATUS=200
    TRACE_TOTAL_MS=3.1  TRACE_HOPS=queue=0.05 route=0.02 ...  TRACE_HOP_ROUTE_MS=0.02 ...

so `journalctl REQUEST_ID=<id>` lists the coordinator's entry and the serving agent's,
each with its own hops. Hop values are each hop's own duration (from the end of the one
before). Outside journald (an agent run by hand) the same appears as a log line.

Off (the default) a request pays an attribute check in the runtime and a global flag check
in the coordinator's forward path; nothing is recorded or sent.
"""
from __future__ import annotations

import os
import socket
import time
from collections import deque

from unified_core.timefmt import iso

from .request_context import current_request

JOURNAL_SOCKET = "/run/systemd/journal/socket"
KEEP = 100

# Set by the runtime when ENABLE_TRACING is on: code off the runtime's path (a connection
# pool) checks this before looking up the current request.
on = False


def mark(name: str) -> None:
    """End of hop `name` for the request this thread handles (no-op when not traced)."""
    req = current_request()
    if req is not None and req.trace is not None:
        req.trace.append((name, time.monotonic()))


class Tracer:
    def __init__(self, agent: str, log, keep: int = KEEP, journal: bool | None = None):
        self.agent = agent
        self.log = log
        self.recent: deque = deque(maxlen=keep)
        self.journal = log.journal if journal is None else journal
        self.sent = 0
        self.dropped = 0
        self.send_errors = 0
        self._sock: socket.socket | None = None

    def finish(self, req, status: int, seconds: float) -> dict:
        """On the I/O thread after the response was written: record and emit the trace."""
        t0 = req.received
        prev = 0.0
        hops = []
        for name, t in req.trace:
            at = (t - t0) * 1000
            hops.append((name, round(at - prev, 3)))
            prev = at
        total = seconds * 1000
        hops.append(("respond", round(total - prev, 3)))
        rec = {"request_id": req.request_id, "at": time.time(), "agent": self.agent,
               "method": req.method, "route": req.route or "unmatched", "status": status,
               "total_ms": round(total, 3), "hops": hops}
        self.recent.append(rec)
        self._emit(rec)
        return rec

    def _emit(self, rec: dict) -> None:
        hops = " ".join(f"{n}={ms:g}" for n, ms in rec["hops"])
        msg = (f"trace {rec['method']} {rec['route']} {rec['status']} in "
               f"{rec['total_ms']:.2f} ms: {hops}")
        if self.journal and self._send(rec, msg, hops):
            return
        self.log.info(msg, rec["request_id"], trace_status=rec["status"])

    def _send(self, rec: dict, msg: str, hops: str) -> bool:
        fields = [f"MESSAGE={msg}", "PRIORITY=6", f"SYSLOG_IDENTIFIER={self.agent}",
                  f"REQUEST_ID={rec['request_id']}", f"TRACE_AGENT={self.agent}",
                  f"TRACE_METHOD={rec['method']}", f"TRACE_ROUTE={rec['route']}",
                  f"TRACE_STATUS={rec['status']}", f"TRACE_TOTAL_MS={rec['total_ms']:g}",
                  f"TRACE_HOPS={hops}"]
        seen = set()
        for n, ms in rec["hops"]:
            if n not in seen:   # a retried forward: the first try's hop (all are in HOPS)
                seen.add(n)
                fields.append(f"TRACE_HOP_{n.upper()}_MS={ms:g}")
        data = ("\n".join(f.replace("\n", " ") for f in fields) + "\n").encode("utf-8",
                                                                            "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # never block the I/O thread on a journald that is behind: drop instead
                self._sock.setblocking(False)
            self._sock.sendto(data, JOURNAL_SOCKET)
            self.sent += 1
            return True
        except BlockingIOError:
            self.dropped += 1    # journald's queue is full; the trace stays in /debug/state
            return True
        except OSError:
            self.send_errors += 1
            return False

    def as_dict(self, limit: int = KEEP) -> dict:
        items = list(self.recent)[-limit:] if limit else []
        return {"enabled": True, "kept": len(self.recent), "journal": self.journal,
                "journal_sent": self.sent, "journal_dropped": self.dropped,
                "journal_errors": self.send_errors,
                "traces": [dict(r, hops=[[n, ms] for n, ms in r["hops"]],
                                at=iso(r["at"])) for r in reversed(items)]}


def state_of(runtime) -> dict:
    """The SDK's GET /debug/state: what this agent process is doing, and its last traces."""
    c = runtime.config
    tr = runtime.tracer
    return {"agent": c.name, "pid": os.getpid(), "state": runtime.state,
            "uptime_s": round(time.monotonic() - runtime.started, 3),
            "in_flight": runtime.in_flight, "requests_served": runtime.requests_served,
            "settings": {"enable_tracing": c.enable_tracing,
                         "enable_metrics": c.enable_metrics,
                         "enable_data_optimizer": c.enable_data_optimizer,
                         "max_threads": c.max_threads, "log_level": c.log_level,
                         # told to the agent for its own sizing; systemd enforces them
                         # (MemoryMax=/CPUQuota= of the unit and the slice)
                         "cpu_percent": c.cpu_percent, "memory_mb": c.memory_mb,
                         "vram_mb": c.vram_mb, "vram_limit_mb": c.vram_limit_mb,
                         "dependencies": list(c.dependencies)},
            "tracing": tr.as_dict() if tr is not None else {"enabled": False}}
