"""GPU facts through NVML, polled on a timer and served cached.

    from unified_agents.gpu import GpuPoller, gpu_available

    poller = GpuPoller(interval_s=5.0).start()   # a daemon thread; first read happens at once
    snap = poller.latest()                       # GpuSnapshot | None (None: no GPU, or stale)
    if snap is None:
        print(poller.reason)                     # e.g. "no GPU: NVML library not found (...)"
    else:
        for g in snap.gpus:                      # GpuInfo per device
            g.index, g.name, g.total_bytes, g.used_bytes, g.reserved_bytes, g.free_bytes,
            g.utilization_percent, g.memory_utilization_percent, g.processes
        snap.by_agent()                          # {"STTService": bytes, ...} over all GPUs
    poller.stop()

NVML comes from `nvidia-ml-py` (module `pynvml`; Debian: python3-pynvml in contrib, a
Recommends, never a Depends). It is imported lazily and optionally: without the library, the
driver or a device, `gpu_available()` is False, `GpuPoller.latest()` is None and `.reason`
says why in one line; nothing raises. Reads never happen on a request path: one thread polls,
readers take the last immutable snapshot (one attribute read, no lock).

Per-process VRAM: NVML names PIDs; the agent owning a PID is read from /proc/PID/cgroup
(`.../unified-agent@NAME.service`, or `unified-backend@NAME.service` for command agents
behind socket-proxyd). In a container NVML reports host PIDs that /proc may not show: such
processes are listed with agent=None.

Unit tests pass a fake module as `nvml=` (the module boundary); nothing else is faked.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

__all__ = ["GpuProcess", "GpuInfo", "GpuSnapshot", "GpuPoller", "NoGpu", "gpu_available",
           "gpu_status", "read_snapshot", "agent_of_pid", "prometheus_lines"]

MIB = 1 << 20


class NoGpu(Exception):
    """NVML cannot be used here; str(e) is the one-line reason."""


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    gpu_index: int
    used_bytes: int | None     # None: the driver does not say (e.g. no permission, WDDM)
    kind: str                  # "compute" | "graphics"
    agent: str | None = None   # catalog agent owning the PID (from its cgroup), if any


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    uuid: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    reserved_bytes: int = 0            # driver/firmware reserve (NVML memory v2); 0 if unknown
    utilization_percent: int | None = None          # GPU busy, last sample period
    memory_utilization_percent: int | None = None   # memory controller busy
    temperature_c: int | None = None
    power_w: float | None = None
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True)
class GpuSnapshot:
    taken_at: float                    # time.time() of the read
    monotonic: float                   # time.monotonic() of the read (for ages)
    read_s: float                      # how long the NVML read took
    driver_version: str
    gpus: tuple[GpuInfo, ...] = ()
    errors: tuple[str, ...] = field(default=())  # partial failures (a field not supported ...)

    @property
    def total_bytes(self) -> int:
        return sum(g.total_bytes for g in self.gpus)

    @property
    def used_bytes(self) -> int:
        return sum(g.used_bytes for g in self.gpus)

    @property
    def free_bytes(self) -> int:
        return sum(g.free_bytes for g in self.gpus)

    @property
    def reserved_bytes(self) -> int:
        return sum(g.reserved_bytes for g in self.gpus)

    def processes(self) -> tuple[GpuProcess, ...]:
        return tuple(p for g in self.gpus for p in g.processes)

    def by_agent(self) -> dict[str, int]:
        """VRAM bytes per agent over all GPUs (processes of no agent left out)."""
        out: dict[str, int] = {}
        for p in self.processes():
            if p.agent and p.used_bytes:
                out[p.agent] = out.get(p.agent, 0) + p.used_bytes
        return out

    def as_dict(self) -> dict:
        """JSON-ready view (for /health, /gpu endpoints)."""
        return {
            "taken_at": self.taken_at, "read_ms": round(self.read_s * 1000, 2),
            "driver_version": self.driver_version, "errors": list(self.errors),
            "total_bytes": self.total_bytes, "used_bytes": self.used_bytes,
            "free_bytes": self.free_bytes, "reserved_bytes": self.reserved_bytes,
            "gpus": [{
                "index": g.index, "name": g.name, "uuid": g.uuid,
                "total_bytes": g.total_bytes, "used_bytes": g.used_bytes,
                "free_bytes": g.free_bytes, "reserved_bytes": g.reserved_bytes,
                "utilization_percent": g.utilization_percent,
                "memory_utilization_percent": g.memory_utilization_percent,
                "temperature_c": g.temperature_c, "power_w": g.power_w,
                "processes": [{"pid": p.pid, "used_bytes": p.used_bytes, "kind": p.kind,
                               "agent": p.agent} for p in g.processes],
            } for g in self.gpus],
            "by_agent": self.by_agent(),
        }


# ----------------------------------------------------------------- NVML access
_nvml_lock = threading.Lock()
_nvml_state: dict = {}   # "module", "reason" once tried (per process: nvmlInit is global)


def _load(nvml=None):
    """→ an initialised NVML module. Raises NoGpu. A passed module (tests) is used as is;
    the real one is imported and initialised once per process and then kept."""
    if nvml is not None:
        if getattr(nvml, "_unified_initialised", False):
            return nvml
        try:
            nvml.nvmlInit()
            if nvml.nvmlDeviceGetCount() < 1:
                raise NoGpu("no GPU: NVML reports 0 devices")
        except NoGpu:
            raise
        except Exception as e:
            raise NoGpu(f"no GPU: {_err(e)}") from None
        nvml._unified_initialised = True
        return nvml
    with _nvml_lock:
        if "module" in _nvml_state:
            return _nvml_state["module"]
        if "reason" in _nvml_state:
            raise NoGpu(_nvml_state["reason"])
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            reason = ("no GPU: NVML bindings not installed (pip install nvidia-ml-py, "
                      "or apt install python3-pynvml from contrib)")
            _nvml_state["reason"] = reason
            raise NoGpu(reason) from None
        try:
            pynvml.nvmlInit()
            n = pynvml.nvmlDeviceGetCount()
        except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, NoPermission ...
            reason = f"no GPU: {_err(e)}"
            _nvml_state["reason"] = reason
            raise NoGpu(reason) from None
        if n < 1:
            _nvml_state["reason"] = "no GPU: NVML reports 0 devices"
            raise NoGpu(_nvml_state["reason"])
        _nvml_state["module"] = pynvml
        return pynvml


def _err(e: BaseException) -> str:
    s = str(e).strip()
    name = type(e).__name__
    return f"{name}: {s}" if s and s != name else name


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def gpu_status(nvml=None) -> tuple[bool, str]:
    """(available, one-line description): "2 GPU(s): NVIDIA H100 ..." or "no GPU: why"."""
    try:
        m = _load(nvml)
        n = m.nvmlDeviceGetCount()
        names = [_text(m.nvmlDeviceGetName(m.nvmlDeviceGetHandleByIndex(i))) for i in range(n)]
        return True, f"{n} GPU(s): {', '.join(names)}"
    except NoGpu as e:
        return False, str(e)
    except Exception as e:
        return False, f"no GPU: {_err(e)}"


def gpu_available(nvml=None) -> bool:
    return gpu_status(nvml)[0]


def agent_of_pid(pid: int, proc_root: str = "/proc") -> str | None:
    """The catalog agent whose unit holds PID, from /proc/PID/cgroup (v1 or v2 lines)."""
    try:
        with open(f"{proc_root}/{int(pid)}/cgroup", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for seg in reversed(path.split("/")):
            for prefix in ("unified-agent@", "unified-backend@"):
                if seg.startswith(prefix) and seg.endswith(".service"):
                    name = seg[len(prefix):-len(".service")]
                    if name:
                        return name
    return None


def _opt(errors: list, what: str, fn, *args):
    """One optional NVML field: None (and a note) when the device does not support it."""
    try:
        return fn(*args)
    except Exception as e:
        errors.append(f"{what}: {_err(e)}")
        return None


def _memory(m, h, errors: list):
    """(total, used, free, reserved). v2 (driver ≥ 510) separates the reserve from `used`;
    v1 counts it in `used`."""
    v2 = getattr(m, "nvmlMemory_v2", None)
    if v2 is not None:
        try:
            mem = m.nvmlDeviceGetMemoryInfo(h, version=v2)
            return int(mem.total), int(mem.used), int(mem.free), int(getattr(mem, "reserved", 0))
        except Exception as e:  # old driver: FunctionNotFound / ArgumentVersionMismatch
            errors.append(f"memory v2: {_err(e)}")
    mem = m.nvmlDeviceGetMemoryInfo(h)
    return int(mem.total), int(mem.used), int(mem.free), 0


def _processes(m, h, index: int, proc_root: str, errors: list) -> tuple[GpuProcess, ...]:
    out: dict[tuple[int, str], GpuProcess] = {}
    for kind, fname in (("compute", "nvmlDeviceGetComputeRunningProcesses"),
                        ("graphics", "nvmlDeviceGetGraphicsRunningProcesses")):
        fn = getattr(m, fname, None)
        if fn is None:
            continue
        procs = _opt(errors, f"gpu {index} {kind} processes", fn, h) or []
        for p in procs:
            pid = int(p.pid)
            used = getattr(p, "usedGpuMemory", None)
            used = int(used) if used is not None and 0 <= int(used) < (1 << 63) else None
            key = (pid, kind)
            if key not in out:
                out[key] = GpuProcess(pid, index, used, kind, agent_of_pid(pid, proc_root))
    return tuple(out.values())


def read_snapshot(nvml=None, proc_root: str = "/proc") -> GpuSnapshot:
    """One NVML read of every GPU. Raises NoGpu when NVML cannot be used at all; fields a
    device does not support are None and noted in .errors."""
    m = _load(nvml)
    t0 = time.monotonic()
    errors: list[str] = []
    driver = _opt(errors, "driver version", m.nvmlSystemGetDriverVersion)
    gpus = []
    count = m.nvmlDeviceGetCount()  # failing after a good init: transient, the caller retries
    for i in range(count):
        try:
            h = m.nvmlDeviceGetHandleByIndex(i)
            total, used, free, reserved = _memory(m, h, errors)
        except Exception as e:  # GPU lost / reset required: report the rest
            errors.append(f"gpu {i}: {_err(e)}")
            continue
        util = _opt(errors, f"gpu {i} utilization", m.nvmlDeviceGetUtilizationRates, h)
        temp_sensor = getattr(m, "NVML_TEMPERATURE_GPU", 0)
        temp = _opt(errors, f"gpu {i} temperature", m.nvmlDeviceGetTemperature, h, temp_sensor)
        power = _opt(errors, f"gpu {i} power", m.nvmlDeviceGetPowerUsage, h)  # milliwatts
        gpus.append(GpuInfo(
            index=i,
            name=_text(_opt(errors, f"gpu {i} name", m.nvmlDeviceGetName, h) or f"GPU {i}"),
            uuid=_text(_opt(errors, f"gpu {i} uuid", m.nvmlDeviceGetUUID, h) or ""),
            total_bytes=total, used_bytes=used, free_bytes=free, reserved_bytes=reserved,
            utilization_percent=int(util.gpu) if util is not None else None,
            memory_utilization_percent=int(util.memory) if util is not None else None,
            temperature_c=int(temp) if temp is not None else None,
            power_w=round(power / 1000.0, 1) if power is not None else None,
            processes=_processes(m, h, i, proc_root, errors)))
    return GpuSnapshot(taken_at=time.time(), monotonic=time.monotonic(),
                       read_s=time.monotonic() - t0, driver_version=_text(driver or ""),
                       gpus=tuple(gpus), errors=tuple(errors))


# ----------------------------------------------------------------- poller
class GpuPoller:
    """Reads NVML every `interval_s` on a daemon thread; `latest()` serves the last read.

    available   False once NVML proved unusable (then the thread stops: no GPU appears
                while a process runs; a restarted agent looks again)
    reason      one line: "1 GPU(s): NVIDIA H100 80GB HBM3" or "no GPU: ..." or the last
                read error
    latest()    the last snapshot, or None when there is none or it is older than
                `stale_after_s` (default 3 intervals + 5 s: a hung driver shows as no data,
                not as old data)
    on_update   optional callable(snapshot) run on the poller thread after each good read
    """

    def __init__(self, interval_s: float = 5.0, *, nvml=None, proc_root: str = "/proc",
                 stale_after_s: float | None = None, on_update=None, log=None):
        if not interval_s > 0:
            raise ValueError(f"interval_s={interval_s!r}; allowed: a number > 0")
        self.interval_s = float(interval_s)
        self.stale_after_s = (3 * self.interval_s + 5.0) if stale_after_s is None \
            else float(stale_after_s)
        self._nvml = nvml
        self._proc_root = proc_root
        self._on_update = on_update
        self._log = log
        self._snap: GpuSnapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available: bool | None = None   # None: not tried yet
        self.reason = "GPU not read yet"
        self.reads = 0
        self.read_errors = 0

    def poll_once(self) -> GpuSnapshot | None:
        """One read now (the thread calls this; tests and one-shot tools may too)."""
        try:
            snap = read_snapshot(self._nvml, self._proc_root)
        except NoGpu as e:
            self.available = False
            self.reason = str(e)
            self._snap = None
            return None
        except Exception as e:  # a driver hiccup: keep polling, report it
            self.read_errors += 1
            self.reason = f"GPU read failed: {_err(e)}"
            if self._log:
                self._log.warning("NVML read failed", error=_err(e))
            return None
        self.available = True
        self.reads += 1
        names = ", ".join(g.name for g in snap.gpus)
        self.reason = f"{len(snap.gpus)} GPU(s): {names}" if snap.gpus else \
            "no GPU: every device failed to read (" + "; ".join(snap.errors[:3]) + ")"
        self._snap = snap
        if self._on_update is not None:
            try:
                self._on_update(snap)
            except Exception as e:  # a consumer's bug must not stop the poller
                if self._log:
                    self._log.warning("GPU on_update callback failed", error=_err(e))
        return snap

    def start(self) -> "GpuPoller":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gpu-poller", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            if self.available is False:
                return
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def latest(self) -> GpuSnapshot | None:
        snap = self._snap
        if snap is None or time.monotonic() - snap.monotonic > self.stale_after_s:
            return None
        return snap

    def status(self) -> dict:
        """For /health: {"available", "reason", "age_s", "reads", "read_errors"}."""
        snap = self._snap
        return {"available": bool(self.available), "reason": self.reason,
                "age_s": round(time.monotonic() - snap.monotonic, 1) if snap else None,
                "reads": self.reads, "read_errors": self.read_errors}


def _esc(v) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_lines(snap: GpuSnapshot | None, prefix: str = "unified_gpu") -> list[str]:
    """Prometheus text lines for a snapshot; [] when there is none (no GPU: metrics absent,
    never zeros that would look like an idle GPU)."""
    if snap is None or not snap.gpus:
        return []
    out: list[str] = []
    series = (("memory_total_bytes", "Total VRAM.", lambda g: g.total_bytes),
              ("memory_used_bytes", "VRAM in use (NVML).", lambda g: g.used_bytes),
              ("memory_free_bytes", "Free VRAM (NVML).", lambda g: g.free_bytes),
              ("memory_reserved_bytes", "VRAM reserved by driver/firmware.",
               lambda g: g.reserved_bytes),
              ("utilization_percent", "GPU busy percent, last sample period.",
               lambda g: g.utilization_percent),
              ("memory_utilization_percent", "Memory controller busy percent.",
               lambda g: g.memory_utilization_percent))
    for name, help_, get in series:
        rows = [(g, get(g)) for g in snap.gpus if get(g) is not None]
        if not rows:
            continue
        out += [f"# HELP {prefix}_{name} {help_}", f"# TYPE {prefix}_{name} gauge"]
        out += [f'{prefix}_{name}{{gpu="{g.index}",name="{_esc(g.name)}",uuid="{_esc(g.uuid)}"}} {v}'
                for g, v in rows]
    agents = snap.by_agent()
    if agents:
        out += [f"# HELP {prefix}_agent_memory_used_bytes VRAM used by the processes of an agent.",
                f"# TYPE {prefix}_agent_memory_used_bytes gauge"]
        out += [f'{prefix}_agent_memory_used_bytes{{agent="{_esc(a)}"}} {b}'
                for a, b in sorted(agents.items())]
    return out


def _main() -> int:  # python3 -m unified_agents.gpu: one read, printed (device check)
    import json
    import sys

    ok, why = gpu_status()
    print(why)
    if not ok:
        return 1
    poller = GpuPoller(interval_s=1.0)
    snap = poller.poll_once()
    if snap is None:
        print(poller.reason)
        return 1
    json.dump(snap.as_dict(), sys.stdout, indent=2)
    print()
    print("\n".join(prometheus_lines(snap)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
