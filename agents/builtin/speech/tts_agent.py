"""TTSService: text to speech, offline, with espeak-ng or flite (docs/SPEECH.md).

    POST /task {"type": "tts", "text": "...", "voice"?: "slt" | "flite:slt" | "en-us+m3" |
                "espeak-ng:en-gb", "rate"?: 0.5-2.0, "pitch"?: 0.5-2.0}
      → {"audio_wav_b64", "sample_rate", "engine", "voice", "audio_s", "synth_s", "rtf"}

TTS_ENGINE (flite) picks the default engine, TTS_VOICE its default voice; the other engine
serves voices named with its prefix (or a name only it has) when it is installed too. rate
1.0 is the voice's normal speed (2.0 twice as fast); pitch 1.0 its normal pitch (espeak-ng
only). Text over TTS_MAX_CHARS (2000) is a 413; the synthesiser runs at most TTS_TIMEOUT_S.
"""
from __future__ import annotations

import base64
import shutil
import time

from unified_agents import Agent, ConfigError, HTTPError

from . import deps
from .tts import ENGINES, PACKAGES, EngineFailed, VoiceError


def _number(task: dict, name: str, lo: float, hi: float) -> float:
    v = task.get(name, 1.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise HTTPError(400, f'"{name}"={v!r}; allowed: a number {lo:g}-{hi:g} (1.0 = the '
                             "voice's normal)")
    return float(v)


class TTSService(Agent):
    version = "1.0.0"
    task_types: tuple | None = ("tts", "text_to_speech")  # (Agent's type: subclasses serve others)

    def on_start(self) -> None:
        env = self.config.env
        default = env.string("TTS_ENGINE", "flite")
        if default not in ENGINES:  # (env.choice upper-cases: engine names are lower-case)
            raise ConfigError(f"TTS_ENGINE={default!r} is invalid; allowed: "
                              f"{', '.join(ENGINES)}")
        self.max_chars = env.integer("TTS_MAX_CHARS", 2000, 1, 100_000)
        self.timeout_s = env.number("TTS_TIMEOUT_S", 30.0, 1.0, 600.0)
        deps.need_module(self.name, "numpy", "python3-numpy", "numpy for audio conversion")
        from . import wav  # numpy is there: checked just above

        self.wav = wav
        path = deps.need_binary(self.name, ENGINES[default].binary, PACKAGES[default])
        # the default engine must be there (exit 2 otherwise); the other one is a bonus
        self.engines = {default: ENGINES[default](path)}
        for name, cls in ENGINES.items():
            other = shutil.which(cls.binary) if name != default else None
            if other:
                self.engines[name] = cls(other)
        self.default = self.engines[default]
        voice = env.string("TTS_VOICE", self.default.default_voice)
        try:
            self.default_voice = self.default.check_voice(voice)
        except VoiceError as e:
            raise ConfigError(f"TTS_VOICE={voice!r}: {e}") from None
        self.log.info("synthesiser ready", engine=default, voice=self.default_voice,
                      engines=",".join(self.engines))

    def _pick(self, voice) -> tuple:
        """(engine, voice) for the request's "voice"."""
        if voice is None:
            return self.default, self.default_voice
        if not isinstance(voice, str) or not 1 <= len(voice) <= 64:
            raise HTTPError(400, f'"voice"={voice!r}; allowed: a voice name of 1-64 characters')
        name, sep, rest = voice.partition(":")
        try:
            if sep:
                if name not in self.engines:
                    raise HTTPError(400, f'"voice"={voice!r}: engine {name!r} is not installed; '
                                         f"allowed: {', '.join(self.engines)}")
                return self.engines[name], self.engines[name].check_voice(rest)
            errors = []
            for engine in sorted(self.engines.values(), key=lambda e: e is not self.default):
                try:
                    return engine, engine.check_voice(voice)
                except VoiceError as e:
                    errors.append(str(e))
            raise HTTPError(400, f'"voice"={voice!r}: ' + "; ".join(errors))
        except VoiceError as e:
            raise HTTPError(400, f'"voice"={voice!r}: {e}') from None

    def handle_task(self, task: dict):
        text = task.get("text")
        if not isinstance(text, str):
            raise HTTPError(400, '"text" is missing or not a string; allowed: 1-'
                                 f"{self.max_chars} characters")
        if len(text) > self.max_chars:
            raise HTTPError(413, f'"text" has {len(text)} characters; allowed: at most '
                                 f"{self.max_chars} (TTS_MAX_CHARS)")
        # control characters would reach the synthesiser as commands or noise: spaces
        text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
        if not text:
            raise HTTPError(400, '"text" is empty; allowed: 1-'
                                 f"{self.max_chars} characters of text")
        rate, pitch = _number(task, "rate", 0.5, 2.0), _number(task, "pitch", 0.5, 2.0)
        engine, voice = self._pick(task.get("voice"))
        t0 = time.perf_counter()
        try:
            raw = engine.synthesize(text, voice, rate, pitch, self.timeout_s)
            audio = self.wav.read(raw)
        except VoiceError as e:
            raise HTTPError(400, f'{engine.name}: {e}') from None
        except EngineFailed as e:
            raise HTTPError(e.status, str(e)) from None
        except self.wav.WavError as e:  # the synthesiser wrote no usable audio
            raise HTTPError(502, f"{engine.name} wrote no usable WAV: {e.message}") from None
        pcm = self.wav.to_int16(audio)
        synth_s = time.perf_counter() - t0
        return {"audio_wav_b64": base64.b64encode(self.wav.write(pcm, audio.rate)).decode(),
                "sample_rate": audio.rate, "engine": engine.name, "voice": voice,
                "audio_s": round(audio.seconds, 3), "synth_s": round(synth_s, 4),
                "rtf": round(synth_s / audio.seconds, 4)}

    def health_checks(self) -> dict:
        return {"engine": bool(self.default.voices)}

    def health_info(self) -> dict:
        return {"engine": self.default.name, "voice": self.default_voice,
                "engine_version": self.default.version, "model": f"{self.default.name} voice "
                f"{self.default_voice}",
                "engines": {e.name: {"version": e.version, "voices": len(e.voices)}
                            for e in self.engines.values()},
                "max_chars": self.max_chars}

