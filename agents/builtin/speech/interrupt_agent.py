"""StreamingInterruptHandler: barge-in. While the assistant talks, the microphone's audio is
sent here chunk by chunk with the id of the playback to stop; when the user starts speaking
the handler stops that playback through StreamingTTSAgent (docs/SPEECH.md, "Streaming").

    POST /task {"type": "interrupt", "playback_id", "audio_chunk_b64": "<base64 of raw signed
                16-bit little-endian mono PCM at 16 kHz>", "reference_chunk_b64"?: <the same
                format: what the speaker played over those samples> | "reference": "playback"}
      → {"playback_id", "barge_in": bool, "audio_s", "onset_s", "detected_s", "level_dbfs",
         "echo_gain_db" (null without a reference, or while it is learnt),
         "stop": <StreamingTTSAgent's stop_playback answer> | null, "stop_call_s"}

Each playback_id gets its own detector (energy_vad.py) on its first chunk; chunks are in order. On
detection the handler sends {"type": "stop_playback", "playback_id"} to INTERRUPT_TTS_URL
(RequestCoordinator by default, which routes it to StreamingTTSAgent) once; later chunks of
the same playback answer "barge_in": true without calling again. A failed stop call is a 502
and is tried again on the next chunk.

With "reference_chunk_b64" (on every chunk of a playback, as many samples as the microphone's)
the detector also discounts the echo of what was played: speech must be INTERRUPT_ECHO_MARGIN_DB
above the echo the reference explains, over INTERRUPT_ECHO_TAIL_MS of delay and reverberation
(energy_vad.py says how; docs/SPEECH.md measures it). "reference": "playback" takes the
reference from StreamingTTSAgent itself ({"type": "playback_heard"} through
INTERRUPT_TTS_URL): what that playback sounded over the chunk's length, asked as it arrives.

Settings: INTERRUPT_THRESHOLD_DBFS (-40), INTERRUPT_MARGIN_DB (10), INTERRUPT_MIN_SPEECH_MS
(150), INTERRUPT_ECHO_MARGIN_DB (3), INTERRUPT_ECHO_TAIL_MS (600), INTERRUPT_TTS_URL
(http://127.0.0.1:7201), INTERRUPT_MAX_WATCHES (16), INTERRUPT_IDLE_S (30: a watch without
chunks for that long is forgotten).
"""
from __future__ import annotations

import base64
import threading
import time

from unified_agents import Agent, HTTPError

from .. import deps
from . import pcm
from ..sessions import SessionTable

MAX_CHUNK_BYTES = 10 * 16000 * 2


class Watch:
    def __init__(self, vad):
        self.vad = vad
        self.lock = threading.Lock()
        self.stop: dict | None = None
        self.stop_call_s: float | None = None


class StreamingInterruptHandler(Agent):
    version = "1.0.0"
    task_types = ("interrupt",)

    def on_start(self) -> None:
        env = self.config.env
        deps.need_installed(self.name, "numpy", "python3-numpy", "numpy for the voice detector")
        self.vad = deps.Lazy(f"{__package__}.energy_vad")
        self.threshold = env.number("INTERRUPT_THRESHOLD_DBFS", -40.0, -90.0, 0.0)
        self.margin = env.number("INTERRUPT_MARGIN_DB", 10.0, 0.0, 60.0)
        self.min_speech_ms = env.integer("INTERRUPT_MIN_SPEECH_MS", 150, 10, 5000)
        self.echo_margin = env.number("INTERRUPT_ECHO_MARGIN_DB", 3.0, 0.0, 40.0)
        self.echo_tail_ms = env.integer("INTERRUPT_ECHO_TAIL_MS", 600, 10, 2000)
        url = env.string("INTERRUPT_TTS_URL", "http://127.0.0.1:7201")
        from unified_agents.client import Client

        self.tts = Client(url, timeout=5.0)
        self.tts_url = url
        self.watches = SessionTable(
            "watched playback", env.integer("INTERRUPT_MAX_WATCHES", 16, 1, 1024),
            env.number("INTERRUPT_IDLE_S", 30.0, 1.0, 86400.0), 3600.0,
            setting="INTERRUPT_MAX_WATCHES")
        self.barge_ins = 0
        self.max_body_bytes = 2 * MAX_CHUNK_BYTES * 4 // 3 + 65536  # microphone + reference

    def handle_task(self, task: dict):
        pid = task.get("playback_id")
        if not isinstance(pid, str) or not 1 <= len(pid) <= 64:
            raise HTTPError(400, f'"playback_id"={pid!r}; allowed: the id StreamingTTSAgent '
                                 "gave the playback to watch")
        raw = pcm.chunk(task, MAX_CHUNK_BYTES, "10 s, fixed")
        ref_raw = self._reference(task, pid, len(raw))
        if ref_raw is not None and len(ref_raw) != len(raw):
            raise HTTPError(400, f'"reference_chunk_b64" holds {len(ref_raw) // 2} samples and '
                                 f'"audio_chunk_b64" {len(raw) // 2}; allowed: as many (what the '
                                 "speaker played over the microphone's samples)")
        try:
            watch = self.watches.get(pid, "playback_id")
        except HTTPError as e:
            if e.status != 404:
                raise
            watch = Watch(self.vad.EnergyVAD(self.threshold, self.margin, self.min_speech_ms,
                                             self.echo_margin, self.echo_tail_ms))
            self.watches.add(watch, pid)
        import numpy as np

        samples = np.frombuffer(raw, "<i2")
        ref = None if ref_raw is None else np.frombuffer(ref_raw, "<i2")
        with watch.lock:
            if watch.vad.referenced is not None and watch.vad.referenced != (ref is not None):
                how = "with" if watch.vad.referenced else "without"
                raise HTTPError(400, f"playback {pid} is watched {how} a reference "
                                     '("reference_chunk_b64" or "reference") since its first '
                                     "chunk; allowed: a reference on every chunk of a playback "
                                     "or on none")
            detected = watch.vad.feed(samples, ref)
            if detected and watch.stop is None:
                self._stop(pid, watch)
            v = watch.vad
            level = float(np.sqrt(np.mean(np.square(samples / 32768.0)))) if len(raw) else 0.0
            return {"playback_id": pid, "barge_in": detected,
                    "audio_s": round(v.frames / 100, 2),
                    "onset_s": None if v.onset_frame is None else v.onset_frame / 100,
                    "detected_s": None if v.detected_frame is None else v.detected_frame / 100,
                    "level_dbfs": round(20 * np.log10(level), 1) if level > 0 else -120.0,
                    "echo_gain_db": None if v.echo_gain is None or not v.referenced
                    else round(v.echo_gain, 1),
                    "stop": watch.stop, "stop_call_s": watch.stop_call_s}

    def _reference(self, task: dict, pid: str, nbytes: int) -> bytes | None:
        """What the speaker played over the chunk's samples: the client's reference_chunk_b64,
        or with "reference": "playback" what StreamingTTSAgent's playback sounded over the
        last moments, as long as the chunk (asked right as it arrives: the microphone took
        it over that time). None: no reference."""
        how = task.get("reference")
        if how is None:
            return (pcm.chunk(task, MAX_CHUNK_BYTES, "10 s, fixed", "reference_chunk_b64")
                    if task.get("reference_chunk_b64") is not None else None)
        if how != "playback" or task.get("reference_chunk_b64") is not None:
            raise HTTPError(400, f'"reference"={how!r}; allowed: "playback" (what '
                                 'StreamingTTSAgent played), and then no "reference_chunk_b64"')
        if not nbytes:
            return b""
        from unified_agents.client import AgentCallError

        try:
            out = self.tts.post_json("/task", {"type": "playback_heard", "playback_id": pid,
                                               "seconds": nbytes / 2 / pcm.RATE})
        except AgentCallError as e:
            if e.status == 404:  # the playback is gone: nothing plays
                return bytes(nbytes)
            detail = e.body.get("error") if isinstance(e.body, dict) else e
            raise HTTPError(502, f"asking {self.tts_url} what playback {pid} played failed "
                                 f"({e.status or 'no answer'}: {detail})") from None
        got = out.get("result", out)
        import numpy as np

        x = np.frombuffer(base64.b64decode(got["audio_b64"]), "<i2").astype(np.float64)
        from .wav import resample

        y = np.zeros(nbytes // 2)
        r = resample(x, int(got["sample_rate"]), pcm.RATE)[:len(y)]
        y[len(y) - len(r):] = r  # a sample short by rounding: the oldest is the silent one
        return np.clip(np.round(y), -32768, 32767).astype("<i2").tobytes()

    def _stop(self, pid: str, watch: Watch) -> None:
        from unified_agents.client import AgentCallError

        t0 = time.perf_counter()
        try:
            out = self.tts.post_json("/task", {"type": "stop_playback", "playback_id": pid})
        except AgentCallError as e:
            detail = e.body.get("error") if isinstance(e.body, dict) else e
            if e.status == 404:  # that playback is gone (ended long ago): nothing to stop
                watch.stop = {"playback_id": pid, "stopped": False, "error": detail}
                return
            raise HTTPError(502, f"speech detected but stopping playback {pid} through "
                                 f"{self.tts_url} failed ({e.status or 'no answer'}: {detail});"
                                 " the next chunk tries again") from None
        watch.stop_call_s = round(time.perf_counter() - t0, 4)
        watch.stop = out.get("result", out) if isinstance(out, dict) else out
        self.barge_ins += 1
        self.log.info("barge-in: playback stopped", playback_id=pid,
                      onset_s=watch.vad.onset_frame / 100, stop_call_s=watch.stop_call_s)

    def health_info(self) -> dict:
        return {"engine": "energy-vad", "model": f"energy > max({self.threshold:g} dBFS, noise "
                f"floor + {self.margin:g} dB) for {self.min_speech_ms} ms; with a reference, also "
                f"> echo + {self.echo_margin:g} dB over a {self.echo_tail_ms} ms tail",
                "engine_version": self.version, "stop_via": self.tts_url,
                "watches": len(self.watches), "barge_ins": self.barge_ins}
