#!/usr/bin/python3
"""The generative agents' own cost: per-task overhead over the raw backend call, and memory.

Against the deterministic stand-in of the tests (tests/unit/llm/llm_stand_in.py: answers in
well under a millisecond), so what is measured is the agents, not a model. Processes:
the stand-in, ModelManagerSuite (generation cache off), ChainOfThoughtAgent, GoTToTAgent,
CognitiveModelAgent, CodeGenerator, TinyLlamaServiceEnhanced (unconfigured), each started as
`python3 -m unified_agents run NAME` on free ports from a catalog written for the bench.

    python3 bench/bench_llm.py [--n 50] [--json] [--installed]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
AGENTS = {"ModelManagerSuite": ("model_manager", "[model_management, llm_generate]"),
          "ChainOfThoughtAgent": ("chain_of_thought", "[chain_of_thought]"),
          "GoTToTAgent": ("got_tot", "[tree_of_thought]"),
          "CognitiveModelAgent": ("cognitive_model", "[cognitive_model]"),
          "CodeGenerator": ("code_generator", "[code_generation]"),
          "TinyLlamaServiceEnhanced": ("tinyllama_service", "[local_llm]")}
SCRIPT = [
    {"match": "Sub-questions", "answers": ["Both.\nFinal answer: Rome"]},
    {"match": "Which is bigger", "answers": ["1. How big is Paris?\n2. How big is Rome?"]},
    {"match": "How big is", "answers": ["Step 1: look it up.\nFinal answer: big"]},
    {"match": "three dozen", "answers": ["Step 1: 36.\nStep 2: 36 - 5 = 31.\nFinal answer: 31"]},
    {"match": "(none yet)", "answers": ["1. a\n2. b\n3. c"]},
    {"match": "Propose", "answers": ["1. d\n2. e\n3. f"]},
    {"match": "Score", "answers": ["Score: 5"]},
    {"match": "add two", "answers": ["```python\ndef add(a, b):\n    return a + b\n```\n"
                                     "```python\ndef test_add():\n    assert add(2, 3) == 5\n```"]},
]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(port: int, method: str, path: str, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def wait(port: int, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            call(port, "GET", path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def timed(fn, n: int) -> dict:
    fn()  # warm: connections, first imports
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t0) * 1000)
    xs.sort()
    return {"p50_ms": round(statistics.median(xs), 2), "p95_ms": round(xs[int(0.95 * (n - 1))], 2)}


def measure(n: int, pythonpath: str, stand_in: str) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    (tmp / "script.json").write_text(json.dumps(SCRIPT))
    llm_port = free_port()
    ports = {a: (free_port(), free_port()) for a in AGENTS}
    entries = "".join(f"  {a}:\n    group: reasoning\n    port: {p}\n    health_port: {h}\n"
                      f"    required: false\n    task_types: {AGENTS[a][1]}\n"
                      for a, (p, h) in ports.items())
    (tmp / "unified.yaml").write_text(
        "version: 1\nsettings: {host: bench, bind_address: 127.0.0.1, profile: core}\n"
        "routing: {complexity_threshold: 0.7, rules: [], failover: {cloud_unreachable: local,"
        " vram_exhausted: local_small}}\nmodels:\n  declared:\n    phi3_mini: {backend: openai,"
        f" vram_mb: 2600, endpoint: 'http://127.0.0.1:{llm_port}/v1', role: local}}\n"
        f"agents:\n{entries}profiles:\n  core: {{all: true}}\n")
    procs = [subprocess.Popen([sys.executable, stand_in, "--port", str(llm_port), "--script",
                               str(tmp / "script.json")], stdout=subprocess.DEVNULL)]
    pids = {}
    try:
        wait(llm_port, "/v1/models")
        for a, (p, h) in ports.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith("UNIFIED_")}
            env.update(UNIFIED_CATALOG=str(tmp / "unified.yaml"), UNIFIED_PORT=str(p),
                       UNIFIED_HEALTH_PORT=str(h), UNIFIED_RUN=f"builtin:{AGENTS[a][0]}",
                       PYTHONPATH=pythonpath, VRAM_LIMIT_MB="4000", STATE_DIRECTORY=str(tmp),
                       MODEL_MANAGER_CACHE_ENTRIES="0")
            pr = subprocess.Popen([sys.executable, "-m", "unified_agents", "run", a], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(pr)
            pids[a] = pr.pid
        for a, (p, h) in ports.items():
            wait(h, "/health")
        time.sleep(1.0)
        rest = {a: rss_mb(pid) for a, pid in pids.items()}
        msgs = [{"role": "user", "content": "I buy three dozen eggs and give away 5."}]
        mm = ports["ModelManagerSuite"][0]

        def task(agent, body):
            def f():
                s, out = call(ports[agent][0], "POST", "/task", body)
                assert s == 200, out
            return f

        raw = timed(lambda: call(llm_port, "POST", "/v1/chat/completions",
                                 {"messages": msgs, "max_tokens": 64}), n)
        via_mm = timed(lambda: call(mm, "POST", "/generate",
                                    {"messages": msgs, "max_tokens": 64, "temperature": 0}), n)
        rows = {
            "ChainOfThoughtAgent": (1, timed(task("ChainOfThoughtAgent", {
                "type": "chain_of_thought", "question": "three dozen eggs minus 5?"}), n)),
            "GoTToTAgent (k 3, beam 2, depth 2)": (12, timed(task("GoTToTAgent", {
                "type": "tree_of_thought", "problem": "p", "k": 3, "beam": 2,
                "max_depth": 2, "solved_score": 10}), max(5, n // 5))),
            "CognitiveModelAgent (2 parts)": (4, timed(task("CognitiveModelAgent", {
                "type": "cognitive_model", "question": "Which is bigger, Paris or Rome?"}),
                max(5, n // 5))),
            "CodeGenerator (1 attempt, 1 test)": (1, timed(task("CodeGenerator", {
                "type": "code_generation", "task": "add two numbers"}), max(5, n // 5))),
        }
        after = {a: rss_mb(pid) for a, pid in pids.items()}
        return {"n": n, "raw_ms": raw, "model_manager_ms": via_mm, "rows": {
            k: {"calls": c, **t, "overhead_per_call_ms": round(
                (t["p50_ms"] - c * via_mm["p50_ms"]) / c, 2)} for k, (c, t) in rows.items()},
            "rss_rest_mb": rest, "rss_after_mb": after}
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            pr.wait(10)


def markdown(m: dict) -> list[str]:
    out = ["### Generative agents: overhead over the backend call (stand-in backend)", "",
           f"Raw POST /v1/chat/completions to the stand-in: p50 {m['raw_ms']['p50_ms']} ms; "
           f"through ModelManagerSuite's /generate: p50 {m['model_manager_ms']['p50_ms']} ms "
           f"(p95 {m['model_manager_ms']['p95_ms']}).", "",
           "| task | model calls | p50 ms | p95 ms | own overhead per call, ms |",
           "| --- | --- | --- | --- | --- |"]
    for k, r in m["rows"].items():
        out.append(f"| {k} | {r['calls']} | {r['p50_ms']} | {r['p95_ms']} | "
                   f"{r['overhead_per_call_ms']} |")
    out += ["", "| agent | RSS at rest, MB | RSS after the runs, MB |", "| --- | --- | --- |"]
    out += [f"| {a} | {m['rss_rest_mb'][a]} | {m['rss_after_mb'][a]} |" for a in m["rss_rest_mb"]]
    return out


def run(c, runs, summary):
    """`make bench`: the same measurement inside the container, against the installed package."""
    c.write_file("/root/bench_llm.py", Path(__file__).read_text())
    c.write_file("/root/llm_stand_in.py", (REPO / "tests/unit/llm/llm_stand_in.py").read_text())
    try:
        r = c.run(["python3", "/root/bench_llm.py", "--json", "--installed", "--stand-in",
                   "/root/llm_stand_in.py"], timeout=900)
    finally:
        c.run(["rm", "-f", "/root/bench_llm.py", "/root/llm_stand_in.py"])
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="runs of the one-call tasks (50)")
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed unified_agents (default: this checkout's agents/)")
    ap.add_argument("--stand-in", default=str(REPO / "tests/unit/llm/llm_stand_in.py"))
    args = ap.parse_args()
    if args.installed:
        pythonpath = os.environ.get("PYTHONPATH", "")
    else:
        link = Path(tempfile.mkdtemp(prefix="bench-llm-sdk-"))
        (link / "unified_agents").symlink_to(REPO / "agents")
        pythonpath = f"{link}{os.pathsep}{REPO}"
    m = measure(args.n, pythonpath, args.stand_in)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
