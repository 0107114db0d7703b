"""The language agents (docs/LANGUAGE.md): translation latency (TranslationService,
FixedStreamingTranslation, NLLBAdapter on Apertium), ELIZA reply latency (ChitchatAgent),
language-identification accuracy and latency (StreamingLanguageAnalyzer), and the cold start
and resident memory (RSS) of each agent process at rest: after its start, and again idle after
the workload.

The identification set (tests/data/language/langid.tsv: 80 sentences, 10 languages, short and
long) was written for this bench before any measurement and is never tuned on. Every latency is
POST /task over HTTP from one client (what a caller sees), `runs` passes over the inputs.

    python3 bench/bench_language.py [--runs 3] [--json]     on this machine (this checkout)
    python3 bench/run.py --only language --runs 3 --out F   in the test container (run())
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sdk_common import checkout_path, free_port

REPO = Path(__file__).resolve().parents[1]
CONVERSATION = ["Hello", "I feel a bit tired today", "My boss gave me too much work",
                "I need a holiday", "Because I never rest", "I think I work too hard",
                "Can you help me?", "You are a computer", "I want to sleep", "my mother calls "
                "me every day", "Why do you ask so many questions?", "I am sorry",
                "It is raining outside", "I don't know what to do", "Yes",
                "What should I do?", "I would like a cup of tea", "My cat is hungry",
                "purple elephants", "quit"]
TRANSCRIPT = ["Good morning everyone. Today we", "will talk about the weather and",
              "the trains. The first train", "leaves at nine. The second one", "is often late,",
              "so please come early. Thank", "you for listening."]


def read_set(path: Path) -> list[tuple[str, str]]:
    out = []
    for ln in path.read_text().splitlines():
        if ln.strip() and not ln.startswith("#"):
            lang, text = ln.split("\t", 1)
            out.append((lang, text))
    return out


class Agent:
    """One agent process, started as the unit starts it (python3 -m unified_agents run)."""

    def __init__(self, name: str, module: str, pythonpath: str, env: dict):
        self.name = name
        self.port, self.hport = free_port(), free_port()
        e = dict(os.environ, PYTHONPATH=pythonpath, UNIFIED_AGENT=name,
                 UNIFIED_RUN=f"builtin:{module}", UNIFIED_PORT=str(self.port),
                 UNIFIED_HEALTH_PORT=str(self.hport), **env)
        t0 = time.perf_counter()
        self.p = subprocess.Popen([sys.executable, "-m", "unified_agents", "run", name], env=e,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            try:
                self.health = json.loads(urllib.request.urlopen(
                    f"http://127.0.0.1:{self.hport}/health", timeout=1).read())
                break
            except OSError:
                if self.p.poll() is not None or time.perf_counter() - t0 > 60:
                    err = self.p.stderr.read().decode()[-500:] if self.p.stderr else ""
                    raise SystemExit(f"{name} did not start (exit {self.p.poll()}): {err}")
                time.sleep(0.01)
        self.cold_start_s = time.perf_counter() - t0

    def rss_mb(self) -> float:
        time.sleep(0.5)  # at rest: nothing in flight
        with open(f"/proc/{self.p.pid}/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS"))

    def post(self, body: dict) -> tuple[float, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/task",
                                     json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        t0 = time.perf_counter()
        try:
            out = json.loads(urllib.request.urlopen(req, timeout=60).read())
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{self.name}: {e.code} {e.read().decode()[:300]}") from None
        return time.perf_counter() - t0, out["result"]

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(10)


def pcts(times: list[float]) -> dict:
    t = sorted(times)
    return {"n": len(t), "p50_ms": round(t[len(t) // 2] * 1000, 1),
            "p95_ms": round(t[min(len(t) - 1, int(len(t) * 0.95))] * 1000, 1)}


def pipeline_cost(texts: list[str], runs: int) -> dict:
    """CPU time (user + system, all the pipeline's processes) of one `apertium eng-spa` call,
    which a loaded machine does not inflate the way it inflates wall time, and the largest
    resident size of one of its programs (the memory a translation really takes: the agent
    itself holds no model)."""
    import resource

    cpu = []
    for _ in range(runs):
        for t in texts:
            before = os.times()
            subprocess.run(["apertium", "eng-spa"], input=t.encode(), capture_output=True,
                           check=True)
            after = os.times()
            cpu.append(after.children_user + after.children_system - before.children_user
                       - before.children_system)
    return {**pcts(cpu), "max_rss_mb": round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def measure(pythonpath: str, runs: int, data: Path, lexicon: str) -> dict:
    items = read_set(data / "langid.tsv")
    en = [t for lang, t in items if lang == "en"]
    es = [t for lang, t in items if lang == "es"]
    out: dict = {"load_avg_start": round(os.getloadavg()[0], 2), "runs": runs}

    def agent(name, module, env=None):
        a = Agent(name, module, pythonpath, env or {})
        return a, {"cold_start_s": round(a.cold_start_s, 3), "rss_start_mb": round(a.rss_mb(), 1)}

    out["pipeline"] = pipeline_cost(en, runs)
    a, m = agent("TranslationService", "translation_service")
    try:
        m["engine_version"] = a.health.get("engine_version")
        m["pairs"] = a.health.get("pairs")
        for name, src, tgt, texts in (("en_es", "en", "es", en), ("es_en", "es", "en", es)):
            m[name] = pcts([a.post({"type": "translation", "text": t, "source": src,
                                    "target": tgt})[0] for _ in range(runs) for t in texts])
        m["rss_after_mb"] = round(a.rss_mb(), 1)
    finally:
        a.stop()
    out["translation"] = m

    a, m = agent("FixedStreamingTranslation", "fixed_streaming_translation")
    try:
        closing, others = [], []
        for _ in range(runs):
            sid = None
            for i, seg in enumerate(TRANSCRIPT):
                body = {"type": "streaming_translation", "text": seg,
                        "final": i == len(TRANSCRIPT) - 1}
                body.update({"session": sid} if sid else {"source": "en", "target": "es"})
                t, r = a.post(body)
                sid = r["session"]
                (closing if r["sentences"] else others).append(t)
        m["segment_closing"] = pcts(closing)
        m["segment_open"] = pcts(others) if others else None
        m["rss_after_mb"] = round(a.rss_mb(), 1)
    finally:
        a.stop()
    out["streaming"] = m

    a, m = agent("NLLBAdapter", "nllb_adapter")
    try:
        m["engine"] = a.health.get("engine")
        m["en_es"] = pcts([a.post({"type": "nllb_translation", "text": t, "source": "en",
                                   "target": "es"})[0] for _ in range(runs) for t in en])
        m["rss_after_mb"] = round(a.rss_mb(), 1)
    finally:
        a.stop()
    out["nllb"] = m

    a, m = agent("StreamingLanguageAnalyzer", "streaming_language_analyzer",
                 {"SENTIMENT_LEXICON": lexicon} if lexicon else {})
    try:
        times, misses, ok = [], [], 0
        per_lang: dict[str, list[int]] = {}
        for rep in range(runs):
            for lang, text in items:
                t, r = a.post({"type": "language_analysis", "text": text, "final": True})
                times.append(t)
                if rep == 0:
                    got = r["segment"]["language"]
                    hit = got == lang
                    ok += hit
                    per_lang.setdefault(lang, [0, 0])[0] += hit
                    per_lang[lang][1] += 1
                    if not hit:
                        misses.append({"text": text, "want": lang, "got": got,
                                       "p": r["segment"]["probability"]})
        m.update(accuracy=ok / len(items), n=len(items), per_language=per_lang,
                 misses=misses, latency=pcts(times), sentiment=bool(lexicon),
                 rss_after_mb=round(a.rss_mb(), 1))
    finally:
        a.stop()
    out["langid"] = m

    a, m = agent("ChitchatAgent", "chitchat_agent")
    try:
        times = []
        for rep in range(runs):
            for turn in CONVERSATION:
                t, r = a.post({"type": "simple_chat", "text": turn, "session": f"bench-{rep}"})
                times.append(t)
        m["reply"] = pcts(times)
        m["rss_after_mb"] = round(a.rss_mb(), 1)
    finally:
        a.stop()
    out["chitchat"] = m
    out["load_avg_end"] = round(os.getloadavg()[0], 2)
    return out


def markdown(m: dict) -> list[str]:
    tr, st, nl, li, ch = (m[k] for k in ("translation", "streaming", "nllb", "langid",
                                         "chitchat"))

    def lat(p):
        return f"{p['p50_ms']} / {p['p95_ms']} ms (n={p['n']})" if p else "—"

    lines = ["## Language agents", "",
             f"{m['runs']} passes over the inputs; one HTTP client; load average "
             f"{m['load_avg_start']} at the start, {m['load_avg_end']} at the end (a shared, "
             "noisy machine: compare orders of magnitude, not single numbers). "
             f"{tr.get('engine_version')}, pairs {', '.join(tr.get('pairs') or [])}.", "",
             "| measure | p50 / p95 |", "| --- | --- |",
             f"| translation en→es (TranslationService, one sentence) | {lat(tr['en_es'])} |",
             f"| translation es→en | {lat(tr['es_en'])} |",
             f"| the apertium eng-spa pipeline's CPU time (user + system) a call | "
             f"{lat(m['pipeline'])} |",
             f"| streaming: a segment that closes a sentence | {lat(st['segment_closing'])} |",
             f"| streaming: a segment that closes none | {lat(st['segment_open'])} |",
             f"| NLLBAdapter en→es (engine: {nl['engine']}) | {lat(nl['en_es'])} |",
             f"| language analysis, one sentence | {lat(li['latency'])} |",
             f"| ELIZA reply (ChitchatAgent, one turn) | {lat(ch['reply'])} |", "",
             f"Language identification: **{li['accuracy']:.1%}** of {li['n']} sentences "
             "(tests/data/language/langid.tsv, written before measuring, not tuned on; "
             f"sentiment lexicon {'on' if li['sentiment'] else 'off'}). Per language: "
             + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(li["per_language"].items()))
             + ".", ""]
    if li["misses"]:
        lines += ["Misses:", ""] + [f"- {x['want']} → {x['got']} ({x['p']}): \"{x['text']}\""
                                    for x in li["misses"]] + [""]
    lines += ["| agent | cold start (exec → /health) | RSS after start | RSS idle after "
              "the workload |", "| --- | --- | --- | --- |"]
    for name, a in (("TranslationService", tr), ("FixedStreamingTranslation", st),
                    ("NLLBAdapter", nl), ("StreamingLanguageAnalyzer", li),
                    ("ChitchatAgent", ch)):
        lines.append(f"| {name} | {a['cold_start_s']} s | {a['rss_start_mb']} MB | "
                     f"{a['rss_after_mb']} MB |")
    return lines + ["", "The translation agents run Apertium as a pipeline of child processes "
                    "per call: its largest program peaked at "
                    f"{m['pipeline']['max_rss_mb']} MB resident, on top of the agent's own "
                    "RSS, only while a call runs.", ""]


def run(c, runs, summary):
    """`bench/run.py`: the same measurement inside the container, against the installed
    package and its Recommends (apertium, apertium-eng-spa, langdetect, nltk)."""
    for name in ("bench_language.py", "sdk_common.py"):  # sdk_common: checkout_path
        c.write_file(f"/root/{name}", (Path(__file__).parent / name).read_text())
    c.run(["mkdir", "-p", "/root/language-data"])
    c.write_file("/root/language-data/langid.tsv",
                 (REPO / "tests/data/language/langid.tsv").read_text())
    try:
        r = c.run(["python3", "/root/bench_language.py", "--json", "--installed", "--runs",
                   str(runs), "--data", "/root/language-data"], timeout=1200)
    finally:
        c.run(["rm", "-rf", "/root/bench_language.py", "/root/language-data"])
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--runs", type=int, default=3, help="passes over the inputs (3)")
    ap.add_argument("--data", default=str(REPO / "tests/data/language"),
                    help="where langid.tsv is")
    ap.add_argument("--lexicon", default="", help="a VADER lexicon for the analyzer (none)")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed package (default: this checkout)")
    args = ap.parse_args()
    pythonpath = checkout_path(args.installed)
    m = measure(pythonpath, args.runs, Path(args.data), args.lexicon)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
