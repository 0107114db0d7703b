"""A fake `pynvml` module for unit tests: the NVML module boundary, nothing deeper.

It mirrors the nvidia-ml-py calls unified_agents.gpu makes (names, argument shapes, return
objects with the same attribute names, NVMLError on failure) and lets a test set what the
"driver" reports.
"""
from __future__ import annotations

from types import SimpleNamespace

nvmlMemory_v2 = 0x02000028
NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    def __init__(self, msg="Unknown Error"):
        super().__init__(msg)


class FakeNvml:
    """Instances quack like the pynvml module. `devices`: list of dicts, one per GPU."""

    NVMLError = NVMLError
    nvmlMemory_v2 = nvmlMemory_v2
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU

    def __init__(self, devices=None, *, init_error=None, driver="550.54.15", v2=True):
        self.devices = devices if devices is not None else []
        self.init_error = init_error
        self.driver = driver
        self.v2 = v2
        self.calls = 0
        self.fail_reads: Exception | None = None

    # -- init
    def nvmlInit(self):
        self.calls += 1
        if self.init_error:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    def nvmlDeviceGetCount(self):
        if self.fail_reads:
            raise self.fail_reads
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, i):
        if i >= len(self.devices):
            raise NVMLError("Invalid Argument")
        return i

    # -- per device
    def _dev(self, h):
        d = self.devices[h]
        if d.get("lost"):
            raise NVMLError("GPU is lost")
        return d

    def nvmlDeviceGetName(self, h):
        return self._dev(h).get("name", "Fake GPU").encode()  # old bindings return bytes

    def nvmlDeviceGetUUID(self, h):
        return self._dev(h).get("uuid", f"GPU-fake-{h}")

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        d = self._dev(h)
        total, used, reserved = d["total"], d["used"], d.get("reserved", 0)
        if version:
            if not self.v2:
                raise NVMLError("Function Not Found")
            return SimpleNamespace(version=version, total=total, reserved=reserved, used=used,
                                   free=total - used - reserved)
        # v1 counts the reserve as used
        return SimpleNamespace(total=total, used=used + reserved, free=total - used - reserved)

    def nvmlDeviceGetUtilizationRates(self, h):
        d = self._dev(h)
        if "util" not in d:
            raise NVMLError("Not Supported")
        return SimpleNamespace(gpu=d["util"][0], memory=d["util"][1])

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._dev(h).get("temp", 40)

    def nvmlDeviceGetPowerUsage(self, h):
        return self._dev(h).get("power_mw", 70500)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in self._dev(h).get("procs", [])]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h):
        return [SimpleNamespace(pid=p, usedGpuMemory=b)
                for p, b in self._dev(h).get("gprocs", [])]


GiB = 1 << 30
MiB = 1 << 20


def h100(**kw):
    d = {"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-1111", "total": 80 * GiB,
         "used": 10 * GiB, "reserved": 512 * MiB, "util": (37, 12)}
    d.update(kw)
    return d
