"""STTService: speech to text, offline, with PocketSphinx (docs/SPEECH.md).

    POST /task {"type": "stt", "audio_wav_b64": "<base64 WAV>", "phrases"?: ["turn on the
                light", ...]}
      → {"text", "confidence", "words": [{"word", "start_s", "end_s", "confidence"}],
         "engine", "model", "audio_s", "rtf", "processing_s", "search", "warnings"}

Any WAV of 8-48 kHz, 1-8 channels, PCM or float is converted to 16 kHz mono first (wav.py).
Before PocketSphinx hears it, steady background noise is reduced (denoise.py, STT_DENOISE=
wiener, the default for that engine; a task may say "denoise": "none"). Bad audio is a 400
naming what is wrong and what is allowed; audio longer than STT_MAX_AUDIO_S
(60 s) is a 413 with the limit. Silence and clipping are not errors: the answer says so in
"warnings" (an empty transcript of silence is the right answer).

The decoder is loaded in on_start(), before READY=1: the agent is required (started at boot),
a broken model fails the start with exit 2 instead of the first task with a 500, and the first
task is not 0.6 s slower than the rest (cold activation measured in docs/SPEECH.md).

Wyoming (docs/SPEECH.md, "Wyoming"): WYOMING_PORT set → the agent also serves Wyoming's
describe and transcribe there (wyoming_services.AsrHandler, through recognise() like a task);
STT_ENGINE=wyoming://HOST:PORT → an operator's Wyoming service recognises instead of
PocketSphinx (wyoming_client.RemoteSTT; no word times, "confidence" null, no "phrases").
"""
from __future__ import annotations

import base64
import binascii
import math
import time

from unified_agents import Agent, ConfigError, HTTPError

from .. import deps
from .stt import DEFAULT_MODEL_DIR, PhraseError, Pocketsphinx, check_phrases, real_time_factor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .wyoming_client import RemoteSTT

BIGGEST_BYTES_PER_S = 48000 * 2 * 4
SILENCE_DBFS = -60.0  # below this RMS level the audio holds nothing to recognise
DENOISE = ("wiener", "none")


def decode_b64_field(task: dict, name: str) -> bytes:
    v = task.get(name)
    if not isinstance(v, str) or not v:
        raise HTTPError(400, f'"{name}" is missing or not a string; allowed: a WAV file in '
                             "base64")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError) as e:
        raise HTTPError(400, f'"{name}" is not valid base64 ({e}); allowed: a WAV file in '
                             "standard base64") from None


def denoise_option(task: dict, default: str) -> str:
    """The task's "denoise" (STTService, FusedAudioPreprocessor): a 400 naming the choices."""
    denoise = task.get("denoise", default)
    if denoise not in DENOISE:
        raise HTTPError(400, f'"denoise"={denoise!r}; allowed: {", ".join(DENOISE)}')
    return denoise


def read_audio(wav, data: bytes, max_audio_s: float, setting: str):
    """`wav.read` for a task: a WavError becomes its 400/413, the 413 naming the setting
    that sets the limit (STT_MAX_AUDIO_S, WAKE_MAX_AUDIO_S, ...)."""
    try:
        return wav.read(data, max_audio_s)
    except wav.WavError as e:
        raise HTTPError(e.status, e.message + (f" ({setting})" if e.status == 413 else "")) from None


class STTService(Agent):
    version = "1.0.0"
    task_types = ("stt", "speech_to_text")
    wyoming = None  # the Wyoming server (WYOMING_PORT), or None
    engine: Pocketsphinx | RemoteSTT

    def on_start(self) -> None:
        env = self.config.env
        self.max_audio_s = env.number("STT_MAX_AUDIO_S", 60.0, 0.1, 3600.0)
        # the body limit follows the audio limit: STT_MAX_AUDIO_S of the largest WAV taken
        # (48 kHz, 2 channels, 4-byte samples) in base64, plus room for the JSON around it
        self.max_body_bytes = int(self.max_audio_s * BIGGEST_BYTES_PER_S * 4 / 3) + 65536
        # numpy (~100 ms) comes with the first audio, not with the start (deps.need_installed)
        deps.need_installed(self.name, "numpy", "python3-numpy", "numpy for audio conversion")
        self.wav = deps.Lazy(f"{__package__}.wav")
        engine = env.string("STT_ENGINE", "pocketsphinx")
        # a remote engine (Whisper, say) has its own idea of noise: we send its audio as is
        self.denoise = env.choice("STT_DENOISE", DENOISE,
                                  "wiener" if engine == "pocketsphinx" else "none")
        self.denoiser = deps.Lazy(f"{__package__}.denoise")
        if engine.startswith("wyoming:"):  # an operator's Wyoming service (wyoming_client.py)
            from .wyoming_client import RemoteSTT

            self.engine = RemoteSTT(self.name, engine, env.number(
                "STT_REMOTE_TIMEOUT_S", 60.0, 1.0, 3600.0), self.log)
        elif engine == "pocketsphinx":
            self._load_pocketsphinx(env.string("STT_MODEL_DIR", DEFAULT_MODEL_DIR))
        else:
            raise ConfigError(f"STT_ENGINE={engine!r} is invalid; allowed: pocketsphinx, or "
                              "wyoming://HOST:PORT (an operator's Wyoming speech service)")
        from .wyoming import start_server
        from .wyoming_services import AsrHandler

        self.wyoming = start_server(self, [AsrHandler(self)])

    def _load_pocketsphinx(self, model_dir: str) -> None:
        module = deps.need_module(self.name, "pocketsphinx", "python3-pocketsphinx",
                                  "the PocketSphinx speech recogniser")
        engine = Pocketsphinx(module, model_dir)
        for f in engine.files():
            deps.need_file(self.name, f, "pocketsphinx-en-us", "STT_MODEL_DIR")
        load_s = engine.load()
        self.engine = engine
        self.log.info("recogniser loaded", engine=engine.name, model=model_dir,
                      load_s=round(load_s, 3))

    def on_stop(self) -> None:
        if self.wyoming is not None:
            self.wyoming.close()

    def handle_task(self, task: dict):
        data = decode_b64_field(task, "audio_wav_b64")
        try:
            phrases = check_phrases(task.get("phrases"))
        except PhraseError as e:
            raise HTTPError(400, str(e)) from None
        return self.recognise(data, phrases, denoise_option(task, self.denoise))

    def recognise(self, data: bytes, phrases: tuple | None = None,
                  denoise: str | None = None) -> dict:
        """The task's answer for the WAV `data` (POST /task and Wyoming's transcribe)."""
        t0 = time.perf_counter()
        denoise = denoise or self.denoise
        audio = read_audio(self.wav, data, self.max_audio_s, "STT_MAX_AUDIO_S")
        pcm, clipped = self.wav.to_mono16k(audio)
        heard = self.denoiser.wiener(pcm) if denoise == "wiener" else pcm
        try:
            out = self.engine.transcribe(heard, phrases)
        except PhraseError as e:
            raise HTTPError(400, str(e)) from None
        processing_s = time.perf_counter() - t0
        level, warnings = level_warnings(pcm, clipped)
        return {"text": out["text"], "confidence": out["confidence"], "words": out["words"],
                "engine": self.engine.name, "model": self.engine.model_dir,
                "audio_s": round(audio.seconds, 3),
                "rtf": real_time_factor(processing_s, audio.seconds),
                "processing_s": round(processing_s, 4), "search": out["search"],
                "denoise": denoise,
                "input": {"sample_rate": audio.rate, "channels": audio.channels,
                          "format": audio.source_format},
                "level_dbfs": round(level, 1), "warnings": warnings}

    def health_checks(self) -> dict:
        remote = getattr(self.engine, "check", None)  # a Wyoming engine: its last contact
        return {"engine": remote() if remote else self.engine.load_s is not None}

    def health_info(self) -> dict:
        info = {"engine": self.engine.name, "model": self.engine.model_dir,
                "engine_version": self.engine.version, "model_load_s": round(
                    self.engine.load_s or 0.0, 3), "max_audio_s": self.max_audio_s,
                "denoise": self.denoise}
        if self.wyoming is not None:
            info["wyoming"] = self.wyoming.stats()
        return info

    def wyoming_models(self) -> list[dict]:
        """The model entries of this agent's Wyoming info (wyoming_services.AsrHandler)."""
        from .wyoming import artifact

        e = self.engine
        if isinstance(e, Pocketsphinx):
            return [artifact("pocketsphinx-en-us", f"CMU PocketSphinx, US English ({e.model_dir})",
                             e.version, by="CMU Sphinx", url="https://cmusphinx.github.io",
                             languages=["en"])]
        return [artifact(e.model, f"{e.program}/{e.model} at {e.client.url}", e.version,
                         by=e.program, url=e.client.url, languages=["en"])]


def level_warnings(pcm, clipped: float) -> tuple[float, list[str]]:
    """(RMS level in dBFS, what the answer warns about: silence, clipping)."""
    warnings = []
    level = _dbfs(pcm)
    if level < SILENCE_DBFS:
        warnings.append(f"the audio is silent ({level:.0f} dBFS)")
    if clipped > 0.001:
        warnings.append(f"{clipped:.1%} of the samples are clipped (at full scale)")
    return level, warnings


def _dbfs(pcm) -> float:
    import numpy as np

    rms = float(np.sqrt(np.mean(np.square(pcm.astype(np.float64))))) / 32768.0
    return 20 * math.log10(rms) if rms > 0 else -120.0

