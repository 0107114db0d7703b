"""Speech engines: STT word error rate and real-time factor on an evaluation set, TTS time to
first audio and real-time factor, cold activation of STTService/TTSService.

The evaluation set is synthesised with voices not used while developing (development: flite
rms and espeak-ng; evaluation: flite slt, kal, awb), from command-like templates filled with
a fixed seed; every second utterance gets white noise at 10 dB SNR. Nothing in the engines is
tuned on it (PocketSphinx runs with its defaults). CPU seconds (process time of the decode,
children's time for the synthesisers) give the one-core real-time factor on a shared machine;
wall seconds are shown beside them.

    python3 bench/bench_speech.py [--n 120] [--json]     on this machine (engines installed)
    make bench                                            in the test container (run())
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

from sdk_common import checkout_path, start_builtin

ORDER = 60
EVAL_VOICES = ("slt", "kal", "awb")
SNR_DB = 10.0
ROOMS = ["kitchen", "living room", "bedroom", "bathroom", "office", "garage", "hallway"]
NUMBERS = ["two", "three", "five", "ten", "fifteen", "twenty", "thirty", "forty five"]
CITIES = ["london", "paris", "boston", "chicago", "berlin", "tokyo", "seattle", "denver"]
PEOPLE = ["mom", "dad", "john", "sarah", "the doctor", "my brother", "alice", "the office"]
ITEMS = ["milk", "eggs", "bread", "coffee", "apples", "butter", "rice", "cheese"]
GENRES = ["jazz", "rock", "classical", "country", "some relaxing", "the news", "pop"]
TEMPLATES = [
    "turn on the {room} lights", "turn off the {room} lights", "set a timer for {n} minutes",
    "what is the weather in {city}", "what time is it in {city}", "call {person}",
    "add {item} to my shopping list", "play {genre} music", "set the temperature to {n} degrees",
    "remind me to buy {item} tomorrow", "how long will it take to drive to {city}",
    "send a message to {person}", "dim the {room} lights to {n} percent",
    "is it going to rain in {city} today", "cancel the timer", "what is on my calendar today",
    "stop the music", "turn the volume up", "lock the front door", "what is the news today",
]
TTS_SENTENCE = ("the weather today will be mostly sunny with a light breeze from the west and "
                "temperatures reaching twenty degrees")  # 20 words


def utterances(n: int, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = TEMPLATES[i % len(TEMPLATES)]
        out.append(t.format(room=rng.choice(ROOMS), n=rng.choice(NUMBERS), city=rng.choice(CITIES),
                            person=rng.choice(PEOPLE), item=rng.choice(ITEMS),
                            genre=rng.choice(GENRES)))
    return out


def _speech():
    from unified_agents.builtin.speech import stt, tts, wav
    from unified_agents.builtin.speech.scoring import word_error_rate
    return stt, tts, wav, word_error_rate


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def add_noise(pcm, snr_db: float, rng):
    import numpy as np

    x = pcm.astype(np.float64)
    noise = rng.standard_normal(len(x))
    p_sig, p_noise = np.mean(x ** 2), np.mean(noise ** 2)
    noise *= np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))
    return np.clip(np.round(x + noise), -32768, 32767).astype("<i2")


DENOISE = ("wiener", "none")  # STTService's default first (STT_DENOISE), then the engine alone


def eval_set(n: int) -> list[tuple[str, str, str, object]]:
    """(voice, half, text, int16 samples at 16 kHz) of each evaluation utterance."""
    import numpy as np

    _, tts, wav, _ = _speech()
    flite = tts.Flite(_which("flite"))
    rng = np.random.default_rng(14)
    out = []
    for i, text in enumerate(utterances(n)):
        voice = EVAL_VOICES[i % len(EVAL_VOICES)]
        half = "noisy" if i % 2 else "clean"
        pcm, _ = wav.to_mono16k(wav.read(flite.synthesize(text, voice, 1.0, 1.0, 60)))
        out.append((voice, half, text, add_noise(pcm, SNR_DB, rng) if half == "noisy" else pcm))
    return out


def _score(rows: dict, per_voice: dict, engine, order=DENOISE) -> dict:
    """WER, exact matches and RTFs of each (setting, half), and WER by voice."""
    _, _, _, word_error_rate = _speech()
    out = {"engine_version": engine.version, "model": engine.model_dir,
           "voices": {k: round(word_error_rate(v), 4) for k, v in sorted(per_voice.items())},
           "examples": [p for p in rows[(order[0], "clean")]["pairs"] if p[0] != p[1]][:5],
           "halves": []}
    for (setting, half), r in rows.items():
        out["halves"].append({
            "half": half, "denoise": setting, "utterances": len(r["pairs"]),
            "wer": round(word_error_rate(r["pairs"]), 4),
            "exact": sum(a == b for a, b in r["pairs"]), "audio_s": round(r["audio_s"], 1),
            "rtf_cpu": round(r["cpu_s"] / r["audio_s"], 3),
            "rtf_wall": round(r["wall_s"] / r["audio_s"], 3)})
    out["halves"].sort(key=lambda h: (h["half"], order.index(h["denoise"])))
    return out


def _add(rows: dict, per_voice: dict, key: tuple, voice: str, text: str, hyp: str,
         audio_s: float, c0: float, w0: float) -> None:
    r = rows.setdefault(key, {"pairs": [], "audio_s": 0.0, "cpu_s": 0.0, "wall_s": 0.0})
    r["cpu_s"] += time.process_time() - c0
    r["wall_s"] += time.perf_counter() - w0
    r["audio_s"] += audio_s
    r["pairs"].append((text, hyp))
    per_voice.setdefault(f"{voice}/{key[1]}/{key[0]}", []).append((text, hyp))


def measure_stt(audio: list) -> dict:
    """Each utterance recognised twice: denoised first (what STTService does by default) and as
    heard. The decode's CPU time includes the denoising."""
    import pocketsphinx

    stt, _, _, _ = _speech()
    from unified_agents.builtin.speech import denoise

    engine = stt.Pocketsphinx(pocketsphinx)
    load_s = engine.load()
    rows: dict = {}
    per_voice: dict = {}
    for voice, half, text, pcm in audio:
        for setting in DENOISE:
            c0, w0 = time.process_time(), time.perf_counter()
            heard = denoise.wiener(pcm) if setting == "wiener" else pcm
            hyp = engine.transcribe(heard)["text"]
            _add(rows, per_voice, (setting, half), voice, text, hyp, len(pcm) / 16000, c0, w0)
    return {"n": len(audio), "load_s": round(load_s, 3), **_score(rows, per_voice, engine)}


STREAM_CHUNK = 1600  # samples: 0.1 s, a live microphone's pace


# StreamingSpeechRecognition's live pass two ways: (final pass, session's denoise). Its
# default final answer is STTService's second pass: measure_stt's rows.
STREAM_SETTINGS = {"live": ("live", "none"), "live+wiener": ("live", "wiener")}


def measure_streaming_stt(audio: list) -> dict:
    """StreamingSpeechRecognition's live pass: the same utterances fed in 0.1 s chunks (live
    CMN, search as the audio arrives), one decoder for all, as heard and through the
    streaming Wiener filter (a session's "denoise"). Its default final answer is STTService's
    pass over the whole utterance: measure_stt."""
    import pocketsphinx

    from unified_agents.builtin.speech import denoise
    from unified_agents.builtin.speech.stream_stt import StreamDecoder

    engine = StreamDecoder(pocketsphinx)
    engine.load()
    rows: dict = {}
    per_voice: dict = {}
    for voice, half, text, pcm in audio:
        for label, (_, setting) in STREAM_SETTINGS.items():
            c0, w0 = time.process_time(), time.perf_counter()
            engine.begin(denoise.StreamingWiener() if setting == "wiener" else None)
            for i in range(0, len(pcm), STREAM_CHUNK):
                engine.feed(pcm[i:i + STREAM_CHUNK].tobytes())
            hyp = engine.finish()["text"]
            _add(rows, per_voice, (label, half), voice, text, hyp, len(pcm) / 16000, c0, w0)
    return {"n": len(audio), "chunk_s": STREAM_CHUNK / 16000,
            **_score(rows, per_voice, engine, tuple(STREAM_SETTINGS))}


def _which(binary: str) -> str:
    import shutil

    path = shutil.which(binary)
    if path is None:
        raise SystemExit(f"bench_speech needs {binary}: apt install {binary}")
    return path


def measure_tts(repeats: int = 5) -> list[dict]:
    _, tts, wav, _ = _speech()
    out = []
    for cls, voices in ((tts.Flite, ("slt", "kal", "awb")), (tts.EspeakNG, ("en-us",))):
        engine = cls(_which(cls.binary))
        for voice in voices:
            walls, cpus, seconds = [], [], 0.0
            for _ in range(repeats):
                c0, w0 = _children_cpu(), time.perf_counter()
                data = engine.synthesize(TTS_SENTENCE, voice, 1.0, 1.0, 60)
                walls.append(time.perf_counter() - w0)
                cpus.append(_children_cpu() - c0)
                seconds = wav.read(data).seconds
            walls.sort()
            cpus.sort()
            out.append({"engine": engine.name, "voice": voice, "audio_s": round(seconds, 2),
                        "first_audio_ms": round(walls[len(walls) // 2] * 1000, 1),
                        "rtf_wall": round(walls[len(walls) // 2] / seconds, 4),
                        "rtf_cpu": round(cpus[len(cpus) // 2] / seconds, 4)})
    return out


def measure_cold(pythonpath: str, repeats: int = 3,
                 agents=(("STTService", "stt_service"), ("TTSService", "tts_service"))) -> dict:
    """Start each agent as a process and time exec → /health answering (model load included);
    its RSS once idle."""
    out = {}
    for name, module in agents:
        times, rss = [], []
        for _ in range(repeats):
            p, _, _, seconds = start_builtin(name, module, pythonpath)
            try:
                times.append(seconds)
                with open(f"/proc/{p.pid}/status") as f:
                    rss += [int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS")]
            finally:
                p.terminate()
                p.wait(10)
        times.sort()
        out[name] = {"cold_start_s": round(times[len(times) // 2], 3),
                     "idle_rss_mb": round(sorted(rss)[len(rss) // 2], 1)}
    return out


def measure(n: int, pythonpath: str) -> dict:
    audio = eval_set(n)
    return {"stt": measure_stt(audio), "streaming_stt": measure_streaming_stt(audio),
            "tts": measure_tts(), "cold": measure_cold(pythonpath),
            "load_avg": os.getloadavg()[0]}


def markdown(m: dict) -> list[str]:
    s = m["stt"]
    lines = ["## Speech engines (STTService, TTSService)", "",
             f"Evaluation set: {s['n']} command-like utterances synthesised with flite voices "
             f"{', '.join(EVAL_VOICES)} (not used in development), every second one with white "
             f"noise at {SNR_DB:g} dB SNR. PocketSphinx {s['engine_version']} (Debian "
             f"python3-pocketsphinx), model {s['model']}, default decoder settings; each utterance "
             "recognised denoised (STTService's default, STT_DENOISE=wiener) and as heard "
             "(none). RTF = (denoise +) decode seconds / audio seconds (CPU: one core's process time; wall: on this shared "
             f"machine, load {m['load_avg']:.1f}).", "",
             "| half | denoise | utterances | WER | exact | audio s | RTF (CPU) | RTF (wall) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for h in s["halves"]:
        lines.append(f"| {h['half']} | {h['denoise']} | {h['utterances']} | {h['wer']:.1%} | "
                     f"{h['exact']} | {h['audio_s']} | {h['rtf_cpu']} | {h['rtf_wall']} |")
    lines += ["", "WER by voice: " + ", ".join(f"{k} {v:.1%}" for k, v in s["voices"].items())
              + ".", ""]
    if "streaming_stt" in m:
        st = m["streaming_stt"]
        lines += [f"StreamingSpeechRecognition's decoding, the same utterances fed in "
                  f"{st['chunk_s']:g} s chunks, one decoder for all of them (as one "
                  "StreamingSpeechRecognition decoder serves session after session): the live "
                  "pass as heard (live) and through the streaming Wiener filter (live+wiener: "
                  "a session's \"denoise\"). These are the partials' accuracy and the final "
                  "answer's with \"final_pass\": \"live\"; the default final answer is "
                  "STTService's pass over the whole utterance (the table above).", "",
                  "| half | final answer | utterances | WER | exact | RTF (CPU) | RTF (wall) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for h in st["halves"]:
            lines.append(f"| {h['half']} | {h['denoise']} | {h['utterances']} | {h['wer']:.1%} "
                         f"| {h['exact']} | {h['rtf_cpu']} | {h['rtf_wall']} |")
        lines += ["", "Streaming WER by voice: " + ", ".join(
            f"{k} {v:.1%}" for k, v in st["voices"].items()) + ".", ""]
    lines += ["| TTS engine | voice | audio s (20 words) | time to first audio ms | RTF (wall) "
              "| RTF (CPU) |", "| --- | --- | --- | --- | --- | --- |"]
    for t in m["tts"]:
        lines.append(f"| {t['engine']} | {t['voice']} | {t['audio_s']} | {t['first_audio_ms']} | "
                     f"{t['rtf_wall']} | {t['rtf_cpu']} |")
    lines += ["", "Not streaming yet: time to first audio is the whole synthesis.", "",
              "| agent | cold start (exec → /health, model load included) | idle RSS MB |",
              "| --- | --- | --- |"]
    for name, c in m["cold"].items():
        lines.append(f"| {name} | {c['cold_start_s']} s | {c['idle_rss_mb']} |")
    return lines + [""]


def run(c, runs, summary):
    """`make bench`: the same measurement inside the container, against the installed package
    (its speech dependencies come from the .deb's Depends)."""
    for name in ("bench_speech.py", "sdk_common.py"):  # sdk_common: checkout_path
        c.write_file(f"/root/{name}", (Path(__file__).parent / name).read_text())
    try:
        r = c.run(["python3", "/root/bench_speech.py", "--json", "--installed"], timeout=1800)
    finally:
        c.run(["rm", "-f", "/root/bench_speech.py"])
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="utterances (default 120)")
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed unified_agents (default: this checkout's agents/)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, as the RTF says
    pythonpath = checkout_path(args.installed)
    m = measure(args.n, pythonpath)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
