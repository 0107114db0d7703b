"""ENABLE_TRACING (agents/trace.py): one request id through RequestCoordinator and the
serving agent, per-hop timings in each one's log and /debug/state; off, nothing recorded."""
import socket

from unified_agents.server import Request
from unified_agents.trace import Tracer

from .test_coord_coordinator import task


def state(fleet, agent):
    status, body, _ = fleet.procs[agent].request("GET", "/debug/state", health=True)
    assert status == 200, body
    return body


def hop_names(trace):
    return [h[0] for h in trace["hops"]]


def test_with_tracing_on_the_id_the_caller_sent_is_traced_through_both_agents(fleet):
    fleet.start("Coordinator", "builtin:request_coordinator", ENABLE_TRACING="true")
    fleet.start("Echo", ENABLE_TRACING="true")
    status, body, headers = task(fleet, "echo", "hi", {"X-Request-ID": "trace-me-1"})
    assert status == 200 and headers["X-Request-ID"] == "trace-me-1"
    (ct,) = [t for t in state(fleet, "Coordinator")["tracing"]["traces"]
             if t["request_id"] == "trace-me-1"]
    assert ct["route"] == "/task" and ct["status"] == 200 and ct["agent"] == "Coordinator"
    assert hop_names(ct) == ["queue", "route", "connect", "agent", "handle", "respond"]
    assert all(ms >= 0 for _, ms in ct["hops"])
    assert abs(sum(ms for _, ms in ct["hops"]) - ct["total_ms"]) < 0.01
    (et,) = [t for t in state(fleet, "Echo")["tracing"]["traces"]
             if t["request_id"] == "trace-me-1"]
    assert hop_names(et) == ["queue", "handle", "respond"]
    assert et["total_ms"] <= ct["total_ms"]        # the agent's time is inside the forward
    for agent in ("Coordinator", "Echo"):           # by hand: a log line per traced request
        line = [ln for ln in fleet.procs[agent].stderr().splitlines() if "[trace-me-1]" in ln]
        assert len(line) == 1 and "trace POST /task 200 in" in line[0], line


def test_an_invalid_incoming_id_is_replaced_and_the_new_one_is_answered_and_traced(fleet):
    fleet.start("Coordinator", "builtin:request_coordinator", ENABLE_TRACING="true")
    fleet.start("Echo", ENABLE_TRACING="true")
    status, body, headers = task(fleet, "echo", "hi", {"X-Request-ID": "bad id with spaces"})
    rid = headers["X-Request-ID"]
    assert status == 200 and rid != "bad id with spaces" and len(rid) == 16
    assert body["request_id"] == rid                 # the agent saw the coordinator's id
    ids = [t["request_id"] for t in state(fleet, "Echo")["tracing"]["traces"]]
    assert rid in ids


def test_with_tracing_off_nothing_is_recorded_and_the_id_still_travels(fleet):
    fleet.start("Coordinator", "builtin:request_coordinator", UNIFIED_DEPENDENCIES="Registry",
                MEMORY_MB="4096")
    fleet.start("Echo")
    status, body, headers = task(fleet, "echo", "hi", {"X-Request-ID": "untraced-1"})
    assert status == 200 and body["request_id"] == "untraced-1"
    st = state(fleet, "Coordinator")
    assert st["tracing"] == {"enabled": False} and st["settings"]["enable_tracing"] is False
    assert st["settings"]["dependencies"] == ["Registry"] and st["settings"]["memory_mb"] == 4096
    assert "trace POST" not in fleet.procs["Coordinator"].stderr()


def test_the_journal_entry_carries_the_id_and_each_hop_as_fields(tmp_path, monkeypatch):
    path = str(tmp_path / "journal.sock")
    journald = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journald.bind(path)
    monkeypatch.setattr("unified_agents.trace.JOURNAL_SOCKET", path)

    class Log:
        journal = True

    req = Request("POST", "/task", "HTTP/1.1", {"x-request-id": "abc-1"}, b"", ("h", 1), "agent")
    req.route = "/task"
    req.trace = [("queue", req.received + 0.001), ("route", req.received + 0.0015)]
    Tracer("Coordinator", Log()).finish(req, 200, 0.004)
    fields = dict(line.split("=", 1) for line in journald.recv(65536).decode().splitlines())
    assert fields["REQUEST_ID"] == "abc-1" and fields["SYSLOG_IDENTIFIER"] == "Coordinator"
    assert fields["TRACE_STATUS"] == "200" and fields["TRACE_ROUTE"] == "/task"
    assert fields["TRACE_HOP_QUEUE_MS"] == "1" and fields["TRACE_HOP_ROUTE_MS"] == "0.5"
    assert fields["TRACE_HOP_RESPOND_MS"] == "2.5" and fields["TRACE_TOTAL_MS"] == "4"
    assert fields["MESSAGE"].startswith("trace POST /task 200 in 4.00 ms: queue=1 route=0.5")
