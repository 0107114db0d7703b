"""TTSService: text to speech, offline, with espeak-ng or flite (docs/SPEECH.md).

    POST /task {"type": "tts", "text": "...", "voice"?: "slt" | "flite:slt" | "en-us+m3" |
                "espeak-ng:en-gb", "rate"?: 0.5-2.0, "pitch"?: 0.5-2.0}
      → {"audio_wav_b64", "sample_rate", "engine", "voice", "audio_s", "synth_s", "rtf"}

TTS_ENGINE (flite) picks the default engine, TTS_VOICE its default voice; the other engine
serves voices named with its prefix (or a name only it has) when it is installed too. rate
1.0 is the voice's normal speed (2.0 twice as fast); pitch 1.0 its normal pitch (espeak-ng
only). Text over TTS_MAX_CHARS (2000) is a 413; the synthesiser runs at most TTS_TIMEOUT_S.

Wyoming (docs/SPEECH.md, "Wyoming"): WYOMING_PORT set → the agent also serves Wyoming's
describe (the installed voices) and synthesize there (wyoming_services.TtsHandler, through the
same checks as a task); TTS_ENGINE=wyoming://HOST:PORT → an operator's Wyoming service (e.g.
Piper) synthesises instead (wyoming_client.RemoteTTS; "rate"/"pitch" then only 1.0).
"""
from __future__ import annotations

import base64
import shutil
import time

from unified_agents import Agent, ConfigError, HTTPError

from .. import deps
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
    wyoming = None  # the Wyoming server (WYOMING_PORT), or None
    remote = None   # TTS_ENGINE=wyoming://…: wyoming_client.RemoteTTS
    _voices: list | None = None  # the Wyoming info's voices, listed once

    def on_start(self) -> None:
        env = self.config.env
        default = env.string("TTS_ENGINE", "flite")
        self.max_chars = env.integer("TTS_MAX_CHARS", 2000, 1, 100_000)
        self.timeout_s = env.number("TTS_TIMEOUT_S", 30.0, 1.0, 600.0)
        deps.need_installed(self.name, "numpy", "python3-numpy", "numpy for audio conversion")
        self.wav = deps.Lazy(f"{__package__}.wav")
        if default.startswith("wyoming:"):  # an operator's Wyoming service (wyoming_client.py)
            from .wyoming_client import RemoteTTS

            self.remote = RemoteTTS(self.name, default, self.timeout_s, self.log)
            self.default_voice = env.string("TTS_VOICE")  # None: the service's own default
        else:
            self._local_engines(env, default)
        from .wyoming import start_server
        from .wyoming_services import TtsHandler

        self.wyoming = start_server(self, [TtsHandler(self)])

    def _local_engines(self, env, default: str) -> None:
        if default not in ENGINES:  # (env.choice upper-cases: engine names are lower-case)
            raise ConfigError(f"TTS_ENGINE={default!r} is invalid; allowed: "
                              f"{', '.join(ENGINES)}, or wyoming://HOST:PORT (an operator's "
                              "Wyoming speech service)")
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

    def on_stop(self) -> None:
        if self.wyoming is not None:
            self.wyoming.close()

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
        text = self._text(task.get("text"))
        rate, pitch = _number(task, "rate", 0.5, 2.0), _number(task, "pitch", 0.5, 2.0)
        t0 = time.perf_counter()
        pcm, sample_rate, engine, voice = self._synthesize(text, task.get("voice"), rate, pitch)
        synth_s = time.perf_counter() - t0
        audio_s = len(pcm) / sample_rate
        return {"audio_wav_b64": base64.b64encode(self.wav.write(pcm, sample_rate)).decode(),
                "sample_rate": sample_rate, "engine": engine, "voice": voice,
                "audio_s": round(audio_s, 3), "synth_s": round(synth_s, 4),
                "rtf": round(synth_s / audio_s, 4)}

    def _text(self, text) -> str:
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
        return text

    def _synthesize(self, text: str, voice, rate: float, pitch: float) -> tuple:
        """(int16 mono samples, sample rate, engine name, voice) of checked text."""
        if self.remote is not None:
            if rate != 1.0 or pitch != 1.0:
                raise HTTPError(400, f'"rate" and "pitch" need a local engine; this agent uses '
                                     f"{self.remote.client.where()}, and Wyoming carries "
                                     "neither; allowed: 1.0")
            if voice is not None and (not isinstance(voice, str) or not 1 <= len(voice) <= 64):
                raise HTTPError(400, f'"voice"={voice!r}; allowed: a voice name of 1-64 '
                                     "characters")
            voice = voice or self.default_voice
            raw = self.remote.synthesize(text, voice)
            engine_name, voice = self.remote.name, voice or self.remote.model
        else:
            engine, voice = self._pick(voice)
            try:
                raw = engine.synthesize(text, voice, rate, pitch, self.timeout_s)
            except VoiceError as e:
                raise HTTPError(400, f'{engine.name}: {e}') from None
            except EngineFailed as e:
                raise HTTPError(e.status, str(e)) from None
            engine_name = engine.name
        try:
            audio = self.wav.read(raw)
        except self.wav.WavError as e:  # the synthesiser wrote no usable audio
            raise HTTPError(502, f"{engine_name} wrote no usable WAV: {e.message}") from None
        return self.wav.to_int16(audio), audio.rate, engine_name, voice

    # ------------------------------------------------------------- Wyoming (TtsHandler)
    def synthesize_pcm(self, text, voice: str | None) -> tuple[bytes, int]:
        pcm, rate, _, _ = self._synthesize(self._text(text), voice, 1.0, 1.0)
        return pcm.tobytes(), rate

    def wyoming_voices(self) -> list[dict]:
        """The voices of this agent's Wyoming info: the installed ones, by the names "voice"
        takes (flite voice names, espeak-ng languages), or a remote engine's own list."""
        if self.remote is not None:
            return self.remote.voices()
        if self._voices is None:  # the installed voices do not change while we run
            from .wyoming import artifact

            self._voices = [artifact(name, f"{e.name} voice {name}", e.version, by=e.name,
                                     url=ENGINE_URLS[e.name], languages=[lang])
                            for e in sorted(self.engines.values(),
                                            key=lambda e: e is not self.default)
                            for name, lang in voice_languages(e)]
        return self._voices

    def voice_for_language(self, lang) -> str:
        """The voice for a Wyoming request that names only a language (the default voice if
        it speaks it): "en" matches en-us, "en_US" matches en-us."""
        def norm(x) -> str:
            return str(x).lower().replace("_", "-")

        want = norm(lang)
        voices = self.wyoming_voices()
        fits = [v["name"] for v in voices
                if any(norm(la) == want or norm(la).startswith(want + "-") for la in
                       v.get("languages") or [])]
        if not fits:
            raise HTTPError(400, f"no voice speaks {lang!r}; allowed: "
                                 + ", ".join(sorted({la for v in voices
                                                     for la in v.get("languages") or []})))
        return self.default_voice if self.default_voice in fits else fits[0]

    def health_checks(self) -> dict:
        if self.remote is not None:
            return {"engine": self.remote.check()}
        return {"engine": bool(self.default.voices)}

    def health_info(self) -> dict:
        if self.remote is not None:
            r = self.remote
            info = {"engine": r.name, "voice": self.default_voice or r.model,
                    "engine_version": r.version, "model": r.model_dir, "engines": {},
                    "max_chars": self.max_chars}
        else:
            info = {"engine": self.default.name, "voice": self.default_voice,
                    "engine_version": self.default.version, "model": f"{self.default.name} "
                    f"voice {self.default_voice}",
                    "engines": {e.name: {"version": e.version, "voices": len(e.voices)}
                                for e in self.engines.values()},
                    "max_chars": self.max_chars}
        if self.wyoming is not None:
            info["wyoming"] = self.wyoming.stats()
        return info


ENGINE_URLS = {"flite": "http://www.festvox.org/flite/",
               "espeak-ng": "https://github.com/espeak-ng/espeak-ng"}


def voice_languages(engine) -> list[tuple[str, str]]:
    """(voice name, language) of each installed voice: flite's voices are CMU's US English
    ones; espeak-ng has one voice per language, named by it (`espeak-ng --voices`)."""
    if engine.name == "flite":
        return [(v, "en-us") for v in sorted(engine.voices)]
    seen: dict[str, str] = {}
    for line in engine._output(["--voices"]).splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            seen.setdefault(cols[1], cols[1])
    return sorted(seen.items())
