"""Wake word (WakeWordDetector): recall on wake phrases followed by a command, false accepts
per hour of non-wake speech and noise, accuracy of "at_s", real-time factor, cold activation
and idle RSS.

The evaluation set is built like bench_speech.py's, with its helpers (command templates,
white noise at 10 dB SNR): the positives are "<wake phrase>, <command>" spoken by flite's
slt, kal, awb and rms voices, after 0.5-2 s of silence, every second one with noise; the
negatives are long clips of other sentences (commands, everyday talk, and sentences with
words close to the wake phrase: "computer", "hey", "okay") by the same voices, half of them
noisy, plus clips of noise alone. None of these voices was used while choosing the phrase and
its threshold: `--tune` does that on espeak-ng voices only (the development set), and prints
the recall and false accepts of each candidate phrase over a range of thresholds.

    python3 bench/bench_wake.py [--positives 120] [--neg-hours 1.0] [--json]
    python3 bench/bench_wake.py --tune            the development set (espeak-ng)
    python3 bench/bench_wake.py --engine microwakeword [--micro-phrase "okay nabu"]
    make bench                                     in the test container (run())
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_speech beside this file
import bench_speech as bs  # noqa: E402
from sdk_common import checkout_path  # noqa: E402

ORDER = 61
EVAL_VOICES = ("flite", ("slt", "kal", "awb", "rms"))
DEV_VOICES = ("espeak-ng", ("en-us", "en-gb", "en-us+m3", "en-us+f2", "en-gb+m7",
                            "en-us+f4"))
CANDIDATES = ("hey computer", "okay computer")
TUNE_THRESHOLDS = (1e-30, 1e-40, 1e-50, 1e-60)
MICRO_CUTOFFS = (0.85, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05)   # okay nabu's own is 0.85, hey jarvis's 0.97
HIT_WINDOW = (-0.5, 1.0)  # a detection this near the phrase's onset is the phrase's
CATALOG = ("/etc/unified/unified.yaml", "etc/unified/unified.yaml")
# Non-wake speech: everyday sentences, and sentences using the wake phrases' words
# ("computer", "hey", "okay") in other company: the hard negatives.
TALK = [
    "i think we should leave a little earlier tomorrow morning",
    "did you remember to feed the cat before you left",
    "the meeting was moved to thursday afternoon at three",
    "can you pass me the salt please", "we are out of coffee again",
    "my computer is running really slowly today", "turn off the computer when you are done",
    "hey there how are you doing", "okay let me think about it for a minute",
    "the new computer arrived this morning", "hey did you see the game last night",
    "okay that sounds like a good plan", "she works with computers all day",
    "i need to compute the total before friday", "he bought a used computer for his son",
    "okay so where did we park the car", "hey wait for me", "the commuter train was late",
    "put the groceries in the kitchen", "what a beautiful day it is outside",
    "let me know when dinner is ready", "i could not find my keys anywhere",
    "the children are playing in the garden", "please close the window it is cold",
    "my phone battery is almost empty", "we watched a movie about a talking computer",
    "hey jude is a song by the beatles", "she said okay and left the computer room",
]


def _speech():
    from unified_agents.builtin.speech import tts, wake, wav
    return tts, wake, wav


def catalog_env() -> dict:
    """WakeWordDetector's environment in the catalog (the installed one first)."""
    import yaml

    for path in CATALOG:
        if os.path.exists(path):
            with open(path) as f:
                return yaml.safe_load(f)["agents"]["WakeWordDetector"].get("environment") or {}
    return {}


def catalog_phrases() -> tuple[str, float]:
    """WAKE_PHRASES / WAKE_THRESHOLD for PocketSphinx: the catalog's when it runs PocketSphinx,
    else the code's defaults (the phrase and threshold chosen with --tune)."""
    _, wake, _ = _speech()
    env = catalog_env()
    if env.get("WAKE_ENGINE", "pocketsphinx") != "pocketsphinx":
        return wake.DEFAULT_PHRASES, wake.DEFAULT_THRESHOLD
    return (str(env.get("WAKE_PHRASES", wake.DEFAULT_PHRASES)),
            float(env.get("WAKE_THRESHOLD", wake.DEFAULT_THRESHOLD)))


class Synth:
    def __init__(self, engine_name: str):
        tts, _, wav = _speech()
        cls = tts.ENGINES[engine_name]
        self.engine = cls(bs._which(cls.binary))
        self.wav = wav

    def __call__(self, text: str, voice: str):
        audio = self.wav.read(self.engine.synthesize(text, voice, 1.0, 1.0, 60))
        return self.wav.to_mono16k(audio)[0]


def silence(seconds: float):
    import numpy as np

    return np.zeros(int(seconds * 16000), "<i2")


def positives(synth: Synth, voices, phrase: str, n: int, seed: int) -> list[dict]:
    """n clips "<phrase>, <command>", after 0.5-2 s of silence; half of each voice's noisy.
    "at" is where the phrase starts."""
    import numpy as np

    _, _, wav = _speech()
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    out = []
    for i, command in enumerate(bs.utterances(n, seed)):
        voice = voices[i % len(voices)]
        speech = synth(f"{phrase}, {command}", voice)
        lead = rng.uniform(0.5, 2.0)
        pcm = np.concatenate([silence(lead), speech, silence(0.5)])
        noisy = bool(i // len(voices) % 2)  # every voice both clean and noisy
        if noisy:
            pcm = bs.add_noise(pcm, bs.SNR_DB, nrng)
        out.append({"pcm": pcm, "at": lead + wav.onset_s(speech), "voice": voice,
                    "noisy": noisy, "text": f"{phrase}, {command}"})
    return out


def negatives(synth: Synth, voices, hours: float, seed: int, clip_s: float = 60.0):
    """Clips of about clip_s seconds: 80 % of the hours non-wake speech (every second clip
    noisy at 10 dB SNR), 20 % noise alone (white, at -30 to -15 dBFS)."""
    import numpy as np

    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    # never a wake phrase itself: that would be a detection, not a false one
    texts = [t for t in bs.utterances(200, seed + 1) + TALK * 3
             if not any(p in t for p in CANDIDATES)]
    total = hours * 3600
    speech_s, i = 0.0, 0
    while speech_s < 0.8 * total:
        parts, length = [], 0.0
        while length < clip_s:
            pcm = synth(rng.choice(texts), voices[i % len(voices)])
            gap = silence(rng.uniform(0.3, 1.5))
            parts += [pcm, gap]
            length += (len(pcm) + len(gap)) / 16000
        clip = np.concatenate(parts)
        if i % 2:
            clip = bs.add_noise(clip, bs.SNR_DB, nrng)
        yield {"pcm": clip, "kind": "speech+noise" if i % 2 else "speech"}
        speech_s += length
        i += 1
    noise_s = 0.0
    while noise_s < 0.2 * total:
        level = 10 ** (rng.uniform(-30, -15) / 20) * 32768
        clip = np.clip(np.round(nrng.standard_normal(int(clip_s * 16000)) * level),
                       -32768, 32767).astype("<i2")
        yield {"pcm": clip, "kind": "noise"}
        noise_s += clip_s


def spotter(phrases: list[tuple[str, float]], engine: str = "pocketsphinx"):
    if engine == "microwakeword":
        from unified_agents.builtin.speech import wake_micro

        m = wake_micro.MicroWakeWordSpotter(wake_micro.import_module(), phrases)
        m.load()
        return m
    import pocketsphinx

    _, wake, _ = _speech()
    s = wake.KeyphraseSpotter(pocketsphinx, phrases, "/usr/share/pocketsphinx/model/en-us")
    s.load()
    return s


def hit(detections: list[dict], phrase: str, at: float) -> dict | None:
    near = [d for d in detections if d["phrase"] == phrase
            and HIT_WINDOW[0] <= d["at_s"] - at <= HIT_WINDOW[1]]
    return max(near, key=lambda d: d["score"]) if near else None


def run_set(s, pos: list[dict], negs, phrase: str) -> dict:
    """Decode every clip once: the positives' hits and the negatives' detections (all false
    accepts), with CPU seconds per audio second."""
    cpu = audio = 0.0
    for p in pos:
        c0 = time.process_time()
        found = s.spot(p["pcm"])["detections"]
        cpu += time.process_time() - c0
        audio += len(p["pcm"]) / 16000
        p["hit"] = hit(found, phrase, p["at"])
        p["others"] = [d for d in found if d is not p["hit"]]
    false, neg_s, kinds = [], 0.0, {}
    for n in negs:
        c0 = time.process_time()
        found = s.spot(n["pcm"])["detections"]
        cpu += time.process_time() - c0
        seconds = len(n["pcm"]) / 16000
        audio += seconds
        neg_s += seconds
        kinds[n["kind"]] = kinds.get(n["kind"], 0.0) + seconds
        false += [dict(d, kind=n["kind"]) for d in found]
    return {"pos": pos, "false": false, "neg_hours": neg_s / 3600,
            "kind_hours": {k: round(v / 3600, 3) for k, v in kinds.items()},
            "rtf_cpu": round(cpu / audio, 4), "audio_hours": round(audio / 3600, 3)}


def tune(n: int, hours: float, candidates=CANDIDATES, engine: str = "pocketsphinx") -> list[str]:
    """The development set (espeak-ng voices): each candidate phrase decoded at each
    threshold (microwakeword: each cutoff); recall and false accepts per hour."""
    synth = Synth(DEV_VOICES[0])
    voices = DEV_VOICES[1]
    negs = list(negatives(synth, voices, hours, seed=101))
    lines = [f"Development set: espeak-ng voices {', '.join(voices)}; {n} positives per "
             f"phrase (half at {bs.SNR_DB:g} dB SNR); {hours:g} h of negatives.", "",
             "| phrase | threshold | recall | clean | noisy | false accepts/h | RTF |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for phrase in candidates:
        pos = positives(synth, voices, phrase, n, 7)
        for t in (MICRO_CUTOFFS if engine == "microwakeword" else TUNE_THRESHOLDS):
            r = run_set(spotter([(phrase, t)], engine), pos, negs, phrase)
            halves = [sum(p["hit"] is not None for p in pos if p["noisy"] == h)
                      / max(1, sum(p["noisy"] == h for p in pos)) for h in (False, True)]
            recall = sum(p["hit"] is not None for p in pos) / len(pos)
            lines.append(f"| {phrase} | {t:g} | {recall:.1%} | {halves[0]:.1%} | "
                         f"{halves[1]:.1%} | {len(r['false']) / r['neg_hours']:.1f} | "
                         f"{r['rtf_cpu']} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def measure(n: int, hours: float, pythonpath: str, engine: str = "pocketsphinx",
            micro_phrase: str = "hey jarvis", micro_cutoff: float | None = None) -> dict:
    import statistics

    _, wake, _ = _speech()
    if engine == "microwakeword":
        # a model's own phrase and cutoff (nothing tuned here); the agent started the same way
        phrases: list = [(micro_phrase, micro_cutoff)]
        os.environ.update(WAKE_ENGINE=engine, WAKE_PHRASES=micro_phrase,
                          WAKE_CUTOFF="" if micro_cutoff is None else str(micro_cutoff))
    else:
        raw, default_thr = catalog_phrases()
        phrases = wake.parse_phrases(raw, default_thr)
    phrase = phrases[0][0]  # the positives say the first phrase
    synth = Synth(EVAL_VOICES[0])
    voices = EVAL_VOICES[1]
    s = spotter(phrases, engine)
    phrases = s.phrases
    r = run_set(s, positives(synth, voices, phrase, n, 14),
                negatives(synth, voices, hours, seed=15), phrase)
    pos = r["pos"]
    errs = sorted(abs(p["hit"]["at_s"] - p["at"]) for p in pos if p["hit"])
    by = {}
    for p in pos:
        k = f"{p['voice']}/{'noisy' if p['noisy'] else 'clean'}"
        by.setdefault(k, []).append(p["hit"] is not None)
    return {
        "phrases": [[p, t] for p, t in phrases], "engine_version": s.version, "n": len(pos),
        "engine": engine,
        "recall": round(sum(p["hit"] is not None for p in pos) / len(pos), 4),
        "recall_clean": round(sum(p["hit"] is not None for p in pos if not p["noisy"])
                              / max(1, sum(not p["noisy"] for p in pos)), 4),
        "recall_noisy": round(sum(p["hit"] is not None for p in pos if p["noisy"])
                              / max(1, sum(p["noisy"] for p in pos)), 4),
        "by_voice": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by.items())},
        "missed": [p["text"] + f" ({p['voice']}{', noisy' if p['noisy'] else ''})"
                   for p in pos if p["hit"] is None][:10],
        "extra_in_positives": sum(len(p["others"]) for p in pos),
        "false_accepts": len(r["false"]), "neg_hours": round(r["neg_hours"], 3),
        "kind_hours": r["kind_hours"],
        "false_per_hour": round(len(r["false"]) / r["neg_hours"], 2),
        "false_examples": [f"{d['phrase']} ({d['kind']}, score {d['score']})"
                           for d in r["false"][:10]],
        "at_err_median_s": round(statistics.median(errs), 3) if errs else None,
        "at_err_max_s": round(errs[-1], 3) if errs else None,
        "at_within_0_3": round(sum(e <= 0.3 for e in errs) / len(errs), 4) if errs else None,
        "rtf_cpu": r["rtf_cpu"], "audio_hours": r["audio_hours"],
        "cold": bs.measure_cold(pythonpath, agents=(("WakeWordDetector",
                                                     "wake_word_detector"),)),
        "load_avg": os.getloadavg()[0]}


def markdown(m: dict) -> list[str]:
    ph = ", ".join(f'"{p}" (threshold {t:g})' for p, t in m["phrases"])
    c = m["cold"]["WakeWordDetector"]
    if m.get("engine") == "microwakeword":
        what = (f"microWakeWord ({m['engine_version']}, WAKE_ENGINE=microwakeword): the "
                f"model shipped in the wheel for {ph}. Evaluation: ")
    else:
        what = (f"PocketSphinx {m['engine_version']} keyphrase search (Debian "
                f"python3-pocketsphinx, pocketsphinx-en-us acoustic model), phrases {ph} from "
                "the catalog, chosen and tuned on espeak-ng voices only (`bench_wake.py "
                "--tune`). Evaluation: ")
    return [
        f"## Wake word (WakeWordDetector, {m.get('engine', 'pocketsphinx')})", "",
        what +
        f"{m['n']} positives \"<wake phrase>, <command>\" by flite voices "
        f"{', '.join(EVAL_VOICES[1])} (not used for tuning), half of each voice's with white "
        f"noise at {bs.SNR_DB:g} dB SNR; {m['neg_hours']} h of non-wake audio ("
        + ", ".join(f"{k} {v} h" for k, v in m["kind_hours"].items())
        + f"); {m['audio_hours']} h decoded in all. Load average {m['load_avg']:.1f}.", "",
        "| measure | value | target |", "| --- | --- | --- |",
        f"| recall (all / clean / noisy) | {m['recall']:.1%} / {m['recall_clean']:.1%} / "
        f"{m['recall_noisy']:.1%} | ≥ 95 % |",
        f"| false accepts | {m['false_accepts']} in {m['neg_hours']} h = "
        f"{m['false_per_hour']}/h | ≤ 1/h |",
        f"| at_s error (median / max / within 0.3 s) | {m['at_err_median_s']} s / "
        f"{m['at_err_max_s']} s / {m['at_within_0_3'] or 0:.0%} | |",
        f"| RTF (CPU, one core) | {m['rtf_cpu']} | |",
        f"| cold activation (exec → /health, model load included) | {c['cold_start_s']} s | |",
        f"| idle RSS | {c['idle_rss_mb']} MB | |", "",
        "Detected by voice: " + ", ".join(f"{k} {v}" for k, v in m["by_voice"].items()) + ".",
        f"Other detections inside positives (e.g. in the command): {m['extra_in_positives']}.",
        "Missed: " + ("; ".join(m["missed"]) or "none") + ".",
        "False accepts: " + ("; ".join(m["false_examples"]) or "none") + ".", ""]


def run(c, runs, summary):
    """`make bench`: the same measurement inside the container, against the installed package
    and its catalog: the catalog's engine, and PocketSphinx beside it (the other engine)."""
    for name in ("bench_wake.py", "bench_speech.py", "sdk_common.py"):
        c.write_file(f"/root/{name}", (Path(__file__).parent / name).read_text())
    out = []
    try:
        for extra in (["--engine", "catalog"], ["--engine", "pocketsphinx"]):
            r = c.run(["python3", "/root/bench_wake.py", "--json", "--installed", *extra],
                      timeout=3600)
            out += markdown(json.loads(r.stdout.strip().splitlines()[-1]))
    finally:
        c.run(["rm", "-f", "/root/bench_wake.py", "/root/bench_speech.py"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positives", type=int, default=120, help="positives (default 120)")
    ap.add_argument("--neg-hours", type=float, default=1.0,
                    help="hours of non-wake audio (default 1.0)")
    ap.add_argument("--tune", action="store_true",
                    help="the development set (espeak-ng): recall and false accepts of each "
                         "candidate phrase by threshold")
    ap.add_argument("--phrase", action="append", default=[],
                    help="with --tune: a candidate phrase (default: %s)" % ", ".join(CANDIDATES))
    ap.add_argument("--engine", choices=("catalog", "pocketsphinx", "microwakeword"),
                    default="catalog", help="the engine measured: the catalog's (default, with "
                    "its phrase and cutoff), pocketsphinx (the catalog's phrases when it runs "
                    "PocketSphinx) or microwakeword (--micro-phrase's model)")
    ap.add_argument("--micro-phrase", default="hey jarvis",
                    help="with --engine microwakeword: the model (default hey jarvis)")
    ap.add_argument("--micro-cutoff", type=float, default=None,
                    help="with --engine microwakeword: the cutoff (default: the model's own)")
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed unified_agents (default: this checkout's agents/)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pythonpath = checkout_path(args.installed)
    if args.tune:
        engine = "pocketsphinx" if args.engine == "catalog" else args.engine
        default = (args.micro_phrase,) if engine == "microwakeword" else CANDIDATES
        print("\n".join(tune(args.positives, args.neg_hours, tuple(args.phrase) or default,
                              engine)))
        return 0
    engine, phrase, cutoff = args.engine, args.micro_phrase, args.micro_cutoff
    if engine == "catalog":
        env = catalog_env()
        engine = str(env.get("WAKE_ENGINE", "pocketsphinx"))
        if engine == "microwakeword":
            phrase = str(env.get("WAKE_PHRASES", "hey jarvis")).split(",")[0].strip()
            cutoff = float(env["WAKE_CUTOFF"]) if env.get("WAKE_CUTOFF") else None
    m = measure(args.positives, args.neg_hours, pythonpath, engine, phrase, cutoff)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
