"""The fleet's overhead on speech (issue 14): the same engine calls made in one plain Python
process vs through RequestCoordinator and the agents, side by side in one run.

A turn = TTS of a command (flite, the catalog's voice) then STT of that audio (PocketSphinx).
"plain": one process imports the engines and calls them directly (what a single-process
assistant does). "fleet": the same two calls as tasks to RequestCoordinator (HTTP, JSON,
base64 WAV, the coordinator's forward to TTSService and STTService, each agent's
validation). Rounds alternate between the two; the engines are warm on both sides (one call
each first). Runs inside the container against the installed packages:

    python3 bench/run.py --only overhead
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ORDER = 62
COORDINATOR = 7201
SENTENCES = ["turn on the kitchen lights", "what time is it", "set a timer for ten minutes",
             "play some jazz music", "what is the weather like in paris today",
             "remind me to buy milk tomorrow", "dim the bedroom lights to forty percent",
             "cancel the timer", "lock the front door", "what is on my calendar today"]
INSIDE = r'''
import base64, json, shutil, sys, time, urllib.request
import pocketsphinx
from unified_agents.builtin.speech import stt, tts, wav
SENTENCES, VOICE, PORT, ROUNDS = json.loads(sys.argv[1])
flite = tts.Flite(shutil.which("flite"))
engine = stt.Pocketsphinx(pocketsphinx)
engine.load()

def plain(text):
    t0 = time.perf_counter()
    data = flite.synthesize(text, VOICE, 1.0, 1.0, 60)
    t1 = time.perf_counter()
    out = engine.transcribe(wav.to_mono16k(wav.read(data))[0])["text"]
    return t1 - t0, time.perf_counter() - t1, out

def task(body):
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/task", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["result"]

def fleet(text):
    t0 = time.perf_counter()
    audio = task({"type": "tts", "text": text, "voice": VOICE})["audio_wav_b64"]
    t1 = time.perf_counter()
    out = task({"type": "stt", "audio_wav_b64": audio})["text"]
    return t1 - t0, time.perf_counter() - t1, out

plain(SENTENCES[0]); fleet(SENTENCES[0])  # warm: the engines, the connections, the page cache
rows = {"plain": [], "fleet": []}
for r in range(ROUNDS):
    for text in SENTENCES:
        for side, fn in ((("plain", plain), ("fleet", fleet)) if r % 2 == 0 else (("fleet", fleet), ("plain", plain))):
            tts_s, stt_s, heard = fn(text)
            rows[side].append({"tts_s": tts_s, "stt_s": stt_s, "same": heard == text})
print(json.dumps(rows))
'''


def summarise(rows: dict) -> dict:
    out = {}
    for side, rs in rows.items():
        turn = sorted(r["tts_s"] + r["stt_s"] for r in rs)
        out[side] = {"n": len(rs), "turn_p50_ms": statistics.median(turn) * 1000,
                     "turn_p95_ms": turn[int(0.95 * (len(turn) - 1))] * 1000,
                     "tts_p50_ms": statistics.median(r["tts_s"] for r in rs) * 1000,
                     "stt_p50_ms": statistics.median(r["stt_s"] for r in rs) * 1000,
                     "exact": sum(r["same"] for r in rs)}
    p, f = out["plain"], out["fleet"]
    out["added_p50"] = f["turn_p50_ms"] / p["turn_p50_ms"] - 1
    out["added_ms_p50"] = f["turn_p50_ms"] - p["turn_p50_ms"]
    # the same sentence in the same round, one side right after the other: the pair's
    # difference is less at the mercy of the shared machine than two medians are
    pairs = [(a["tts_s"] + a["stt_s"], b["tts_s"] + b["stt_s"]) for a, b in zip(rows["plain"], rows["fleet"])]
    out["pair_added_p50"] = statistics.median(b / a - 1 for a, b in pairs)
    out["pair_added_ms_p50"] = statistics.median(b - a for a, b in pairs) * 1000
    out["tts_pair_added_ms_p50"] = statistics.median(
        (b["tts_s"] - a["tts_s"]) * 1000 for a, b in zip(rows["plain"], rows["fleet"]))
    return out


def markdown(s: dict, load: float) -> list[str]:
    p, f = s["plain"], s["fleet"]
    lines = ["## Fleet overhead on speech (TTS then STT, plain process vs through the fleet)", "",
             "bench/bench_overhead.py: a turn is TTS of a command (flite) then STT of that audio "
             "(PocketSphinx), the same engine calls made in one plain Python process, or as two "
             "tasks to RequestCoordinator (HTTP + JSON + base64 WAV, the forward to TTSService and "
             "STTService under systemd, sandboxed). Rounds alternate; engines warm on both sides. "
             f"Host load at the end: {load:.1f}. Target (issue 14): at most 15 % added.", "",
             "| side | turns | turn p50 | turn p95 | TTS p50 | STT p50 | transcript exact |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in (("plain process", p), ("through the fleet", f)):
        lines.append(f"| {name} | {r['n']} | {r['turn_p50_ms']:.0f} ms | {r['turn_p95_ms']:.0f} ms | "
                     f"{r['tts_p50_ms']:.0f} ms | {r['stt_p50_ms']:.0f} ms | {r['exact']}/{r['n']} |")
    lines += ["", f"Added by the fleet: **{s['pair_added_p50']:+.1%}** (median over the pairs: the same "
              f"sentence in the same round, one side right after the other; {s['pair_added_ms_p50']:+.0f} ms "
              f"a turn, of which TTS {s['tts_pair_added_ms_p50']:+.0f} ms: two HTTP hops, JSON and the "
              f"WAV as base64). Medians of the sides: {s['added_p50']:+.1%} ({s['added_ms_p50']:+.0f} ms).", ""]
    return lines


def run(c, runs, summary):
    import os

    c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
    c.wait_until("curl -sf http://127.0.0.1:6800/health && curl -sf http://127.0.0.1:6801/health",
                 timeout=60)
    voice = "slt"
    c.write_file("/root/bench_overhead_inside.py", INSIDE)
    try:
        r = c.run(["python3", "/root/bench_overhead_inside.py",
                   json.dumps([SENTENCES, voice, COORDINATOR, max(2, min(runs, 6))])], timeout=1200)
    finally:
        c.run(["rm", "-f", "/root/bench_overhead_inside.py"])
    s = summarise(json.loads(r.stdout.strip().splitlines()[-1]))
    print(json.dumps(s), flush=True)
    return markdown(s, os.getloadavg()[0])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "system"))
    print(__doc__)
