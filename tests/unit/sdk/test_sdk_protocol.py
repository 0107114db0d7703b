"""systemd protocol pieces with real processes: LISTEN_FDS, sd_notify, watchdog, SIGTERM,
idle exit. The test plays systemd: it owns the listening socket and the notify socket."""
import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from .harness import PYTHON, Notify, free_port, listening_socket, raw_exchange

SAMPLE = "entry_point:sdk_sample_agents:Registry"
GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _http_ok(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.1 200 ")


def test_listen_fds_handover_serves_passed_socket(spawn):
    lsock = listening_socket()
    try:
        a = spawn(lsock=lsock)
        port = lsock.getsockname()[1]
        assert _http_ok(raw_exchange(port, GET_HEALTH))
        # the agent did not bind the port itself: binding it again here would fail if it had
        # (SO_REUSEADDR does not allow two listeners) - the only listener is our socket
        status, body, _ = a.request("GET", "/health")
        assert status == 200 and body["agent"] == "TestAgent"
        assert f"port={port}" in a.stderr()
    finally:
        lsock.close()


def test_listen_pid_of_another_process_is_ignored(spawn):
    """LISTEN_* inherited from a parent (LISTEN_PID != our pid): bind the port ourselves."""
    port = free_port()
    a = spawn(use_fd=False, env={"LISTEN_FDS": "1", "LISTEN_PID": "1",
                                 "UNIFIED_PORT": str(port)})
    assert _http_ok(raw_exchange(port, GET_HEALTH))


def test_notify_ready_status_stopping_on_abstract_socket(spawn):
    a = spawn(env={"UNIFIED_RUN": SAMPLE})
    n = a.notify
    assert n.address.startswith("@")
    n.wait_for("READY=1")
    n.wait_for("STATUS=serving: 0 in flight, 0 requests")
    a.request("GET", "/agents")
    n.wait_for("STATUS=serving: 0 in flight, 1 requests")  # counts are reported
    a.proc.send_signal(signal.SIGTERM)
    n.wait_for("STOPPING=1")
    assert a.wait_exit() == 0


def test_notify_on_path_socket(spawn, tmp_path):
    n = Notify(tmp_path)
    a = spawn(notify=n)
    assert not n.address.startswith("@")
    a.proc.send_signal(signal.SIGTERM)
    n.wait_for("STOPPING=1")
    assert a.wait_exit() == 0
    n.close()


def test_ready_only_after_on_start_and_early_connection_waits(spawn):
    lsock = listening_socket()
    try:
        t0 = time.monotonic()
        a = spawn(lsock=lsock, env={"UNIFIED_SIM_LOAD_MS": "400"}, wait_ready=False)
        # connect before the agent is ready: the connection waits in the backlog
        early = socket.create_connection(lsock.getsockname(), timeout=10)
        early.sendall(GET_HEALTH)
        ready_at = a.notify.wait_for("READY=1")
        assert ready_at - t0 >= 0.4
        data = early.recv(65536)
        assert _http_ok(data)
        early.close()
    finally:
        lsock.close()


def test_watchdog_pings_at_half_interval_from_the_serving_loop(spawn):
    a = spawn(env={"WATCHDOG_USEC": "100000", "UNIFIED_RUN": SAMPLE})  # ping every 0.05 s
    n = a.notify
    n.messages.clear()
    n.drain(0.5)
    pings = [t for t, m in n.messages if m == "WATCHDOG=1"]
    assert 4 <= len(pings) <= 16, len(pings)
    # a blocked serving loop stops pinging (a side thread would keep pinging)
    blocker = threading.Thread(target=a.request, args=("GET", "/block/600"))
    blocker.start()
    time.sleep(0.15)
    n.messages.clear()
    n.drain(0.3)
    during = [t for t, m in n.messages if m == "WATCHDOG=1"]
    blocker.join()
    assert len(during) <= 1, during
    n.messages.clear()
    n.drain(0.3)
    assert len([m for _, m in n.messages if m == "WATCHDOG=1"]) >= 2  # resumed


def test_a_hung_worker_thread_stops_the_watchdog_pings_and_makes_health_unhealthy(spawn):
    a = spawn(env={"WATCHDOG_USEC": "100000", "UNIFIED_RUN": SAMPLE,
                   "WORKER_HANG_S": "0.3"})
    n = a.notify
    worker = threading.Thread(target=a.request, args=("GET", "/sleep/2500"),
                              kwargs={"headers": {"X-Request-ID": "stuck-1"}})
    worker.start()                   # a handler that outlives the bound on a worker thread
    deadline = time.monotonic() + 10
    while True:
        status, body, _ = a.request("GET", "/health", health=True)
        if status == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 503 and body["status"] == "unhealthy", body
    (hung,) = body["checks"]["workers"]["hung"]
    assert hung["request"] == "GET /sleep/2500" and hung["request_id"] == "stuck-1"
    assert hung["thread"].startswith("worker-")
    n.drain(0.1)                     # what was sent before: read and forgotten
    n.messages.clear()
    n.drain(0.4)                     # the I/O loop is alive, yet it pings no more
    assert "WATCHDOG=1" not in [m for _, m in n.messages]
    err = a.stderr()
    assert "hung: GET /sleep/2500" in err and "time.sleep(" in err   # its stack, once
    assert err.count("hung: GET /sleep/2500") == 1
    worker.join()                    # it ended after all: healthy and pinging again
    assert a.request("GET", "/health", health=True)[0] == 200
    n.messages.clear()
    n.drain(0.3)
    assert "WATCHDOG=1" in [m for _, m in n.messages]


def test_watchdog_for_another_pid_is_not_pinged(spawn):
    a = spawn(env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    a.notify.drain(0.5)
    assert "WATCHDOG=1" not in [m for _, m in a.notify.messages]


def test_sigterm_with_20_in_flight_loses_none(spawn):
    lsock = listening_socket()
    try:
        a = spawn(lsock=lsock, env={"UNIFIED_SIM_TASK_MS": "600", "MAX_THREADS": "32",
                                    "UNIFIED_TASK_TYPES": "work"})
        results = []

        def one(i):
            try:
                results.append(a.request("POST", "/task", {"type": "work", "id": i})[0])
            except Exception as e:  # pragma: no cover - would be a lost request
                results.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, health, _ = a.request("GET", "/health", health=True)
            if health["in_flight"] == 20:
                break
            time.sleep(0.02)
        assert health["in_flight"] == 20
        a.proc.send_signal(signal.SIGTERM)
        a.notify.wait_for("STOPPING=1")
        # a connection that arrives while the agent drains waits for the next instance
        late = socket.create_connection(lsock.getsockname(), timeout=10)
        late.sendall(GET_HEALTH)
        for t in threads:
            t.join(15)
        assert results == [200] * 20
        assert a.wait_exit() == 0
        b = spawn(lsock=lsock)  # what systemd does when the socket has a pending connection
        assert _http_ok(late.recv(65536))
        late.close()
        b.proc.send_signal(signal.SIGTERM)
        assert b.wait_exit() == 0
    finally:
        lsock.close()


def test_idle_exit_is_exit_0_and_health_probes_are_not_activity(spawn):
    a = spawn(env={"UNIFIED_IDLE_TIMEOUT_S": "0.5", "WATCHDOG_USEC": "100000"})
    t0 = time.monotonic()
    # probes on the health port (and watchdog pings) must not keep the agent alive
    while a.proc.poll() is None and time.monotonic() - t0 < 5:
        try:
            a.request("GET", "/health", health=True, timeout=1)
        except OSError:
            pass
        time.sleep(0.05)
    assert a.wait_exit(5) == 0
    assert time.monotonic() - t0 < 3
    a.notify.wait_for("STOPPING=1")
    assert "stopping (idle for 0.5 s)" in a.stderr()


def test_idle_timeout_0_never_exits(spawn):
    a = spawn(env={"UNIFIED_IDLE_TIMEOUT_S": "0"})
    time.sleep(0.6)
    assert a.proc.poll() is None


def test_connection_queued_during_idle_exit_is_served_by_next_instance(spawn):
    lsock = listening_socket()
    try:
        a = spawn(lsock=lsock, env={"UNIFIED_IDLE_TIMEOUT_S": "0.3"})
        a.notify.wait_for("STOPPING=1", timeout=5)
        queued = socket.create_connection(lsock.getsockname(), timeout=10)
        queued.sendall(GET_HEALTH)
        assert a.wait_exit() == 0
        # nothing answered it: it is still waiting in the socket we (systemd) hold
        assert select.select([queued], [], [], 0.1)[0] == []
        assert select.select([lsock], [], [], 0)[0] == [lsock]
        b = spawn(lsock=lsock, env={"UNIFIED_IDLE_TIMEOUT_S": "0.3"})
        assert _http_ok(queued.recv(65536))
        queued.close()
        assert b.wait_exit() == 0
    finally:
        lsock.close()


def test_idle_exit_under_a_trickle_loses_nothing(sdk_path, tmp_path):
    """A miniature systemd: whenever no agent runs and the socket has a pending connection,
    start one (socket activation). Requests arrive with gaps around the idle timeout."""
    lsock = listening_socket()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNIFIED_", "LISTEN_"))}
    env.update({"PYTHONPATH": str(sdk_path), "UNIFIED_AGENT": "Trickle",
                "UNIFIED_PORT": str(lsock.getsockname()[1]),
                "UNIFIED_HEALTH_PORT": str(free_port()), "UNIFIED_IDLE_TIMEOUT_S": "0.1",
                "LISTEN_FDS": "1", "LISTEN_FDNAMES": "agent"})
    fd = lsock.fileno()
    starts = []
    stop = threading.Event()

    def supervisor():
        proc = None
        while not stop.is_set():
            if proc is not None and proc.poll() is not None:
                assert proc.returncode == 0, proc.returncode
                proc = None
            if proc is None and select.select([lsock], [], [], 0.005)[0]:
                proc = subprocess.Popen(
                    ["sh", "-c", f"LISTEN_PID=$$ exec {PYTHON} -m unified_agents run Trickle"],
                    env=env, close_fds=False, stdin=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=lambda: (os.dup2(fd, 3), os.set_inheritable(3, True)))
                starts.append(proc)
            time.sleep(0.005)
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)

    sup = threading.Thread(target=supervisor)
    sup.start()
    gaps = [0.0, 0.05, 0.2, 0.0, 0.09, 0.12, 0.1, 0.01, 0.25, 0.11, 0.0, 0.1]
    codes = []
    try:
        for gap in gaps:
            time.sleep(gap)
            codes.append(raw_exchange(lsock.getsockname()[1], GET_HEALTH, timeout=10)[:12])
    finally:
        stop.set()
        sup.join(20)
        lsock.close()
    assert codes == [b"HTTP/1.1 200"] * len(gaps)
    assert len(starts) >= 3  # it really went idle and came back several times
    assert all(p.returncode == 0 for p in starts)


def test_second_sigint_exits_at_once(spawn):
    a = spawn(env={"UNIFIED_RUN": SAMPLE, "UNIFIED_STOP_GRACE_S": "30"})
    t = threading.Thread(target=lambda: pytest.raises(Exception, a.request, "GET",
                                                      "/sleep/5000", timeout=10))
    t.start()
    time.sleep(0.2)
    a.proc.send_signal(signal.SIGINT)
    a.notify.wait_for("STOPPING=1")
    a.proc.send_signal(signal.SIGINT)
    assert a.wait_exit(5) == 0
    t.join()


def test_stop_grace_bounds_the_drain(spawn):
    a = spawn(env={"UNIFIED_RUN": SAMPLE, "UNIFIED_STOP_GRACE_S": "0.3"})
    t = threading.Thread(target=lambda: pytest.raises(Exception, a.request, "GET",
                                                      "/sleep/3000", timeout=10))
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    assert a.wait_exit(5) == 0
    assert time.monotonic() - t0 < 2.5
    assert "stop grace of 0.3 s is over" in a.stderr()
    t.join()


def test_drain_answers_a_request_already_sent_on_an_idle_keepalive_connection(spawn):
    """SIGTERM arrives while the loop is busy; meanwhile a client reuses its idle keep-alive
    connection. Its request is already in our socket buffer: it must be answered, not reset."""
    a = spawn(env={"UNIFIED_RUN": SAMPLE})
    ka = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    ka.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ka.recv(65536).startswith(b"HTTP/1.1 200")  # now idle between requests
    blocker = threading.Thread(target=a.request, args=("GET", "/block/400"))
    blocker.start()
    time.sleep(0.15)  # the I/O loop is inside /block
    ka.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.05)
    a.proc.send_signal(signal.SIGTERM)
    data = ka.recv(65536)
    blocker.join()
    assert data.startswith(b"HTTP/1.1 200") and b"Connection: close" in data
    ka.close()
    assert a.wait_exit() == 0


def test_keepalive_timeout_closes_idle_connections_on_time(spawn):
    """The keep-alive timeout (0.3 s) is kept even though the request timeout is 10 s."""
    a = spawn(env={"UNIFIED_KEEPALIVE_TIMEOUT_S": "0.3"})
    ka = socket.create_connection(("127.0.0.1", a.port), timeout=5)
    ka.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ka.recv(65536).startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert ka.recv(100) == b""  # closed by the agent
    assert 0.25 < time.monotonic() - t0 < 2
    ka.close()
