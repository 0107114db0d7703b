#!/usr/bin/python3
"""`make bench`: run the benchmarks in a booted systemd container and write BENCHMARKS.md.

Timings are benchmarks, never test assertions: medians and p95 over repeated runs on a
shared, noisy machine, next to what the system we replace took (its runbook).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "system"))
sys.path.insert(0, str(REPO / "bench"))

import harness  # noqa: E402


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(values):
    return {"n": len(values), "median": statistics.median(values), "p95": pct(values, 0.95),
            "min": min(values), "max": max(values)}


def machine_facts() -> str:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, kernel {platform.release()}, "
            f"container: Debian bookworm, systemd 252 under systemd-nspawn")


class LoadSampler:
    """The host's 1-minute load average every few seconds while the benches run: the
    machine is shared, and a reader needs to know how busy it was."""

    def __init__(self, every: float = 5.0):
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def line(self) -> str:
        if not self.samples:
            return "Load during the run: not sampled."
        xs = sorted(self.samples)
        return (f"Load during the run (host's 1-minute load average every 5 s, {len(xs)} samples; "
                f"{os.cpu_count()} CPUs): median {xs[len(xs) // 2]:.1f}, max {xs[-1]:.1f}. "
                "The benches' own container work counts in it too.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "7")))
    ap.add_argument("--out", default=None,
                    help="where to write (default: BENCHMARKS.md for a whole run; with --only "
                         "build/bench-ONLY.md, so a partial run never replaces the whole file: "
                         "its sections are merged into BENCHMARKS.md by hand)")
    ap.add_argument("--only", nargs="*", help="bench modules to run (default: all)")
    args = ap.parse_args()
    if args.out is None:
        args.out = str(REPO / "BENCHMARKS.md") if not args.only else \
            str(REPO / "build" / f"bench-{'-'.join(args.only)}.md")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    import importlib

    # Every bench/bench_*.py with run(container, runs, summary) -> list of Markdown lines.
    modules = [importlib.import_module(p.stem) for p in sorted(Path(__file__).parent.glob("bench_*.py"))]
    modules.sort(key=lambda m: getattr(m, "ORDER", 50))
    if args.only:
        modules = [m for m in modules if m.__name__ in args.only or m.__name__.split("_", 1)[1] in args.only]

    harness.preflight()
    harness.install_signal_handlers()
    deb = harness.find_or_build_deb()
    rootfs = harness.ensure_rootfs(deb)
    sections = []
    failed: list[str] = []
    c = harness.boot(rootfs, deb, label="bench")
    load = LoadSampler().__enter__()
    try:
        for mod in modules:
            print(f"== {mod.__name__}", flush=True)
            try:
                sections.append(mod.run(c, args.runs, summary))
            except Exception as e:  # one broken bench must not lose the others' numbers
                print(f"   {mod.__name__} failed: {e}", flush=True)
                failed.append(mod.__name__)
                sections.append([f"## {mod.__name__}", "", f"**Failed in this run**: `{type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''}`", ""])
    finally:
        load.__exit__(None, None, None)
        c.stop()
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True).stdout.strip()
    text = ["# Benchmarks", "",
            f"Written by `make bench` on {datetime.date.today()} (package {version}, {args.runs} runs per row "
            "unless said otherwise).", "", f"Machine: {machine_facts()}.", "", load.line(), "",
            "Medians and p95 of repeated runs; the machine is shared, so compare ratios, not single numbers. "
            "\"The system we replace\" is its runbook's figure.", ""]
    for s in sections:
        text += s
    Path(args.out).write_text("\n".join(text) + "\n")
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
