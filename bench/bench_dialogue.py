"""The dialogue: `unified-ctl ask` text turns for commands, p50/p95, per stage.

One turn = POST {"type": "respond", "text"} to RequestCoordinator → Responder → NLUAgent →
AdvancedCommandHandler → the intent's owner (MemoryClient, KnowledgeBase, the hub, WordNet,
the clock). Measured from a client on the same host over HTTP (what `unified-ctl ask` does,
without the CLI's Python start-up, measured separately as `unified-ctl ask` wall time).
Each sentence is warmed once (socket activation and first imports are not a turn's cost).

    python3 bench/bench_dialogue.py --coordinator http://127.0.0.1:7201 [--runs 3] [--json]
    python3 bench/run.py --only dialogue --runs 3    in the test container (run())
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# command turns, one per command intent the handler answers itself or through its owner
COMMANDS = ["what time is it", "what day is tomorrow", "set a timer for ten minutes",
            "cancel the timer", "remember that the bike is in the garage",
            "where did i put the bike", "is the stt service running", "define serendipity",
            "good morning", "thanks a lot", "goodbye"]
DIALOGUE = ["NLUAgent", "AdvancedCommandHandler", "IntentionValidatorAgent", "Responder"]
DROPIN = "/etc/unified/conf.d/90-bench-dialogue.yaml"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def turn(url: str, text: str) -> tuple[float, dict]:
    req = urllib.request.Request(url + "/task", json.dumps({"type": "respond", "text": text})
                                 .encode(), {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    return (time.perf_counter() - t0) * 1000, out["result"]


def measure(url: str, runs: int, cli_runs: int = 0) -> dict:
    for text in COMMANDS:               # warm: agents activated, caches filled
        turn(url, text)
    client: list[float] = []
    stages: dict[str, list[float]] = {}
    tiers: dict[str, int] = {}
    for _ in range(runs):
        for text in COMMANDS:
            ms, r = turn(url, text)
            client.append(ms)
            tiers[r["tier"]] = tiers.get(r["tier"], 0) + 1
            for k, v in r["timings_ms"].items():
                stages.setdefault(k, []).append(v)
    cli: list[float] = []
    for _ in range(cli_runs):
        t0 = time.perf_counter()
        subprocess.run(["unified-ctl", "ask", "what time is it"], check=True,
                       capture_output=True)
        cli.append((time.perf_counter() - t0) * 1000)
    return {"turns": len(client), "client_ms": [pct(client, 50), pct(client, 95)],
            "stages_ms": {k: [pct(v, 50), pct(v, 95), len(v)] for k, v in stages.items()},
            "tiers": tiers, "cli_ms": [pct(cli, 50), pct(cli, 95)] if cli else None}


SPOKEN = "could you tell me what time it is right now please"   # ~3 s in flite's rms voice


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url + "/task", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["result"]


def measure_audio(url: str, runs: int) -> dict:
    """A spoken question (TTSService's rms voice) → transcript, turn, reply WAV; the audio's
    end is when the request is sent (the whole WAV is there), the reply WAV is ready when
    the answer arrives."""
    import base64
    import io
    import wave

    wav = post(url, {"type": "tts", "text": SPOKEN, "voice": "rms"})["audio_wav_b64"]
    with wave.open(io.BytesIO(base64.b64decode(wav))) as w:
        audio_s = w.getnframes() / w.getframerate()
    body = {"type": "respond", "audio_wav_b64": wav, "reply_audio": True}
    post(url, body)                       # warm
    client: list[float] = []
    stages: dict[str, list[float]] = {}
    heard = ""
    for _ in range(max(3, runs * 3)):
        t0 = time.perf_counter()
        r = post(url, body)
        client.append((time.perf_counter() - t0) * 1000)
        heard = r.get("transcript", "")
        for k, v in r["timings_ms"].items():
            stages.setdefault(k, []).append(v)
    return {"audio_s": round(audio_s, 2), "heard": heard, "n": len(client),
            "client_ms": [pct(client, 50), pct(client, 95)],
            "stages_ms": {k: [pct(v, 50), pct(v, 95)] for k, v in stages.items()}}


def markdown(m: dict) -> list[str]:
    out = ["## Dialogue: `ask` text turns (commands)", "",
           f"{m['turns']} turns: {len(COMMANDS)} command sentences × runs, after one warm-up "
           f"each; tiers that answered: {m['tiers']}.", "",
           "| stage | p50 ms | p95 ms | turns |", "| --- | --- | --- | --- |",
           f"| turn, client round trip (HTTP, coordinator → Responder) | {m['client_ms'][0]:.1f} "
           f"| {m['client_ms'][1]:.1f} | {m['turns']} |"]
    for k, (p50, p95, n) in sorted(m["stages_ms"].items(), key=lambda kv: kv[0] != "total"):
        out.append(f"| Responder: {k} | {p50:.1f} | {p95:.1f} | {n} |")
    if m.get("cli_ms"):
        out.append(f"| `unified-ctl ask` wall time (process start included) | "
                   f"{m['cli_ms'][0]:.1f} | {m['cli_ms'][1]:.1f} | |")
    a = m.get("audio")
    if a:
        total = a["stages_ms"]["total"][0]
        out += ["", f"`ask --audio`: a {a['audio_s']} s question (\"{SPOKEN}\", flite rms; heard "
                f"\"{a['heard']}\"), end of audio → reply WAV ready, {a['n']} turns:", "",
                "| stage | p50 ms | p95 ms | share of the p50 total |", "| --- | --- | --- | --- |",
                f"| end of audio → reply WAV (client) | {a['client_ms'][0]:.1f} | "
                f"{a['client_ms'][1]:.1f} | |"]
        for k, (p50, p95) in sorted(a["stages_ms"].items(), key=lambda kv: kv[0] == "total"):
            share = f"{100 * p50 / total:.0f} %" if k != "total" and total else ""
            out.append(f"| Responder: {k} | {p50:.1f} | {p95:.1f} | {share} |")
    return out + [""]


def run(c, runs, summary):
    """`make bench`: in the container, a profile with the dialogue agents, the installed
    package."""
    c.write_file(DROPIN, "profiles:\n  bench_dialogue:\n    extends: core\n"
                         f"    agents: [{', '.join(DIALOGUE)}]\n")
    c.write_file("/root/bench_dialogue.py", Path(__file__).read_text())
    try:
        c.run(["unified-ctl", "apply"])
        c.run(["unified-ctl", "profile", "switch", "bench_dialogue"], timeout=240)
        c.systemctl("restart", "unified-agent@RequestCoordinator.service")
        c.wait_until("curl -sf http://127.0.0.1:8201/health", timeout=30)
        r = c.run(["python3", "/root/bench_dialogue.py", "--json", "--runs", str(runs),
                   "--cli-runs", str(max(3, runs))], timeout=900)
    finally:
        c.run(["rm", "-f", DROPIN, "/root/bench_dialogue.py"])
        c.run(["unified-ctl", "apply"])
        c.run(["unified-ctl", "profile", "switch", "core"], timeout=240, check=False)
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coordinator", default="http://127.0.0.1:7201")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cli-runs", type=int, default=0,
                    help="also time this many `unified-ctl ask` processes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    m = measure(args.coordinator.rstrip("/"), args.runs, args.cli_runs)
    m["audio"] = measure_audio(args.coordinator.rstrip("/"), args.runs)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
