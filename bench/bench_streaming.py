"""Streaming speech: StreamingTTSAgent's time to first audio, StreamingSpeechRecognition's
per-chunk latency and accuracy against whole-file decoding, and StreamingInterruptHandler's
barge-in: how long from the user's first word to the playback stopped, and how often the
assistant's own voice heard back through the microphone (echo) fires a false barge-in.

The three agents run as real processes (python3 -m unified_agents run), spoken to over HTTP
as a client would. Voices are the evaluation voices of bench_speech.py (flite slt, kal, awb;
development used rms and espeak-ng); nothing is tuned on them.

    python3 bench/bench_streaming.py [--json]      on this machine (engines installed)
    make bench / bench/run.py --only streaming     in the test container (run())
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speech import EVAL_VOICES, TTS_SENTENCE, utterances  # noqa: E402
from sdk_common import checkout_path, free_port  # noqa: E402

ORDER = 61
LONG = ("Here is the weather for today. It will be sunny in the morning, with clouds coming "
        "in after lunch. In the evening there may be some rain. Tomorrow looks much the same, "
        "a little warmer. Have a nice day.")
USER = ["stop", "wait a second", "no thanks", "what time is it", "turn it off", "cancel that",
        "hold on", "that is enough", "pause the music", "tell me something else"]
ECHO_DB = (-30, -20, -12, -6)  # the echo's level against the user's voice at the microphone


class Agent:
    def __init__(self, name: str, module: str, pythonpath: str, **env):
        self.port, self.health_port = free_port(), free_port()
        e = dict(os.environ, PYTHONPATH=pythonpath, UNIFIED_AGENT=name,
                 UNIFIED_RUN=f"builtin:{module}", UNIFIED_PORT=str(self.port),
                 UNIFIED_HEALTH_PORT=str(self.health_port), **{k: str(v) for k, v in env.items()})
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "unified_agents", "run", name],
                                     env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health",
                                       timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.perf_counter() - t0 > 60:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise SystemExit(f"{name} did not start: {err.strip()[-500:]}")
                time.sleep(0.01)
        self.cold_start_s = time.perf_counter() - t0

    def task(self, body: dict) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/task",
                                     json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())["result"]

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmRSS"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _int16_bytes(x) -> bytes:
    import numpy as np

    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def _p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.95))] if xs else None


def _pcm(wav, data: bytes):
    return wav.to_mono16k(wav.read(data))[0]


def measure_tts(agent: Agent, tts, repeats: int = 5) -> list[dict]:
    """Time to first audio of the 20-word sentence: the streaming_tts answer (first piece)
    seen by the client, against synthesising the whole sentence at once."""
    import resource
    import shutil

    from unified_agents.builtin.speech import sentences

    def children_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    head = sentences.split(TTS_SENTENCE)[0]
    out = []
    for engine_name, voices in (("flite", ("slt", "kal", "awb")), ("espeak-ng", ("en-us",))):
        engine = tts.ENGINES[engine_name](shutil.which(engine_name))
        for voice in voices:
            first, whole, pieces, head_cpu = [], [], 0, []
            for _ in range(repeats):
                # the first piece's synthesis alone, in CPU seconds: what a busy machine's
                # wall clock adds waiting for a core is left out
                c0 = children_cpu()
                engine.synthesize(head, voice, 1.0, 1.0, 60)
                head_cpu.append(children_cpu() - c0)
                t0 = time.perf_counter()
                r = agent.task({"type": "streaming_tts", "text": TTS_SENTENCE,
                                "voice": f"{engine_name}:{voice}", "play": False})
                first.append(time.perf_counter() - t0)
                pieces = r["chunks"]
                t0 = time.perf_counter()
                engine.synthesize(TTS_SENTENCE, voice, 1.0, 1.0, 60)
                whole.append(time.perf_counter() - t0)
            out.append({"engine": engine_name, "voice": voice, "pieces": pieces,
                        "first_words": len(r["chunk"]["text"].split()),
                        "first_audio_ms": round(_median(first) * 1000, 1),
                        "first_piece_cpu_ms": round(_median(head_cpu) * 1000, 1),
                        "whole_ms": round(_median(whole) * 1000, 1)})
    return out


def measure_stt(agent: Agent, tts, wav, n: int, chunk_s: float = 0.1) -> dict:
    """Each utterance sent in chunk_s chunks as fast as answers come: per-chunk answer time,
    the final answer's time after the last chunk (STTService's pass over the whole utterance
    included: the default), and WER of the live pass (`live_text`), of the final answer, and
    of whole-file decoding in this process."""
    import shutil

    import pocketsphinx

    from unified_agents.builtin.speech import stt
    from unified_agents.builtin.speech.scoring import word_error_rate

    flite = tts.Flite(shutil.which("flite"))
    batch = stt.Pocketsphinx(pocketsphinx)
    batch.load()
    step = int(16000 * chunk_s) * 2
    chunk_t, final_t, streamed, finals, whole, first_partial, audio_total = [], [], [], [], [], [], 0.0
    for i, text in enumerate(utterances(n)):
        pcm = _pcm(wav, flite.synthesize(text, EVAL_VOICES[i % len(EVAL_VOICES)], 1, 1, 60))
        raw = pcm.tobytes()
        sid, seen = None, None
        for j in range(0, len(raw), step):
            body = {"type": "streaming_stt", "audio_chunk_b64": _b64(raw[j:j + step])}
            if sid:
                body["session"] = sid
            t0 = time.perf_counter()
            r = agent.task(body)
            chunk_t.append(time.perf_counter() - t0)
            sid = r["session"]
            if seen is None and r["partial"]:
                seen = r["audio_s"]
        t0 = time.perf_counter()
        r = agent.task({"type": "streaming_stt", "session": sid, "final": True})
        final_t.append(time.perf_counter() - t0)
        audio_s = len(pcm) / 16000
        audio_total += audio_s
        if seen is not None:
            first_partial.append(seen / audio_s)
        if r.get("final_pass") != "whole":
            raise SystemExit(f"no second pass: {r.get('whole_error')}")
        streamed.append((text, r["live_text"]))
        finals.append((text, r["text"]))
        whole.append((text, batch.transcribe(pcm)["text"]))
    return {"n": n, "chunk_s": chunk_s, "audio_s": round(audio_total, 1),
            "chunk_ms_p50": round(_median(chunk_t) * 1000, 1),
            "chunk_ms_p95": round(_p95(chunk_t) * 1000, 1),
            "final_ms_p50": round(_median(final_t) * 1000, 1),
            "final_ms_p95": round(_p95(final_t) * 1000, 1),
            "first_partial_at": round(_median(first_partial), 2) if first_partial else None,
            "wer_streamed": round(word_error_rate(streamed), 4),
            "wer_final": round(word_error_rate(finals), 4),
            "wer_whole": round(word_error_rate(whole), 4)}


def _onset(pcm) -> float:
    """Where speech starts in a clean utterance: the first 10 ms above -40 dBFS."""
    import numpy as np

    n = len(pcm) // 160
    f = pcm[:n * 160].astype(np.float64).reshape(n, 160) / 32768
    levels = 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)
    return float(np.argmax(levels > -40)) / 100


def _db(x) -> float:
    import numpy as np

    return 10 * float(np.log10(np.mean((x.astype(np.float64) / 32768) ** 2) + 1e-12))


def measure_barge_in(tts_agent: Agent, handler: Agent, tts, wav) -> dict:
    """Users (evaluation voices) talk over a playback after 0.5 s of room noise; the echo of
    the assistant's own voice is mixed in at ECHO_DB under the user's level. Chunks of 0.1 s,
    sent as fast as answers come (detection is in audio time, the stop call in wall time)."""
    import shutil

    import numpy as np

    flite = tts.Flite(shutil.which("flite"))
    rng = np.random.default_rng(14)
    assistant = _pcm(wav, flite.synthesize(LONG, "slt", 1, 1, 60)).astype(np.float64)
    users = [_pcm(wav, flite.synthesize(t, EVAL_VOICES[i % 3], 1, 1, 60))
             for i, t in enumerate(USER)]
    user_db = _median([_db(u) for u in users])
    room = rng.normal(0, 30, 8000)  # 0.5 s at about -60 dBFS

    def feed(pid, x) -> dict | None:
        x = _int16_bytes(x)
        for j in range(0, len(x), 3200):
            r = handler.task({"type": "interrupt", "playback_id": pid,
                              "audio_chunk_b64": _b64(x[j:j + 3200])})
            if r["barge_in"]:
                return r
        return None

    rows = []
    for echo_db in (None, *ECHO_DB):
        gain = 0.0 if echo_db is None else 10 ** ((user_db + echo_db - _db(assistant)) / 20)
        false, hits, delay, stop_ms, stop_s = 0, 0, [], [], []
        for k, user in enumerate(users):
            # echo alone: the assistant talking, nobody else (a barge-in here is false)
            if echo_db is not None:
                start = (k * 8000) % (len(assistant) - 64000)
                echo = assistant[start:start + 64000] * gain  # 4 s of it
                pid = tts_agent.task({"type": "streaming_tts", "text": "Echo.",
                                      "play": True})["playback_id"]
                false += feed(pid, np.concatenate([room, echo])) is not None
            # the user over the echo
            pid = tts_agent.task({"type": "streaming_tts", "text": LONG})["playback_id"]
            x = np.concatenate([room, user.astype(np.float64)])
            if echo_db is not None:
                x += assistant[:len(x)] * gain
            r = feed(pid, x)
            if r is not None:
                hits += 1
                delay.append(r["detected_s"] - (0.5 + _onset(user)))
                stop_ms.append(r["stop_call_s"] * 1000)
                stop_s.append(r["stop"]["stop_s"] * 1000)
            tts_agent.task({"type": "stop_playback", "playback_id": pid})
        rows.append({"echo_db": echo_db, "users": len(users), "detected": hits,
                     "false": false if echo_db is not None else None,
                     "detect_delay_ms_p50": round(_median(delay) * 1000) if delay else None,
                     "detect_delay_ms_max": round(max(delay) * 1000) if delay else None,
                     "stop_call_ms_p50": round(_median(stop_ms), 1) if stop_ms else None,
                     "stop_in_agent_ms_p50": round(_median(stop_s), 1) if stop_s else None})
    return {"user_dbfs": round(user_db, 1), "rows": rows}


ROOM_DELAY_S = 0.1  # speaker → microphone: the device's buffers and the air


def _room(x, rng, delay_s: float = ROOM_DELAY_S):
    """`x` as a microphone hears it from the speaker: `delay_s` late and smeared by a room
    (random taps decaying over 0.3 s: RT60 about 0.3 s), at the same level."""
    import numpy as np

    h = rng.normal(0, 1, 4800) * np.exp(-np.arange(4800) / 700)
    h[0] = 3.0
    e = np.convolve(np.concatenate([np.zeros(int(16000 * delay_s)), x]), h)[:len(x)]
    return e * np.sqrt(np.mean(x * x) / np.mean(e * e))


def measure_echo_reference(tts_agent: Agent, handler: Agent, tts, wav,
                           delay_s: float = ROOM_DELAY_S) -> dict:
    """The same users over an echo that went through a room (delayed, reverberated), each
    echo level twice: as heard (energy alone) and with the played audio sent as
    "reference_chunk_b64". Echo alone for 10 s (a barge-in there is false); the user starts
    2 s into the playback."""
    import shutil

    import numpy as np

    flite = tts.Flite(shutil.which("flite"))
    rng = np.random.default_rng(15)
    assistant = _pcm(wav, flite.synthesize(LONG, "slt", 1, 1, 60)).astype(np.float64)
    assistant = np.concatenate([assistant, assistant])
    users = [_pcm(wav, flite.synthesize(t, EVAL_VOICES[i % 3], 1, 1, 60)).astype(np.float64)
             for i, t in enumerate(USER)]
    user_db = _median([_db(u) for u in users])
    def feed(pid, mic, played) -> dict | None:
        m, p = _int16_bytes(mic), None if played is None else _int16_bytes(played)
        for j in range(0, len(m), 3200):
            body = {"type": "interrupt", "playback_id": pid, "audio_chunk_b64": _b64(m[j:j + 3200])}
            if p is not None:
                body["reference_chunk_b64"] = _b64(p[j:j + 3200])
            r = handler.task(body)
            if r["barge_in"]:
                return r
        return None

    rows = []
    for echo_db in (*ECHO_DB, 0):
        for with_ref in (False, True):
            false, hits, early, delay = 0, 0, 0, []
            for k, user in enumerate(users):
                start = (k * 16000) % (len(assistant) - 160000)
                played = assistant[start:start + 160000]  # 10 s
                gain = 10 ** ((user_db + echo_db - _db(played)) / 20)
                echo = _room(played, rng, delay_s) * gain + rng.normal(0, 30, len(played))
                pid = tts_agent.task({"type": "streaming_tts", "text": "Echo.",
                                      "play": True})["playback_id"]
                false += feed(pid, echo, played if with_ref else None) is not None
                x = echo[:32000 + len(user)].copy()
                x[32000:] += user
                pid = tts_agent.task({"type": "streaming_tts", "text": LONG})["playback_id"]
                r = feed(pid, x, played[:len(x)] if with_ref else None)
                if r is not None and r["detected_s"] >= 2.0 + _onset(user):
                    hits += 1
                    delay.append(r["detected_s"] - (2.0 + _onset(user)))
                elif r is not None:
                    early += 1  # fired on the echo before the user spoke
                tts_agent.task({"type": "stop_playback", "playback_id": pid})
            rows.append({"echo_db": echo_db, "reference": with_ref, "users": len(users),
                         "detected": hits, "early": early, "false": false,
                         "detect_delay_ms_p50": round(_median(delay) * 1000) if delay else None})
    return {"user_dbfs": round(user_db, 1), "delay_s": delay_s, "rows": rows}


def measure(pythonpath: str, n: int) -> dict:
    from unified_agents.builtin.speech import tts, wav

    play = tempfile.mkdtemp(prefix="bench-streaming-")
    agents = {}
    try:
        agents["STTService"] = Agent("STTService", "stt_service", pythonpath)  # the 2nd pass
        agents["StreamingSpeechRecognition"] = Agent(
            "StreamingSpeechRecognition", "streaming_speech_recognition", pythonpath,
            STREAM_STT_WHOLE_URL=f"http://127.0.0.1:{agents['STTService'].port}")
        agents["StreamingTTSAgent"] = Agent(
            "StreamingTTSAgent", "streaming_tts", pythonpath, STREAM_TTS_SINK="file",
            STREAM_TTS_FILE_DIR=play, STREAM_TTS_MAX_STREAMS=64)
        agents["StreamingInterruptHandler"] = Agent(
            "StreamingInterruptHandler", "streaming_interrupt", pythonpath,
            INTERRUPT_TTS_URL=f"http://127.0.0.1:{agents['StreamingTTSAgent'].port}",
            INTERRUPT_MAX_WATCHES=256)
        idle = {k: {"cold_start_s": round(a.cold_start_s, 3), "idle_rss_mb": round(a.rss_mb(), 1)}
                for k, a in agents.items()}
        return {"tts": measure_tts(agents["StreamingTTSAgent"], tts),
                "stt": measure_stt(agents["StreamingSpeechRecognition"], tts, wav, n),
                "barge_in": measure_barge_in(agents["StreamingTTSAgent"],
                                             agents["StreamingInterruptHandler"], tts, wav),
                "echo_reference": measure_echo_reference(
                    agents["StreamingTTSAgent"], agents["StreamingInterruptHandler"], tts, wav),
                "agents": idle, "load_avg": os.getloadavg()[0]}
    finally:
        for a in agents.values():
            a.stop()
        subprocess.run(["rm", "-rf", play], check=False)


def measure_echo_only(pythonpath: str, delay_s: float) -> dict:
    from unified_agents.builtin.speech import tts, wav

    play = tempfile.mkdtemp(prefix="bench-streaming-")
    agents = []
    try:
        agents.append(Agent("StreamingTTSAgent", "streaming_tts", pythonpath, STREAM_TTS_SINK="file",
                            STREAM_TTS_FILE_DIR=play, STREAM_TTS_MAX_STREAMS=64))
        agents.append(Agent("StreamingInterruptHandler", "streaming_interrupt", pythonpath,
                            INTERRUPT_TTS_URL=f"http://127.0.0.1:{agents[0].port}",
                            INTERRUPT_MAX_WATCHES=256))
        return measure_echo_reference(agents[0], agents[1], tts, wav, delay_s)
    finally:
        for a in agents:
            a.stop()
        subprocess.run(["rm", "-rf", play], check=False)


def markdown(m: dict) -> list[str]:
    s = m["stt"]
    lines = ["## Streaming speech (StreamingTTSAgent, StreamingSpeechRecognition, "
             "StreamingInterruptHandler)", "",
             f"Agents as processes, over HTTP; load average {m['load_avg']:.1f}.", "",
             "| TTS engine | voice | pieces | words in the first | time to first audio ms "
             "(streaming_tts answer, wall) | first piece synthesised, CPU ms | whole sentence "
             "synthesised ms (wall) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for t in m["tts"]:
        lines.append(f"| {t['engine']} | {t['voice']} | {t['pieces']} | {t['first_words']} | "
                     f"{t['first_audio_ms']} | {t.get('first_piece_cpu_ms')} | "
                     f"{t['whole_ms']} |")
    lines += ["", f"The 20-word sentence: \"{TTS_SENTENCE}\".", "",
              f"Streaming recognition: {s['n']} evaluation utterances ({s['audio_s']} s, clean, "
              f"voices {', '.join(EVAL_VOICES)}) in {s['chunk_s']:g} s chunks.", "",
              "| answer per chunk p50 / p95 ms | final answer p50 / p95 ms | first partial at "
              "(fraction of the utterance, median) | WER live pass | WER final answer "
              "(STTService's pass) | WER whole file (in-process decoder) |",
              "| --- | --- | --- | --- | --- | --- |",
              f"| {s['chunk_ms_p50']} / {s['chunk_ms_p95']} | {s['final_ms_p50']} / "
              f"{s['final_ms_p95']} | {s['first_partial_at']} | {s['wer_streamed']:.1%} | "
              f"{s.get('wer_final', float('nan')):.1%} | {s['wer_whole']:.1%} |", ""]
    b = m["barge_in"]
    lines += [f"Barge-in: {b['rows'][0]['users']} users' utterances (median {b['user_dbfs']} "
              "dBFS) over a playback after 0.5 s of room noise; echo = the assistant's own "
              "voice at the microphone, that many dB under the user's voice (alone for 4 s: "
              "a barge-in there is false; and mixed under the user).", "",
              "| echo dB | users detected | false barge-ins on echo alone | detection delay "
              "p50 / max ms (audio) | stop call p50 ms | stop inside StreamingTTSAgent p50 ms |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in b["rows"]:
        echo = "no echo" if r["echo_db"] is None else f"{r['echo_db']}"
        false = "-" if r["false"] is None else f"{r['false']}/{r['users']}"
        lines.append(f"| {echo} | {r['detected']}/{r['users']} | {false} | "
                     f"{r['detect_delay_ms_p50']} / {r['detect_delay_ms_max']} | "
                     f"{r['stop_call_ms_p50']} | {r['stop_in_agent_ms_p50']} |")
    lines += echo_lines(m["echo_reference"]) if "echo_reference" in m else []
    lines += ["", "| agent | cold start (exec → /health) s | idle RSS MB |", "| --- | --- | --- |"]
    for name, a in m["agents"].items():
        lines.append(f"| {name} | {a['cold_start_s']} | {a['idle_rss_mb']} |")
    return lines + [""]


def echo_lines(e: dict) -> list[str]:
    lines = ["", f"Echo through a room ({e['delay_s'] * 1000:.0f} ms late, 0.3 s of reverberation), "
             f"the same {e['rows'][0]['users']} users (median {e['user_dbfs']} dBFS) starting 2 s into "
             "the playback, as heard (energy alone) and with the played audio sent as "
             "`reference_chunk_b64` (defaults: INTERRUPT_ECHO_MARGIN_DB 3, INTERRUPT_ECHO_TAIL_MS 600).",
             "", "| echo dB vs the user | reference | users detected | fired on the echo before the user "
             "| false barge-ins on 10 s of echo alone | detection delay p50 ms |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in e["rows"]:
        lines.append(f"| {r['echo_db']} | {'yes' if r['reference'] else 'no'} | "
                     f"{r['detected']}/{r['users']} | {r['early']}/{r['users']} | "
                     f"{r['false']}/{r['users']} | {r['detect_delay_ms_p50']} |")
    return lines


def run(c, runs, summary):
    """`make bench`: the same measurement inside the container, the installed package."""
    here = Path(__file__).resolve().parent
    for f in ("bench_speech.py", "bench_streaming.py", "sdk_common.py"):
        c.write_file(f"/root/{f}", (here / f).read_text())
    try:
        r = c.run(["python3", "/root/bench_streaming.py", "--json", "--installed"],
                  timeout=1200)
    finally:
        c.run(["rm", "-f", "/root/bench_speech.py", "/root/bench_streaming.py"])
    return markdown(json.loads(r.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="utterances for recognition (30)")
    ap.add_argument("--json", action="store_true", help="print the measurement as JSON")
    ap.add_argument("--echo", action="store_true",
                    help="only the barge-in rows with and without a reference (the echo)")
    ap.add_argument("--room-delay", type=float, default=ROOM_DELAY_S,
                    help=f"with --echo: speaker → microphone delay, s ({ROOM_DELAY_S})")
    ap.add_argument("--installed", action="store_true",
                    help="use the installed unified_agents (default: this checkout's agents/)")
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pythonpath = checkout_path(args.installed)
    if args.echo:
        e = measure_echo_only(pythonpath, args.room_delay)
        print(json.dumps(e) if args.json else "\n".join(echo_lines(e)))
        return 0
    m = measure(pythonpath, args.n)
    print(json.dumps(m) if args.json else "\n".join(markdown(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
