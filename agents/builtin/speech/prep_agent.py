"""FusedAudioPreprocessor: any WAV → 16 kHz mono normalised audio + speech segments
(docs/SPEECH.md, "FusedAudioPreprocessor").

    POST /task {"type": "audio_preprocessing", "audio_wav_b64": "<base64 WAV>",
                "normalize"?: "rms" | "peak" | "none", "target_dbfs"?: -40..0,
                "highpass_hz"?: 0 | 20..1000, "denoise"?: "wiener" | "none"}
      → {"audio_wav_b64", "sample_rate": 16000, "audio_s", "speech_segments": [[s, e], ...],
         "speech_s", "gain_db", "gain_limited", "dc_offset", "before", "after", "input",
         "vad", "warnings"}

Bad audio is a 400 naming what is wrong and what is allowed, audio longer than
PREP_MAX_AUDIO_S a 413 (from the header, before decoding); silence and clipping are answered
(no segments, gain 0 / a warning), as STTService does.
"""
from __future__ import annotations

import base64
import time

from unified_agents import Agent, ConfigError, HTTPError

from .. import deps
from .stt_agent import (BIGGEST_BYTES_PER_S, DENOISE, decode_b64_field, denoise_option,
                        read_audio)


def _option_number(task: dict, name: str, default, lo: float, hi: float, zero_ok=False):
    v = task.get(name, default)
    if v is None:
        return None
    ok = not isinstance(v, bool) and isinstance(v, (int, float))
    if not ok or not (lo <= v <= hi or (zero_ok and v == 0)):
        what = f"0 or a number {lo:g}-{hi:g}" if zero_ok else f"a number {lo:g}-{hi:g}"
        raise HTTPError(400, f'"{name}"={v!r}; allowed: {what}')
    return float(v)


class FusedAudioPreprocessor(Agent):
    version = "1.0.0"
    task_types = ("audio_preprocessing",)

    def on_start(self) -> None:
        env = self.config.env
        deps.need_installed(self.name, "numpy", "python3-numpy", "numpy for audio processing")
        self.wav, self.prep, self.vad, self.denoiser = (
            deps.Lazy(f"{__package__}.{m}") for m in ("wav", "prep", "vad", "denoise"))
        self.max_audio_s = env.number("PREP_MAX_AUDIO_S", 60.0, 0.1, 3600.0)
        self.highpass_hz = env.number("PREP_HIGHPASS_HZ", 0.0, 0.0, 1000.0)
        if 0 < self.highpass_hz < 20:
            raise ConfigError(f"PREP_HIGHPASS_HZ={self.highpass_hz:g} is invalid; allowed: 0 "
                              "(off) or 20-1000")
        self.max_gain_db = env.number("PREP_MAX_GAIN_DB", 30.0, 0.0, 60.0)
        # off by default: this agent's output is audio for any consumer, kept as recorded
        self.denoise = env.choice("PREP_DENOISE", DENOISE, "none")
        # as STTService: the body limit follows the audio limit (the largest WAV, base64)
        self.max_body_bytes = int(self.max_audio_s * BIGGEST_BYTES_PER_S * 4 / 3) + 65536

    def handle_task(self, task: dict):
        data = decode_b64_field(task, "audio_wav_b64")
        normalize = task.get("normalize", "rms")
        if normalize not in self.prep.NORMALIZE:
            raise HTTPError(400, f'"normalize"={normalize!r}; allowed: '
                                 f"{', '.join(self.prep.NORMALIZE)}")
        target = _option_number(task, "target_dbfs", None, -40.0, 0.0)
        hp = _option_number(task, "highpass_hz", self.highpass_hz, 20.0, 1000.0, zero_ok=True)
        denoise = denoise_option(task, self.denoise)
        t0 = time.perf_counter()
        audio = read_audio(self.wav, data, self.max_audio_s, "PREP_MAX_AUDIO_S")
        clipped = float((abs(audio.samples) >= 0.999).mean())
        mono = audio.samples.mean(axis=1) if audio.channels > 1 else audio.samples[:, 0]
        x = self.wav.resample(mono, audio.rate, self.wav.TARGET_RATE)
        if denoise == "wiener":
            x = self.denoiser.wiener(x)
        out = self.prep.preprocess(x, normalize=normalize, target_dbfs=target,
                                   highpass_hz=hp or 0.0, max_gain_db=self.max_gain_db)
        y = out.pop("samples")
        pcm = self.wav.to_int16(self.wav.Audio(y[:, None], self.wav.TARGET_RATE, "float32"))
        warnings = []
        if out["before"]["rms_dbfs"] < self.prep.SILENT_DBFS:
            warnings.append(f"the audio is silent ({out['before']['rms_dbfs']:.0f} dBFS)")
        if clipped > 0.001:
            warnings.append(f"{clipped:.1%} of the input samples are clipped (at full scale): "
                            "normalisation cannot undo that")
        segs = out["speech_segments"]
        return {"audio_wav_b64": base64.b64encode(self.wav.write(pcm, self.wav.TARGET_RATE))
                .decode(), "sample_rate": self.wav.TARGET_RATE,
                "audio_s": round(len(x) / self.wav.TARGET_RATE, 3),
                "speech_s": round(sum(e - s for s, e in segs), 2), **out,
                "normalize": normalize, "highpass_hz": hp or 0.0, "denoise": denoise,
                "input": {"sample_rate": audio.rate, "channels": audio.channels,
                          "format": audio.source_format, "clipped_fraction": round(clipped, 4)},
                "vad": "sub-band energy over an adaptive noise floor (numpy)",
                "processing_s": round(time.perf_counter() - t0, 4), "warnings": warnings}

    def health_info(self) -> dict:
        return {"engine": "numpy", "engine_version": deps.installed_version("numpy"),
                "model": "sub-band energy VAD with an adaptive noise floor (speech/vad.py)",
                "max_audio_s": self.max_audio_s, "highpass_hz": self.highpass_hz,
                "denoise": self.denoise}
