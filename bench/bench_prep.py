"""FusedAudioPreprocessor's voice activity detector: frame-level precision/recall of speech and
segment boundary error on synthesised utterances separated by silences of known length, half of
the files with white noise at 10 dB SNR; and the preprocessing's cost (real-time factor).

The evaluation set uses voices the detector was not tuned on: its constants (speech/vad.py)
were set on the development set (espeak-ng voices and flite rms, `--dev`) and then frozen; the
evaluation set is flite slt, kal and awb, other sentences and another seed.

Truth: a file is lead-in + utterance + gap + utterance [+ gap + utterance] + tail, with gaps of
0.4-2.5 s; each utterance's speech runs from its first to its last 10 ms frame within 40 dB of
its loudest frame (flite and espeak-ng pad their output with silence). Pauses inside one
utterance count as speech: a segment is an utterance, as a recogniser wants it.

    python3 bench/bench_prep.py [--files 60] [--dev] [--json]     on this machine
    make bench                                                    in the test container (run())
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

from sdk_common import checkout_path, start_builtin

SNR_DB = 10.0
GAPS_S = (0.4, 0.6, 1.0, 1.5, 2.5)
EVAL = (("flite", "slt"), ("flite", "kal"), ("flite", "awb"))
DEV = (("espeak-ng", "en-us"), ("espeak-ng", "en-gb+m3"), ("espeak-ng", "en-us+f2"),
       ("flite", "rms"))
DEV_SENTENCES = ["turn on the light", "what is the time", "open the garage door",
                 "how cold is it outside", "start the vacuum cleaner", "read my messages",
                 "pause", "next song please", "good night", "where is my phone"]
FRAME_S = 0.01


def _speech():
    from unified_agents.builtin.speech import prep, tts, vad, wav
    return prep, tts, vad, wav


def _which(binary: str) -> str:
    import shutil

    path = shutil.which(binary)
    if path is None:
        raise SystemExit(f"bench_prep needs {binary}: apt install {binary}")
    return path


def speech_extent(x, rate: int) -> tuple[float, float]:
    """(start_s, end_s) of an utterance: its first to last 10 ms frame within 40 dB of its
    loudest frame."""
    import numpy as np

    hop = int(rate * FRAME_S)
    n = len(x) // hop
    e = np.mean(x[:n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    on = np.flatnonzero(e > e.max() * 1e-4)
    return on[0] * FRAME_S, (on[-1] + 1) * FRAME_S


def build_set(files: int, dev: bool, seed: int) -> list[dict]:
    """Each file: {"x": float32 16 kHz, "truth": [[s, e], ...], "voice", "noisy"}."""
    import numpy as np

    prep, tts, vad, wav = _speech()
    engines = {"flite": tts.Flite(_which("flite"))}
    if dev:
        engines["espeak-ng"] = tts.EspeakNG(_which("espeak-ng"))
        sentences = DEV_SENTENCES
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_speech import utterances  # the STT evaluation's command-like sentences

        sentences = utterances(files * 3, seed=seed)
    voices = DEV if dev else EVAL
    rng = np.random.default_rng(seed)
    cache: dict = {}
    out = []
    for i in range(files):
        engine, voice = voices[i % len(voices)]
        k = 2 + (i // 2) % 2  # 2 or 3 commands, in both halves alike
        parts, truth, t = [], [], 0.0
        lead = rng.uniform(0.3, 1.5)
        parts.append(np.zeros(int(lead * vad.RATE), np.float32))
        t = lead
        for j in range(k):
            text = sentences[(3 * i + j) % len(sentences)]
            key = (engine, voice, text)
            if key not in cache:
                a = wav.read(engines[engine].synthesize(text, voice, 1.0, 1.0, 60))
                x = wav.resample(a.samples[:, 0], a.rate, vad.RATE)
                s, e = speech_extent(x, vad.RATE)
                cache[key] = x[int(s * vad.RATE):int(e * vad.RATE)]
            x = cache[key]
            parts.append(x)
            truth.append([t, t + len(x) / vad.RATE])
            t += len(x) / vad.RATE
            gap = GAPS_S[(i + j) % len(GAPS_S)] if j < k - 1 else rng.uniform(0.3, 1.5)
            parts.append(np.zeros(int(gap * vad.RATE), np.float32))
            t += len(parts[-1]) / vad.RATE
        x = np.concatenate(parts)
        noisy = i % 2 == 1
        if noisy:
            speech = np.concatenate([x[int(s * vad.RATE):int(e * vad.RATE)] for s, e in truth])
            p = float(np.mean(speech.astype(np.float64) ** 2))
            noise = rng.standard_normal(len(x)) * np.sqrt(p / 10 ** (SNR_DB / 10))
            x = np.clip(x + noise, -1, 1).astype(np.float32)
        out.append({"x": x, "truth": truth, "voice": f"{engine}:{voice}", "noisy": noisy})
    return out


def _mask(segments, frames: int):
    import numpy as np

    m = np.zeros(frames, bool)
    for s, e in segments:
        m[int(round(s / FRAME_S)):int(round(e / FRAME_S))] = True
    return m


def score(files: list[dict], detect) -> dict:
    """Frame precision/recall, boundary errors and segment counts of detect(x) → segments."""
    import numpy as np

    tp = fp = fn = 0
    errors, missed, false, right_count, cpu, audio = [], 0, 0, 0, 0.0, 0.0
    for f in files:
        c0 = time.process_time()
        got = detect(f["x"])
        cpu += time.process_time() - c0
        audio += len(f["x"]) / 16000
        frames = int(len(f["x"]) / 16000 / FRAME_S) + 1
        t, g = _mask(f["truth"], frames), _mask(got, frames)
        tp += int(np.sum(t & g))
        fp += int(np.sum(~t & g))
        fn += int(np.sum(t & ~g))
        right_count += len(got) == len(f["truth"])
        false += sum(1 for s, e in got if not any(s < te and ts < e for ts, te in f["truth"]))
        for ts, te in f["truth"]:
            over = [(min(e, te) - max(s, ts), s, e) for s, e in got if s < te and ts < e]
            if not over:
                missed += 1
                continue
            _, s, e = max(over)
            errors += [abs(s - ts), abs(e - te)]
    err = np.array(errors) * 1000 if errors else np.array([np.nan])
    segs = sum(len(f["truth"]) for f in files)
    return {"files": len(files), "segments": segs,
            "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
            "boundary_ms_median": round(float(np.median(err)), 1),
            "boundary_ms_mean": round(float(np.mean(err)), 1),
            "boundary_ms_p90": round(float(np.percentile(err, 90)), 1),
            "boundaries_within_100ms": round(float(np.mean(err <= 100)), 4),
            "missed_segments": missed, "false_segments": false,
            "files_right_count": right_count, "rtf_cpu": round(cpu / audio, 4),
            "audio_s": round(audio, 1)}


def _start(name: str, module: str, env: dict):
    """An agent process (as the unit runs it) answering /health: (process, agent port, health
    port, seconds from exec to /health)."""
    return start_builtin(name, module, os.pathsep.join(sys.path), env)


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":"))


def measure_agents() -> dict:
    """Cold start, idle RSS, and the peak RSS (VmHWM) of the largest request each agent lets in:
    60 s of 48 kHz stereo float for the preprocessor, 30 s of 48 kHz for the capture — what
    their MemoryMax (catalog resources.memory_mb) must hold."""
    import base64
    import urllib.request

    import numpy as np

    _, _, _, wav = _speech()
    tmp = Path(tempfile.mkdtemp(prefix="bench-prep-agents-"))
    rng = np.random.default_rng(3)
    src = tmp / "src.wav"
    src.write_bytes(wav.write((rng.standard_normal(48000 * 30) * 3000).astype("<i2"), 48000))
    x = (rng.standard_normal((48000 * 60, 2)) * 0.1).astype("<f4")
    raw = x.tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, 48000, 48000 * 8, 8, 32)
    big = (b"RIFF" + struct.pack("<I", 36 + len(raw)) + b"WAVEfmt " + struct.pack("<I", 16)
           + fmt + b"data" + struct.pack("<I", len(raw)) + raw)
    jobs = {"FusedAudioPreprocessor": ("fused_audio_preprocessor", {},
                                       {"type": "audio_preprocessing",
                                        "audio_wav_b64": base64.b64encode(big).decode()}),
            "AudioCapture": ("audio_capture", {"AUDIO_SOURCE": f"file:{src}"},
                             {"type": "audio_capture", "seconds": 30})}
    out = {}
    for name, (module, env, body) in jobs.items():
        p, port, _, cold = _start(name, module, env)
        try:
            time.sleep(0.5)
            idle = _status_kb(p.pid, "VmRSS")
            data = json.dumps(body).encode()
            t0 = time.perf_counter()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/task", data=data,
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=300).read()
            out[name] = {"cold_start_s": round(cold, 3), "idle_rss_mb": round(idle / 1024, 1),
                         "largest_request_s": round(time.perf_counter() - t0, 2),
                         "peak_rss_mb": round(_status_kb(p.pid, "VmHWM") / 1024, 1),
                         "request_mb": round(len(data) / 1e6, 1)}
        finally:
            p.terminate()
            p.wait(10)
    return out


def measure(files: int, dev: bool) -> dict:
    prep, _, vad, _ = _speech()
    data = build_set(files, dev, seed=7 if dev else 21)
    out: dict = {"set": "development" if dev else "evaluation",
                 "voices": sorted({f["voice"] for f in data}), "snr_db": SNR_DB,
                 "load_avg": os.getloadavg()[0]}
    for half, sel in (("clean", False), ("noisy", True)):
        out[half] = score([f for f in data if f["noisy"] == sel], vad.speech_segments)
    # the whole preprocessing (DC, normalisation, VAD, conversion) per second of audio
    c0 = time.process_time()
    seconds = 0.0
    for f in data:
        prep.preprocess(f["x"])
        seconds += len(f["x"]) / vad.RATE
    out["preprocess_rtf_cpu"] = round((time.process_time() - c0) / seconds, 4)
    out["agents"] = measure_agents()
    return out


def markdown(m: dict) -> list[str]:
    lines = ["## FusedAudioPreprocessor: voice activity detection", "",
             f"{m['set'].capitalize()} set: {m['clean']['files'] + m['noisy']['files']} files of "
             "2-3 synthesised commands separated by silences of 0.4-2.5 s (voices "
             f"{', '.join(m['voices'])}); every second file with white noise at "
             f"{m['snr_db']:g} dB SNR. Frames of 10 ms; a boundary error is |detected - true| "
             "of a segment's start or end (the detected segment overlapping it most). "
             f"Load average {m['load_avg']:.1f}.", "",
             "| half | files | segments | frame precision | frame recall | boundary error "
             "median / mean / p90 ms | within 100 ms | missed | false | files with the right "
             "number of segments | VAD RTF (CPU) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for half in ("clean", "noisy"):
        h = m[half]
        lines.append(f"| {half} | {h['files']} | {h['segments']} | {h['precision']:.1%} | "
                     f"{h['recall']:.1%} | {h['boundary_ms_median']} / {h['boundary_ms_mean']} "
                     f"/ {h['boundary_ms_p90']} | {h['boundaries_within_100ms']:.0%} | "
                     f"{h['missed_segments']} | {h['false_segments']} | "
                     f"{h['files_right_count']}/{h['files']} | {h['rtf_cpu']} |")
    lines += ["", f"Whole preprocessing (DC removal, normalisation, VAD) RTF (CPU): "
                  f"{m['preprocess_rtf_cpu']}.", "",
              "| agent | cold start (exec → /health) | idle RSS MB | largest request | its "
              "time s | peak RSS MB |", "| --- | --- | --- | --- | --- | --- |"]
    largest = {"FusedAudioPreprocessor": "60 s 48 kHz stereo float",
               "AudioCapture": "30 s of a 48 kHz file"}
    for name, a in m["agents"].items():
        lines.append(f"| {name} | {a['cold_start_s']} s | {a['idle_rss_mb']} | "
                     f"{largest[name]} ({a['request_mb']} MB body) | {a['largest_request_s']} | "
                     f"{a['peak_rss_mb']} |")
    return lines + [""]


def run(c, runs, summary):
    """`make bench`: the same measurement inside the container, against the installed package."""
    here = Path(__file__).resolve().parent
    for name in ("bench_prep.py", "bench_speech.py", "sdk_common.py"):
        c.write_file(f"/root/{name}", (here / name).read_text())
    try:
        r = c.run(["python3", "/root/bench_prep.py", "--json", "--installed"], timeout=900)
    finally:
        c.run(["rm", "-f", "/root/bench_prep.py", "/root/bench_speech.py"])
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=60, help="files (default 60)")
    ap.add_argument("--dev", action="store_true",
                    help="the development set (espeak-ng, flite rms) instead of the evaluation")
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed unified_agents (default: this checkout's agents/)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    checkout_path(args.installed)
    m = measure(args.files, args.dev)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
