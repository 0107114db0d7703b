"""NLUAgent: intent accuracy and slot F1 on the evaluation set, parse latency, cold start and
idle RSS of the agent process.

The evaluation set (tests/data/nlu/eval.tsv, 207 sentences: paraphrases, typos, numbers as
words, out-of-domain sentences that must fall back) was written before the engine and is
never tuned on; the engine's thresholds were set on tests/data/nlu/dev.tsv. The model is
trained from the shipped intent files (etc/unified/intents.d) and the catalog's agent and
profile names, as the agent does at start.

    python3 bench/bench_nlu.py [--json] [--set dev]    on this machine (this checkout)
    make bench                                         in the test container (run())
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sdk_common import checkout_path

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 3, 10, 0)  # the sets' reference "now" (a Thursday)


def read_set(path: str) -> list[tuple[str, str, dict]]:
    out = []
    for ln in Path(path).read_text().splitlines():
        if not ln.strip() or ln.startswith("#"):
            continue
        intent, text, slots = (ln.split("\t") + ["", ""])[:3]
        pairs = dict(kv.split("=", 1) for kv in slots.split(";") if kv)
        out.append((intent, text, pairs))
    return out


def _norm(v) -> str:
    return re.sub(r"[^\w' :-]", "", str(v).lower()).strip()


def evaluate(model, items) -> dict:
    ok, tp, fp, fn, misses, times, cpu = 0, 0, 0, 0, [], [], []
    for intent, text, want in items:
        t0, c0 = time.perf_counter(), time.process_time()
        r = model.parse(text, NOW)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        got = {(k, _norm(v["value"])) for k, v in r["slots"].items()}
        exp = {(k, _norm(v)) for k, v in want.items()}
        tp += len(got & exp)
        fp += len(got - exp)
        fn += len(exp - got)
        if r["intent"] == intent:
            ok += 1
        if r["intent"] != intent or got != exp:
            misses.append({"text": text, "want": intent, "got": r["intent"],
                           "confidence": r["confidence"], "want_slots": sorted(exp),
                           "got_slots": sorted(got)})
    p = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    times.sort()
    cpu.sort()
    return {"n": len(items), "intent_accuracy": ok / len(items),
            "slot_precision": p, "slot_recall": rec,
            "slot_f1": 2 * p * rec / (p + rec) if p + rec else 0.0,
            "parse_p50_ms": round(times[len(times) // 2] * 1000, 2),
            "parse_p95_ms": round(times[int(len(times) * 0.95)] * 1000, 2),
            # CPU time of the parse: what one core spends, whatever else the machine runs
            "parse_cpu_p50_ms": round(cpu[len(cpu) // 2] * 1000, 2),
            "parse_cpu_p95_ms": round(cpu[int(len(cpu) * 0.95)] * 1000, 2), "misses": misses}


def _ports() -> list[int]:
    out = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        out.append(s.getsockname()[1])
        s.close()
    return out


def measure_agent(pythonpath: str, env_extra: dict, texts: list[str], repeats: int = 3) -> dict:
    """Start NLUAgent as a process: exec → /health (training included), idle RSS, then the
    latency of POST /task over HTTP (what a caller sees)."""
    starts, rss, lat = [], [], []
    for rep in range(repeats):
        port, hport = _ports()
        env = dict(os.environ, PYTHONPATH=pythonpath, UNIFIED_AGENT="NLUAgent",
                   UNIFIED_RUN="builtin:nlu_agent", UNIFIED_PORT=str(port),
                   UNIFIED_HEALTH_PORT=str(hport), **env_extra)
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "unified_agents", "run", "NLUAgent"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:
                try:
                    health = json.loads(urllib.request.urlopen(
                        f"http://127.0.0.1:{hport}/health", timeout=1).read())
                    break
                except OSError:
                    if p.poll() is not None or time.perf_counter() - t0 > 60:
                        raise SystemExit(f"NLUAgent did not start (exit {p.poll()}): "
                                         f"{p.stderr.read().decode()[-500:] if p.stderr else ''}")
                    time.sleep(0.01)
            starts.append(time.perf_counter() - t0)
            time.sleep(0.5)
            with open(f"/proc/{p.pid}/status") as f:
                rss += [int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS")]
            if rep == 0:
                for text in texts:
                    body = json.dumps({"type": "nlu", "text": text}).encode()
                    req = urllib.request.Request(f"http://127.0.0.1:{port}/task", body,
                                                 {"Content-Type": "application/json"})
                    t1 = time.perf_counter()
                    urllib.request.urlopen(req, timeout=10).read()
                    lat.append(time.perf_counter() - t1)
        finally:
            p.terminate()
            p.wait(10)
    starts.sort()
    lat.sort()
    return {"cold_start_s": round(starts[len(starts) // 2], 3),
            "idle_rss_mb": round(sorted(rss)[len(rss) // 2], 1),
            "http_p50_ms": round(lat[len(lat) // 2] * 1000, 2),
            "http_p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 2),
            "health": {k: health.get(k) for k in ("engine", "model_version", "intents")}}


def measure(set_name: str, pythonpath: str, intents_dir: str, catalog: str,
            data_dir: str) -> dict:
    from unified_agents.builtin.nlu import load

    t0 = time.perf_counter()
    model = load(intents_dir, catalog)
    train_s = time.perf_counter() - t0
    items = read_set(os.path.join(data_dir, f"{set_name}.tsv"))
    out = {"set": set_name, "train_s": round(train_s, 3), "model": model.describe(),
           **evaluate(model, items), "load_avg": os.getloadavg()[0]}
    env = {"NLU_INTENTS_DIR": intents_dir, "UNIFIED_CATALOG": catalog}
    out["agent"] = measure_agent(pythonpath, env, [t for _, t, _ in items])
    return out


def markdown(m: dict) -> list[str]:
    a = m["agent"]
    lines = ["## NLU (NLUAgent)", "",
             f"Evaluation set: {m['n']} sentences written before the engine, not tuned on "
             "(paraphrases, typos, numbers as words, out-of-domain sentences that must fall "
             f"back). Model {m['model']['model_version']}: {m['model']['intents']} intents, "
             f"{m['model']['sentences']} expanded example sentences, trained in "
             f"{m['train_s']} s. Machine load {m['load_avg']:.1f}.", "",
             "| measure | value | target |", "| --- | --- | --- |",
             f"| intent accuracy | {m['intent_accuracy']:.1%} | ≥ 95 % |",
             f"| slot F1 (precision / recall) | {m['slot_f1']:.1%} ({m['slot_precision']:.1%} "
             f"/ {m['slot_recall']:.1%}) | ≥ 90 % |",
             f"| parse p50 / p95 (in process, wall) | {m['parse_p50_ms']} / {m['parse_p95_ms']} ms "
             "| |",
             f"| parse p50 / p95 (in process, CPU time) | {m['parse_cpu_p50_ms']} / "
             f"{m['parse_cpu_p95_ms']} ms | |",
             f"| POST /task p50 / p95 (HTTP, one client) | {a['http_p50_ms']} / "
             f"{a['http_p95_ms']} ms | |",
             f"| cold start (exec → /health, training included) | {a['cold_start_s']} s | |",
             f"| idle RSS | {a['idle_rss_mb']} MB | |", ""]
    if m["misses"]:
        lines += [f"Misses ({len(m['misses'])}):", ""]
        for x in m["misses"]:
            lines.append(f"- \"{x['text']}\": {x['want']} → {x['got']} ({x['confidence']})"
                         + ("" if x["want_slots"] == x["got_slots"] else
                            f"; slots {x['want_slots']} → {x['got_slots']}"))
        lines.append("")
    return lines


def run(c, runs, summary):
    """`make bench`: the same measurement inside the container, against the installed package
    (intents from /etc/unified/intents.d, names from the installed catalog)."""
    for name in ("bench_nlu.py", "sdk_common.py"):  # sdk_common: checkout_path
        c.write_file(f"/root/{name}", (Path(__file__).parent / name).read_text())
    c.run(["mkdir", "-p", "/root/nlu-data"])
    c.write_file("/root/nlu-data/eval.tsv", (REPO / "tests/data/nlu/eval.tsv").read_text())
    try:
        r = c.run(["python3", "/root/bench_nlu.py", "--json", "--installed",
                   "--data", "/root/nlu-data"], timeout=600)
    finally:
        c.run(["rm", "-rf", "/root/bench_nlu.py", "/root/nlu-data"])
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--set", default="eval", choices=("eval", "dev"), help="which set (eval)")
    ap.add_argument("--data", default=str(REPO / "tests/data/nlu"), help="where the sets are")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed package and /etc/unified (default: this checkout)")
    args = ap.parse_args()
    pythonpath = checkout_path(args.installed)
    if args.installed:
        intents_dir, catalog = "/etc/unified/intents.d", "/etc/unified/unified.yaml"
    else:
        intents_dir = str(REPO / "etc/unified/intents.d")
        catalog = str(REPO / "etc/unified/unified.yaml")
    m = measure(args.set, pythonpath, intents_dir, catalog, args.data)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
