#!/usr/bin/python3
"""Import time of built-in agent modules, each in fresh interpreters (BENCHMARKS.md).

For each module: N runs of `python3 -X importtime -c 'import MODULE'`; prints the median
(min–max) CPU time of the import (time.process_time, user+sys: less inflated than wall time
by a shared machine's load), its wall time, the modules loaded, whether click or rich got
loaded (never, for an agent), and the top cumulative/self lines of the median run. Run it
where the package is installed (the test container: `unified_agents`).

    python3 bench/builtin_importtime.py [-n 11] [MODULE ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess

DEFAULT = ("unified_agents.builtin.service_registry", "unified_agents.builtin.observability_hub")
CODE = ("import sys, time; c = time.process_time(); w = time.perf_counter(); import {m}; "
        "print((time.process_time() - c) * 1000, (time.perf_counter() - w) * 1000, len(sys.modules), "
        "'click' in sys.modules, 'rich' in sys.modules)")


def one(module: str) -> tuple[float, float, int, bool, bool, list[tuple[int, int, str]]]:
    p = subprocess.run(["/usr/bin/python3", "-X", "importtime", "-c", CODE.format(m=module)],
                       capture_output=True, text=True, cwd="/", check=True)
    cpu, wall, n, click, rich = p.stdout.split()
    rows = []  # (cumulative µs, self µs, name)
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, cum, name = line[len("import time:"):].split("|")
            rows.append((int(cum), int(own), name.strip()))
    return float(cpu), float(wall), int(n), click == "True", rich == "True", rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=11)
    ap.add_argument("modules", nargs="*", default=list(DEFAULT))
    args = ap.parse_args()
    for module in args.modules:
        runs = sorted((one(module) for _ in range(args.n)), key=lambda r: r[0])
        cpu, wall = [r[0] for r in runs], [r[1] for r in runs]
        mid = runs[len(runs) // 2]
        print(f"{module}: CPU median {statistics.median(cpu):.1f} ms ({min(cpu):.1f}–{max(cpu):.1f}), "
              f"wall median {statistics.median(wall):.1f} ms ({min(wall):.1f}–{max(wall):.1f}), "
              f"{mid[2]} modules, click {'LOADED' if any(r[3] for r in runs) else 'no'}, "
              f"rich {'LOADED' if any(r[4] for r in runs) else 'no'}")
        print("  cumulative: " + ", ".join(f"{n} {c / 1000:.1f} ms" for c, _, n in sorted(mid[5], reverse=True)[:8]))
        print("  self: " + ", ".join(f"{n} {s / 1000:.1f} ms" for _, s, n in
                                      sorted(mid[5], key=lambda r: -r[1])[:6]))
    print("load average: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
