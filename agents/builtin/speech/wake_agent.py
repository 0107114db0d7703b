"""WakeWordDetector: wake phrase spotting, offline, with PocketSphinx's keyphrase search
(WAKE_ENGINE=pocketsphinx, any phrase of dictionary words) or microWakeWord's models
(WAKE_ENGINE=microwakeword: "hey jarvis", "okay nabu", "alexa", "hey mycroft"; wake_micro.py,
PyPI pymicro-wakeword) (docs/SPEECH.md, "WakeWordDetector").

    POST /task {"type": "wake_word", "audio_wav_b64": "<base64 WAV>"}
      → {"detected", "phrase", "at_s", "end_s", "score", "detections": [{"phrase", "at_s",
         "end_s", "score"}, ...], "engine", "model", "audio_s", "rtf", "processing_s",
         "phrases", "warnings", ...}

The phrases and their thresholds come from the catalog (WAKE_PHRASES, WAKE_THRESHOLD in the
agent's `environment:`); a phrase word the pronunciation dictionary lacks fails the start with
exit 2 naming the word and the setting. "phrase"/"at_s"/"score" describe the first detection
(where the user started speaking to the assistant: the command follows its "end_s");
"detections" lists every one. Bad audio is a 400 (413 above WAKE_MAX_AUDIO_S), as for
STTService; silence is not an error: nothing is detected and "warnings" says it is silent.

Wyoming (docs/SPEECH.md, "Wyoming"): WYOMING_PORT set → the agent also serves Wyoming's
"wake" domain there (describe, detect + a streamed microphone → detection / not-detected;
wyoming_services.WakeHandler), for Home Assistant's Wyoming integration.

The decoder loads in on_start(), before READY=1: the agent is optional (socket-activated,
exits when idle), so its cold activation includes the load, measured in docs/SPEECH.md.
"""
from __future__ import annotations

import time

from unified_agents import Agent, ConfigError

from .. import deps
from .stt import DEFAULT_MODEL_DIR, real_time_factor
from .stt_agent import BIGGEST_BYTES_PER_S, decode_b64_field, level_warnings, read_audio
from .wake import (DEFAULT_PHRASES, DEFAULT_THRESHOLD, MAX_THRESHOLD, MIN_THRESHOLD,
                   KeyphraseSpotter, PhrasesError, UnknownWords, parse_phrases)


ENGINES = ("pocketsphinx", "microwakeword")


class WakeWordDetector(Agent):
    version = "1.0.0"
    task_types = ("wake_word",)
    wyoming = None  # the Wyoming server (WYOMING_PORT), or None

    def on_start(self) -> None:
        env = self.config.env
        self.max_audio_s = env.number("WAKE_MAX_AUDIO_S", 60.0, 0.1, 3600.0)
        self.max_body_bytes = int(self.max_audio_s * BIGGEST_BYTES_PER_S * 4 / 3) + 65536
        engine = env.string("WAKE_ENGINE", "pocketsphinx")
        if engine not in ENGINES:
            raise ConfigError(f"WAKE_ENGINE={engine!r} is invalid; allowed: "
                              + ", ".join(ENGINES))
        deps.need_module(self.name, "numpy", "python3-numpy", "numpy for audio conversion")
        from . import wav  # numpy is there: checked just above

        self.wav = wav
        self.engine = (self._microwakeword if engine == "microwakeword" else
                       self._pocketsphinx)(env)
        self.log.info("wake word engine loaded", engine=self.engine.name,
                      model=self.engine.model_dir,
                      phrases=", ".join(p for p, _ in self.engine.phrases),
                      load_s=round(self.engine.load_s or 0.0, 3))
        from .wyoming import start_server
        from .wyoming_services import WakeHandler

        self.wyoming = start_server(self, [WakeHandler(self)])

    def _pocketsphinx(self, env) -> KeyphraseSpotter:
        default_thr = env.number("WAKE_THRESHOLD", DEFAULT_THRESHOLD, MIN_THRESHOLD,
                                 MAX_THRESHOLD)
        raw = env.string("WAKE_PHRASES", DEFAULT_PHRASES)
        try:
            phrases = parse_phrases(raw, default_thr)
        except PhrasesError as e:
            raise ConfigError(f"WAKE_PHRASES={raw!r} is invalid: {e}") from None
        model_dir = env.string("WAKE_MODEL_DIR", DEFAULT_MODEL_DIR)
        module = deps.need_module(self.name, "pocketsphinx", "python3-pocketsphinx",
                                  "the PocketSphinx speech recogniser")
        engine = KeyphraseSpotter(module, phrases, model_dir)
        for f in engine.files():
            deps.need_file(self.name, f, "pocketsphinx-en-us", "WAKE_MODEL_DIR")
        try:
            engine.load()
        except UnknownWords as e:
            raise ConfigError(f"WAKE_PHRASES={raw!r} is invalid: the word(s) {e}; allowed: "
                              "phrases of words in that dictionary") from None
        return engine

    def _microwakeword(self, env):
        from . import wake_micro

        try:
            module = wake_micro.import_module(env.string("WAKE_VENDOR_DIR",
                                                         wake_micro.VENDOR_DIR))
        except (ImportError, OSError) as e:
            raise ConfigError(f"{self.name} needs microWakeWord (WAKE_ENGINE=microwakeword; "
                              f"Python module 'pymicro_wakeword': {e}); install the package "
                              f"{wake_micro.PACKAGE} (amd64, built by make deb) or install it: "
                              f"{wake_micro.PIP_HINT} --target {wake_micro.VENDOR_DIR}; or set "
                              "WAKE_ENGINE=pocketsphinx") from None
        names = wake_micro.model_names(module)
        raw = env.string("WAKE_PHRASES", "hey jarvis")
        phrases = [" ".join(p.lower().split()) for p in raw.split(",")]
        bad = [p for p in phrases if p not in names]
        if bad or not phrases:
            raise ConfigError(f"WAKE_PHRASES={raw!r} is invalid for WAKE_ENGINE=microwakeword: "
                              f"{', '.join(map(repr, bad)) or 'no phrase'} is not a model it "
                              f"ships; allowed: comma-separated, of {', '.join(sorted(names))}")
        cutoff = env.string("WAKE_CUTOFF", "")
        value = None
        if cutoff:
            try:
                value = float(cutoff)
            except ValueError:
                value = -1.0
            if not 0.01 <= value <= 0.999:
                raise ConfigError(f"WAKE_CUTOFF={cutoff!r} is invalid; allowed: a probability "
                                  "0.01-0.999, or empty for each model's own")
        engine = wake_micro.MicroWakeWordSpotter(module, [(p, value) for p in
                                                          dict.fromkeys(phrases)])
        engine.load()
        return engine

    def on_stop(self) -> None:
        if self.wyoming is not None:
            self.wyoming.close()

    def handle_task(self, task: dict):
        data = decode_b64_field(task, "audio_wav_b64")
        t0 = time.perf_counter()
        audio = read_audio(self.wav, data, self.max_audio_s, "WAKE_MAX_AUDIO_S")
        pcm, clipped = self.wav.to_mono16k(audio)
        found = self.engine.spot(pcm)["detections"]
        processing_s = time.perf_counter() - t0
        level, warnings = level_warnings(pcm, clipped)
        first = found[0] if found else {}
        return {"detected": bool(found), "phrase": first.get("phrase"),
                "at_s": first.get("at_s"), "end_s": first.get("end_s"),
                "score": first.get("score"), "detections": found,
                "engine": self.engine.name, "model": self.engine.model_dir,
                "audio_s": round(audio.seconds, 3),
                "rtf": real_time_factor(processing_s, audio.seconds),
                "processing_s": round(processing_s, 4), "phrases": self.phrases(),
                "input": {"sample_rate": audio.rate, "channels": audio.channels,
                          "format": audio.source_format},
                "level_dbfs": round(level, 1), "warnings": warnings}

    def phrases(self) -> list[dict]:
        return [{"phrase": p, "threshold": t} for p, t in self.engine.phrases]

    def health_checks(self) -> dict:
        return {"engine": self.engine.load_s is not None}

    def health_info(self) -> dict:
        return {"engine": self.engine.name, "model": self.engine.model_dir,
                "engine_version": self.engine.version, "phrases": self.phrases(),
                "model_load_s": round(self.engine.load_s or 0.0, 3),
                "max_audio_s": self.max_audio_s,
                **({"wyoming": self.wyoming.stats()} if self.wyoming is not None else {})}
