"""The SDK's reference agent: what every catalog agent runs until it has a real one.

Honest about it (`"implementation": "reference"` in /health and in unified_agent_build_info), it
accepts POST /task of its declared task types (UNIFIED_TASK_TYPES; empty = any) and answers
with a deterministic result (the same task gives the same answer), and it performs a
configurable simulated load so the platform (start-up ordering, slices, memory limits,
VRAM accounting, slow-loading alerts) can be exercised. All default to 0: the fleet starts
fast.

  UNIFIED_SIM_LOAD_MS    sleep this long in on_start (before READY=1)   0-600000
  UNIFIED_SIM_MEMORY_MB  allocate and touch this much memory at start   0-1048576
  UNIFIED_SIM_VRAM_MB    VRAM reported as used (nothing is allocated)   >= 0
  UNIFIED_SIM_TASK_MS    sleep this long per task (in a worker thread)  0-3600000
"""
from __future__ import annotations

import time

from .agent import Agent

PAGE = 4096


class ReferenceAgent(Agent):
    implementation = "reference"
    health_inline = True  # the hooks below only read attributes: answer on the I/O loop

    load_ms = memory_mb = vram_mb = task_ms = 0
    _ballast = None

    def on_start(self) -> None:
        env = self.config.env
        self.load_ms = env.integer("UNIFIED_SIM_LOAD_MS", 0, 0, 600_000)
        self.memory_mb = env.integer("UNIFIED_SIM_MEMORY_MB", 0, 0, 1 << 20)
        self.vram_mb = env.integer("UNIFIED_SIM_VRAM_MB", 0, 0)
        self.task_ms = env.integer("UNIFIED_SIM_TASK_MS", 0, 0, 3_600_000)
        if self.load_ms:
            time.sleep(self.load_ms / 1000)
        if self.memory_mb:
            n = self.memory_mb << 20
            buf = bytearray(n)               # calloc: pages are not resident yet ...
            buf[::PAGE] = b"\1" * len(range(0, n, PAGE))  # ... until each one is written
            self._ballast = buf

    def handle_task(self, task: dict):
        if self.task_ms:
            time.sleep(self.task_ms / 1000)
        import hashlib
        import json

        canonical = json.dumps(task, sort_keys=True, separators=(",", ":"), default=str)
        return {
            "implementation": "reference",
            "type": task["type"],
            "input_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
            "output": f"reference result for a {task['type']} task",
            "simulated_task_ms": self.task_ms,
        }

    def health_info(self) -> dict:
        return {
            "vram_mb": self.vram_mb,
            "simulated": {"load_ms": self.load_ms, "memory_mb": self.memory_mb,
                          "vram_mb": self.vram_mb, "task_ms": self.task_ms},
        }

    def metrics_text(self) -> str:
        return (
            "# HELP unified_agent_simulated_vram_bytes VRAM the reference agent reports as used.\n"
            "# TYPE unified_agent_simulated_vram_bytes gauge\n"
            f"unified_agent_simulated_vram_bytes {self.vram_mb << 20}\n"
            "# HELP unified_agent_simulated_memory_bytes Memory the reference agent holds on purpose.\n"
            "# TYPE unified_agent_simulated_memory_bytes gauge\n"
            f"unified_agent_simulated_memory_bytes {self.memory_mb << 20}\n"
        )
