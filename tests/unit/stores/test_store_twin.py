"""SystemDigitalTwin (agents/builtin/digital_twin.py): profile history, lifecycle events and
resource snapshots from systemd's view, conversation memory, history endpoints, retention."""
import threading
import time
import types

import pytest

from unified_agents.builtin.digital_twin import MIGRATIONS, Observer, TwinDB, parse_time
from unified_core.fleetview import FleetView
from unified_agents.server import HTTPError
from unified_agents.store import Store
from unified_core.errors import SystemdError
from unified_core.health import HealthResult

from ..sdk.harness import listening_socket, raw_exchange


class Seam:
    """The systemd seam (list-units + show), answering from a dict the test edits."""

    def __init__(self):
        self.units = {}
        self.error = None

    def set(self, agent, service, sock="active", **props):
        self.units[f"unified-agent@{agent}.service"] = {
            "ActiveState": service, "SubState": "running" if service == "active" else "dead",
            **{k: str(v) for k, v in props.items()}}
        self.units[f"unified-agent@{agent}.socket"] = {"ActiveState": sock,
                                                       "SubState": "listening"}

    def list_units(self, patterns):
        if self.error:
            raise SystemdError(self.error)
        return [{"unit": u, "active": p["ActiveState"], "sub": p["SubState"]}
                for u, p in self.units.items()]

    def show(self, units, props):
        return {u: dict(self.units.get(u, {})) for u in units}


def mono_us(ago_s: float) -> int:
    return int((time.clock_gettime(time.CLOCK_MONOTONIC) - ago_s) * 1e6)


@pytest.fixture
def twin(tmp_path, units):
    seam = Seam()
    seam.set("Alpha", "active", MainPID=100, StateChangeTimestampMonotonic=mono_us(50))
    seam.set("Beta", "inactive")
    store = Store(str(tmp_path / "state" / "twin.db"), MIGRATIONS)

    def make(gpu=None):
        view = FleetView(str(units.catalog), systemd=seam,
                         probe=lambda h, p, t: HealthResult(True, "healthy", {}))
        return Observer(TwinDB(store), view, gpu=gpu)
    return types.SimpleNamespace(seam=seam, db=TwinDB(store), make=make, units=units)


def test_the_first_poll_records_the_profile_and_every_agents_state(twin):
    obs = twin.make()
    events = obs.poll()
    assert {(e["agent"], e["event"], e["state"]) for e in events} == {
        ("Alpha", "observed", "active"), ("Beta", "observed", "dormant"),
        ("Gamma", "observed", "stopped")}
    assert [(p["profile"], p["previous"], p["reason"])
            for p in twin.db.profiles(0, 1e12)] == [("core", None, "startup")]
    assert obs.current["Alpha"]["pid"] == 100


def test_a_state_change_is_one_event_stamped_with_systemds_time(twin):
    obs = twin.make()
    obs.poll()
    assert obs.poll() == []                                    # nothing changed: no rows
    time.sleep(0.5)
    changed = time.time() - 0.3                      # the wall time of systemd's timestamp
    twin.seam.set("Beta", "active", MainPID=200, StateChangeTimestampMonotonic=mono_us(0.3))
    twin.seam.set("Alpha", "failed", Result="exit-code", StateChangeTimestampMonotonic=mono_us(0.1))
    events = {e["agent"]: e for e in obs.poll()}
    assert set(events) == {"Alpha", "Beta"}
    assert (events["Beta"]["previous"], events["Beta"]["state"]) == ("dormant", "active")
    assert events["Beta"]["ts"] == pytest.approx(changed, abs=0.05)   # not the poll's time
    assert events["Alpha"]["result"] == "exit-code" and events["Alpha"]["pid"] is None
    rows = twin.db.lifecycle(0, 1e12, agent="Alpha")
    assert [r["event"] for r in rows] == ["observed", "state"]


def test_a_restart_between_two_polls_is_recorded_from_the_new_pid(twin):
    obs = twin.make()
    obs.poll()
    twin.seam.set("Alpha", "active", MainPID=101, NRestarts=1,
                  StateChangeTimestampMonotonic=mono_us(0.5))
    (e,) = obs.poll()
    assert (e["agent"], e["event"], e["pid"], e["restarts"]) == ("Alpha", "restarted", 101, 1)


def test_a_restarted_twin_continues_from_the_recorded_state(twin):
    twin.make().poll()
    assert twin.make().poll() == []                  # same facts: no duplicate rows
    time.sleep(0.5)
    changed = time.time() - 0.3                      # the wall time of systemd's timestamp
    twin.seam.set("Beta", "failed", StateChangeTimestampMonotonic=mono_us(0.3))
    events = twin.make().poll()                      # changed while the twin was down
    assert [(e["agent"], e["previous"], e["state"]) for e in events] == [
        ("Beta", "dormant", "failed")]
    # the change's own time, not the poll's (compared with when it was set, so a slow
    # poll on a loaded machine does not move it)
    assert events[0]["ts"] == pytest.approx(changed, abs=0.05)


def test_a_profile_switch_is_recorded_with_the_previous_one(twin):
    obs = twin.make()
    obs.poll()
    time.sleep(0.01)
    twin.units.select_profile("more")
    obs.poll()
    assert [(p["profile"], p["previous"], p["reason"]) for p in twin.db.profiles(0, 1e12)] == [
        ("core", None, "startup"), ("more", "core", "switched")]
    assert twin.make().poll() == [] and len(twin.db.profiles(0, 1e12)) == 2


def test_systemd_errors_are_reported_and_the_last_state_stays(twin):
    obs = twin.make()
    obs.poll()
    twin.seam.error = "Failed to connect to bus"
    with pytest.raises(SystemdError):
        obs.poll()
    assert obs.error == "Failed to connect to bus" and obs.current["Alpha"]["state"] == "active"
    twin.seam.error = None
    obs.poll()
    assert obs.error == ""


def test_a_snapshot_records_resources_of_running_agents_and_cpu_percent(twin):
    twin.seam.set("Alpha", "active", MainPID=100, MemoryCurrent=50 << 20,
                  CPUUsageNSec=2_000_000_000)
    gpu = types.SimpleNamespace(read_snapshot=lambda: types.SimpleNamespace(
        total_bytes=8 << 30, used_bytes=1 << 30,
        gpus=[types.SimpleNamespace(index=0, name="T4", used_bytes=1 << 30, total_bytes=8 << 30,
                                    utilization_percent=7)],
        by_agent=lambda: {"Alpha": 512 << 20}))
    obs = twin.make(gpu=gpu)
    s1 = obs.snapshot()
    assert (s1["active"], s1["dormant"]) == (1, 1)
    (a,) = s1["agents"]
    assert (a["agent"], a["memory_bytes"], a["cpu_seconds"], a["vram_mb"]) == \
        ("Alpha", 50 << 20, 2.0, 512.0)
    assert a["cpu_percent"] is None                   # needs two readings
    time.sleep(0.2)
    twin.seam.set("Alpha", "active", MainPID=100, MemoryCurrent=60 << 20,
                  CPUUsageNSec=2_100_000_000)
    obs.poll()
    s2 = obs.snapshot()
    assert 0 < s2["agents"][0]["cpu_percent"] <= 50   # 0.1 s of CPU in >= 0.2 s
    stored = twin.db.snapshots(0, 1e12)
    assert [s["id"] for s in stored] == [s1["id"], s2["id"]]
    assert stored[0]["gpu"]["gpus"][0]["name"] == "T4"
    rows = twin.db.resources(0, 1e12, agent="Alpha")
    assert [r["memory_bytes"] for r in rows] == [50 << 20, 60 << 20]
    assert isinstance(rows[0]["ts"], float) and rows[0]["at"].endswith("Z")


def test_no_gpu_means_no_gpu_data_not_a_failed_snapshot(twin):
    def no_gpu():
        raise RuntimeError("no GPU: NVML library not found")
    obs = twin.make(gpu=types.SimpleNamespace(read_snapshot=no_gpu))
    snap = obs.snapshot()
    assert snap["gpu"] is None and snap["id"] > 0 and obs.gpu_reason.startswith("no GPU")
    assert obs.gpu_available is False


def test_retention_removes_old_rows_but_keeps_each_agents_last_state(twin):
    obs = twin.make()
    obs.poll()
    obs.snapshot()
    db = twin.db
    for i in range(5):
        db.memory.add(time.time(), "s", "user", f"m{i}", None)
    later = time.time() + 40 * 86400
    removed = db.prune(later, snapshot_days=35, event_days=30, profile_days=0,
                       memory_days=0, memory_max_turns=3)
    assert removed["snapshots"] == 1 and removed["lifecycle_events"] == 0
    assert removed["conversation_turns"] == 2
    assert db.snapshots(0, 1e12) == [] and len(db.lifecycle(0, 1e12)) == 3
    assert [t["content"] for t in db.memory.get("s", 10)] == ["m2", "m3", "m4"]
    assert db.store.query("SELECT count(*) FROM snapshot_agents")[0][0] == 0  # cascade


def test_conversation_memory_per_session_and_clear(twin):
    db = twin.db
    for s, c in (("a", "one"), ("b", "two"), ("a", "three")):
        db.memory.add(time.time(), s, "user", c, None)
    assert [t["content"] for t in db.memory.get("a", 10)] == ["one", "three"]
    assert [t["content"] for t in db.memory.get("a", 1)] == ["three"]   # the latest
    first = db.memory.get("a", 10)[0]["id"]
    assert [t["content"] for t in db.memory.get("a", 10, after_id=first)] == ["three"]
    assert {s["session"]: s["turns"] for s in db.memory.sessions(10)} == {"a": 2, "b": 1}
    assert db.memory.clear("b") == {"cleared_turns": 1, "cleared_sessions": 1}
    assert db.memory.clear() == {"cleared_turns": 2, "cleared_sessions": 1}


@pytest.mark.parametrize("text, expect", [
    ("1700000000", 1700000000.0), ("1700000000.5", 1700000000.5),
    ("2023-11-14T22:13:20Z", 1700000000.0), ("2023-11-14T22:13:20", 1700000000.0),
    ("2023-11-15T00:13:20+02:00", 1700000000.0), ("7d", 2000000 - 7 * 86400),
    ("90s", 2000000 - 90), ("1.5h", 2000000 - 5400)])
def test_times_are_unix_seconds_iso_8601_or_an_age(text, expect):
    assert parse_time("since", text, 2000000.0) == expect


def test_a_bad_time_is_a_400_that_says_what_is_allowed():
    with pytest.raises(HTTPError) as e:
        parse_time("since", "yesterday", 0)
    assert e.value.status == 400 and "ISO 8601" in e.value.message


# ----------------------------------------------------------------------------- over HTTP
@pytest.fixture
def http_twin(start_agent, units):
    units.set_state("Alpha", "active", MainPID=4242, MemoryCurrent=10 << 20)
    units.set_state("Beta", "inactive")

    def start(lsock=None):
        return start_agent("digital_twin", name="SystemDigitalTwin", lsock=lsock,
                           TWIN_POLL_S=0.5, **units.env())
    return start


CURL_CLEAR = (b"POST /memory/clear HTTP/1.1\r\nHost: localhost:7220\r\n"
              b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")


def test_http_the_runbooks_memory_clear_works_with_no_body_and_no_content_type(http_twin):
    a = http_twin()
    for s in ("s1", "s2"):
        st, t, _ = a.request("POST", "/memory", {"session": s, "role": "user", "content": "hi"})
        assert st == 201 and t["id"] > 0
    raw = raw_exchange(a.port, CURL_CLEAR.replace(b"Accept", b"Connection: close\r\nAccept"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert b'"cleared_turns":2' in body and b'"scope":"all"' in body
    assert a.request("GET", "/memory")[1]["sessions"] == []
    a.request("POST", "/memory", {"session": "keep", "role": "user", "content": "x"})
    a.request("POST", "/memory", {"session": "drop", "role": "user", "content": "y"})
    st, out, _ = a.request("POST", "/memory/clear", {"session": "drop"})
    assert st == 200 and out["scope"] == "drop" and out["cleared_turns"] == 1
    assert [s["session"] for s in a.request("GET", "/memory")[1]["sessions"]] == ["keep"]


def test_http_state_and_history(http_twin, units):
    a = http_twin()
    st, state, _ = a.request("GET", "/state")
    assert st == 200 and state["profile"] == "core"
    assert state["agents"]["Alpha"]["state"] == "active" and state["agents"]["Alpha"]["pid"] == 4242
    assert state["agents"]["Beta"]["state"] == "dormant"
    st, snap, _ = a.request("POST", "/snapshots")
    assert st == 201 and snap["agents"][0]["memory_bytes"] == 10 << 20
    units.set_state("Alpha", "failed", Result="signal")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ev = a.request("GET", "/history/lifecycle?agent=Alpha&since=1h")[1]["events"]
        if ev[-1]["state"] == "failed":
            break
        time.sleep(0.1)
    assert [e["state"] for e in ev] == ["active", "failed"] and ev[-1]["result"] == "signal"
    assert a.request("GET", "/history/events?agent=Alpha")[1]["count"] == 2
    res = a.request("GET", "/history/resources?since=1h")[1]["resources"]
    assert res[0]["agent"] == "Alpha" and isinstance(res[0]["ts"], float)
    assert a.request("GET", "/history/snapshots?limit=5")[1]["snapshots"][0]["id"] == snap["id"]
    assert a.request("GET", "/history/profiles")[1]["profiles"][0]["profile"] == "core"
    st, h, _ = a.request("GET", "/health", health=True)
    assert st == 200 and h["checks"]["systemd"]["status"] == "ok"
    assert h["checks"]["database"]["status"] == "ok" and h["rows"]["snapshots"] == 1
    g = h["checks"]["gpu"]   # a snapshot was taken: with or without a GPU, /health says which
    assert g["status"] == "ok" and (g["available"] is True or g["reason"].startswith("no GPU")), g


BAD_INPUT = [
    ("POST", "/memory", b"{bad json", 400),
    ("POST", "/memory", b"", 400),
    ("POST", "/memory", {"session": "s", "role": "user"}, 400),
    ("POST", "/memory", {"session": "s", "role": "user", "content": 7}, 400),
    ("POST", "/memory", {"session": "s p", "role": "user", "content": "x"}, 400),
    ("POST", "/memory", {"session": "s", "role": "user", "content": "x" * 40000}, 413),
    ("POST", "/memory", {"session": "s", "role": "user", "content": "x", "meta": 3}, 400),
    ("POST", "/memory/clear", b"{nope", 400),
    ("POST", "/memory/clear", {"session": 5}, 400),
    ("GET", "/memory?session=s&limit=0", None, 400),
    ("GET", "/history/lifecycle?since=soon", None, 400),
    ("GET", "/history/lifecycle?since=2d&until=3d", None, 400),
    ("GET", "/history/lifecycle?agent=Nobody", None, 404),
    ("GET", "/history/snapshots?foo=1", None, 400),
    ("POST", "/task", {"type": "system_state", "data": {"op": "fly"}}, 400),
]


def test_http_bad_input_is_a_clear_400_and_the_twin_stays_healthy(http_twin):
    a = http_twin()
    pid = a.proc.pid
    for method, path, body, status in BAD_INPUT:
        st, resp, _ = a.request(method, path, body)
        assert st == status, (method, path, resp)
        assert resp["error"]
        st, h, _ = a.request("GET", "/health", health=True)
        assert st == 200 and h["status"] == "healthy"
    assert a.proc.poll() is None and a.proc.pid == pid


def test_http_acknowledged_turns_survive_kill_9_during_writes(http_twin):
    lsock = listening_socket()
    a = http_twin(lsock)
    acked, stop = [], threading.Event()

    def writer(n):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                st, t, _ = a.request("POST", "/memory", {"session": f"w{n}", "role": "user",
                                                         "content": f"{n}-{i}"}, timeout=5)
                if st == 201:
                    acked.append(t["id"])
            except OSError:
                pass
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    a.proc.kill()
    a.proc.wait(5)
    b = http_twin(lsock)        # what Restart= does: the queued writes reach the new one
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 200
    stored = set()
    for n in range(4):
        st, body, _ = b.request("GET", f"/memory?session=w{n}&limit=10000")
        stored |= {t["id"] for t in body["turns"]}
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged turns"
    ev = b.request("GET", "/state")[1]
    assert ev["agents"]["Alpha"]["state"] == "active"
