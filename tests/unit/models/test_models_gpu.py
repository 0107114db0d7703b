"""unified_agents.gpu: NVML facts, cached by a poller; no GPU is a clear reason, never a crash."""
from __future__ import annotations

import time

import pytest

from tests.promlint import promtool_findings
from unified_agents import gpu
from .fake_nvml import FakeNvml, GiB, MiB, h100


@pytest.fixture
def proc_root(tmp_path):
    """A /proc with three PIDs: an agent, a command agent's backend, and a stranger."""
    def put(pid, text):
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "cgroup").write_text(text)
    put(101, "0::/unified.slice/unified-agents.slice/unified-agent@STTService.service\n")
    put(102, "12:pids:/system.slice\n1:name=systemd:/unified-agents.slice/"
             "unified-backend@LlamaServer.service\n0::/\n")
    put(103, "0::/user.slice/user-1000.slice/session-2.scope\n")
    return str(tmp_path)


def test_snapshot_reads_memory_utilization_and_processes_per_gpu(proc_root):
    fake = FakeNvml([h100(procs=[(101, 3 * GiB), (103, 1 * GiB)]),
                     h100(uuid="GPU-2222", used=1 * GiB, procs=[(102, 700 * MiB)],
                          gprocs=[(101, 200 * MiB)])])
    snap = gpu.read_snapshot(fake, proc_root)
    assert [g.index for g in snap.gpus] == [0, 1]
    g0 = snap.gpus[0]
    assert g0.name == "NVIDIA H100 80GB HBM3"          # bytes from old bindings decoded
    assert (g0.total_bytes, g0.used_bytes, g0.reserved_bytes) == (80 * GiB, 10 * GiB, 512 * MiB)
    assert g0.free_bytes == 80 * GiB - 10 * GiB - 512 * MiB
    assert (g0.utilization_percent, g0.memory_utilization_percent) == (37, 12)
    assert g0.power_w == 70.5
    assert snap.driver_version == "550.54.15"
    assert {(p.pid, p.agent, p.kind) for p in snap.processes()} == {
        (101, "STTService", "compute"), (103, None, "compute"),
        (102, "LlamaServer", "compute"), (101, "STTService", "graphics")}
    assert snap.by_agent() == {"STTService": 3 * GiB + 200 * MiB, "LlamaServer": 700 * MiB}
    assert snap.total_bytes == 160 * GiB


def test_memory_v1_fallback_on_old_driver_counts_reserve_as_used():
    snap = gpu.read_snapshot(FakeNvml([h100()], v2=False), "/nonexistent")
    g = snap.gpus[0]
    assert g.reserved_bytes == 0 and g.used_bytes == 10 * GiB + 512 * MiB
    assert any("memory v2" in e for e in snap.errors)


def test_unsupported_fields_are_none_and_noted_not_fatal():
    d = h100()
    del d["util"]
    snap = gpu.read_snapshot(FakeNvml([d]), "/nonexistent")
    assert snap.gpus[0].utilization_percent is None
    assert any("utilization" in e and "Not Supported" in e for e in snap.errors)


def test_a_lost_gpu_is_reported_and_the_others_still_read():
    snap = gpu.read_snapshot(FakeNvml([h100(lost=True), h100(uuid="GPU-2")]), "/nonexistent")
    assert [g.uuid for g in snap.gpus] == ["GPU-2"]
    assert any("gpu 0" in e and "lost" in e for e in snap.errors)


@pytest.mark.parametrize("fake, words", [
    (FakeNvml([], init_error="NVML Shared Library Not Found"), "Library Not Found"),
    (FakeNvml([], init_error="Driver Not Loaded"), "Driver Not Loaded"),
    (FakeNvml([]), "0 devices"),
])
def test_no_gpu_is_a_one_line_reason(fake, words):
    ok, why = gpu.gpu_status(fake)
    assert ok is False and why.startswith("no GPU: ") and words in why and "\n" not in why
    with pytest.raises(gpu.NoGpu):
        gpu.read_snapshot(fake)
    poller = gpu.GpuPoller(0.05, nvml=fake).start()
    deadline = time.monotonic() + 2
    while poller.available is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert poller.available is False and poller.latest() is None and words in poller.reason
    poller._thread.join(1)
    assert not poller._thread.is_alive()             # no GPU: the thread ends, no busy loop
    assert gpu.prometheus_lines(poller.latest()) == []  # metrics absent, not zeros


def test_without_pynvml_on_this_machine_the_real_path_says_no_gpu():
    # This machine has neither the bindings nor a driver: the real import path must say so.
    try:
        import pynvml  # noqa: F401
        pytest.skip("pynvml is installed here")
    except ImportError:
        pass
    ok, why = gpu.gpu_status()
    assert ok is False and why.startswith("no GPU: NVML bindings not installed")
    assert gpu.gpu_available() is False


def test_poller_serves_cached_snapshot_and_refreshes_on_its_timer():
    fake = FakeNvml([h100()])
    seen = []
    poller = gpu.GpuPoller(0.05, nvml=fake, on_update=seen.append).start()
    try:
        deadline = time.monotonic() + 2
        while poller.latest() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        first = poller.latest()
        assert first is not None and poller.available and "1 GPU(s)" in poller.reason
        reads_before = fake.calls
        for _ in range(100):                        # readers never call NVML
            assert poller.latest() is not None
        assert fake.calls == reads_before
        fake.devices[0]["used"] = 20 * GiB
        while poller.latest().used_bytes != 20 * GiB and time.monotonic() < deadline:
            time.sleep(0.01)
        assert poller.latest().used_bytes == 20 * GiB
        assert len(seen) >= 2 and seen[-1] is poller.latest()
    finally:
        poller.stop()


def test_read_errors_keep_polling_and_stale_data_is_not_served():
    fake = FakeNvml([h100()])
    poller = gpu.GpuPoller(10, nvml=fake, stale_after_s=0.05)
    assert poller.poll_once() is not None
    fake.fail_reads = RuntimeError("driver hiccup")
    assert poller.poll_once() is None
    assert poller.read_errors == 1 and "driver hiccup" in poller.reason
    assert poller.available is True                  # transient, not "no GPU"
    time.sleep(0.06)
    assert poller.latest() is None                   # older than stale_after_s


def test_on_update_exceptions_do_not_stop_the_poller():
    def boom(_):
        raise ValueError("consumer bug")
    poller = gpu.GpuPoller(1, nvml=FakeNvml([h100()]), on_update=boom)
    assert poller.poll_once() is not None and poller.available


def test_agent_of_pid(proc_root):
    assert gpu.agent_of_pid(101, proc_root) == "STTService"
    assert gpu.agent_of_pid(102, proc_root) == "LlamaServer"
    assert gpu.agent_of_pid(103, proc_root) is None
    assert gpu.agent_of_pid(999, proc_root) is None      # gone, or another PID namespace


def test_prometheus_lines_name_every_gpu_and_agent(proc_root):
    snap = gpu.read_snapshot(FakeNvml([h100(procs=[(101, 3 * GiB)])]), proc_root)
    text = "\n".join(gpu.prometheus_lines(snap))
    assert f'unified_gpu_memory_total_bytes{{gpu="0",name="NVIDIA H100 80GB HBM3",uuid="GPU-1111"}} {80 * GiB}' in text
    assert 'unified_gpu_utilization_percent{gpu="0"' in text
    assert f'unified_gpu_agent_memory_used_bytes{{agent="STTService"}} {3 * GiB}' in text
    assert "# TYPE unified_gpu_memory_reserved_bytes gauge" in text
    assert promtool_findings(text + "\n") == "", text      # the hub's GPU series, linted


def test_bad_interval_is_refused():
    with pytest.raises(ValueError):
        gpu.GpuPoller(0)
