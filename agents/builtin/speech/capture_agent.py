"""AudioCapture: N seconds of audio from the catalog's source (docs/SPEECH.md, "AudioCapture").

    POST /task {"type": "audio_capture", "seconds": 0 < N <= AUDIO_MAX_CAPTURE_S}
      → {"audio_wav_b64", "sample_rate", "channels": 1, "audio_s", "source", "level_dbfs",
         "warnings"}

AUDIO_SOURCE (alsa:default) names the source (capture.py): an ALSA device recorded with
arecord, a WAV file, or an HTTP WAV stream. The answer is mono 16-bit PCM at the source's rate
(channels averaged). One capture at a time: an ALSA device opens once, and two captures of one
microphone would each get half the audio. A missing arecord for an ALSA source is a failed
start naming alsa-utils (exit 2); a device that is absent or busy is a 503 naming it, and the
agent stays up (a USB microphone may be plugged in later).
"""
from __future__ import annotations

import base64
import os
import threading

from unified_agents import Agent, ConfigError, HTTPError

from .. import deps
from . import pcm
from .capture import Alsa, CaptureError, File, Http, parse_source


class AudioCapture(Agent):
    version = "1.0.0"
    task_types = ("audio_capture",)

    def on_start(self) -> None:
        env = self.config.env
        deps.need_installed(self.name, "numpy", "python3-numpy", "numpy for audio conversion")
        self.wav, self.prep = deps.Lazy(f"{__package__}.wav"), deps.Lazy(f"{__package__}.prep")
        spec = env.string("AUDIO_SOURCE", "alsa:default")
        try:
            kind, where = parse_source(spec)
        except ValueError as e:
            raise ConfigError(f"AUDIO_SOURCE={e}") from None
        self.max_s = env.number("AUDIO_MAX_CAPTURE_S", 30.0, 0.1, 600.0)
        self.slack_s = env.number("AUDIO_TIMEOUT_S", 10.0, 1.0, 120.0)
        self.spec = spec
        self.source: Alsa | File | Http
        if kind == "alsa":
            arecord = deps.need_binary(self.name, "arecord", "alsa-utils")
            self.source = Alsa(where, arecord, env.integer("AUDIO_RATE", 16000, pcm.MIN_RATE,
                                                           pcm.MAX_RATE),
                               env.integer("AUDIO_CHANNELS", 1, 1, pcm.MAX_CHANNELS))
        elif kind == "file":
            if not os.path.isfile(where):
                raise ConfigError(f"AUDIO_SOURCE={spec!r}: no such file; allowed: a readable "
                                  "WAV file")
            self.source = File(where)
        else:
            self.source = Http(where)
        self._lock = threading.Lock()
        self.log.info("audio source", source=spec, kind=kind)

    def handle_task(self, task: dict):
        n = task.get("seconds")
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not 0 < n <= self.max_s:
            raise HTTPError(400, f'"seconds"={n!r}; allowed: a number of seconds above 0 and '
                                 f"at most {self.max_s:g} (AUDIO_MAX_CAPTURE_S)")
        with self._lock:
            try:
                raw = self.source.capture(float(n), self.slack_s)
            except CaptureError as e:
                raise HTTPError(e.status, e.message) from None
        try:
            audio = self.wav.read(raw)
        except self.wav.WavError as e:
            if "0 samples" in e.message:  # a file or stream with a header and nothing after
                raise HTTPError(503, f"{self.spec} gave no audio (0 samples)") from None
            raise HTTPError(502, f"{self.spec} gave no usable WAV: {e.message}") from None
        pcm = self.wav.to_int16(audio)
        warnings = []
        if audio.seconds < n - 0.01:
            warnings.append(f"the source gave {audio.seconds:.2f} s of the {n:g} s asked for "
                            "(the file or stream ended)")
        level = self.prep.dbfs(pcm / 32768.0)
        if level < self.prep.SILENT_DBFS:
            warnings.append(f"the audio is silent ({level:.0f} dBFS)")
        return {"audio_wav_b64": base64.b64encode(self.wav.write(pcm, audio.rate)).decode(),
                "sample_rate": audio.rate, "channels": 1, "audio_s": round(audio.seconds, 3),
                "source": self.spec, "input": {"channels": audio.channels,
                                               "format": audio.source_format},
                "level_dbfs": round(level, 1), "warnings": warnings}

    def health_checks(self) -> dict:
        if isinstance(self.source, File):
            return {"source": os.access(self.source.path, os.R_OK)}
        return {}

    def health_info(self) -> dict:
        engine = {"alsa": "arecord", "file": "wav file", "http": "http wav stream"}
        return {"engine": engine[self.source.kind], "engine_version": self.source.version
                or "n/a", "model": "n/a", "source": self.spec, "max_capture_s": self.max_s}
