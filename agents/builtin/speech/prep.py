"""Audio preprocessing for the recognisers: DC removal, optional high-pass, peak or RMS
normalisation with the gain reported, and speech segments (vad.py). Float signals at 16 kHz.

Everything is whole-signal (the agent has the whole WAV): the high-pass is a zero-phase FFT
filter (no phase shift, so speech segment times stay exact) and the RMS normalisation measures
the level over the speech segments only, so a sentence gets the same gain whether it is
followed by one second of silence or ten.
"""
from __future__ import annotations

import math

import numpy as np

from . import vad

NORMALIZE = ("rms", "peak", "none")
DEFAULT_TARGET = {"rms": -20.0, "peak": -1.0}
PEAK_CEILING_DBFS = -1.0   # RMS normalisation never pushes a peak above this (no clipping)
SILENT_DBFS = -60.0


def dbfs(x) -> float:
    """RMS level of a float signal in dB re full scale (-120 for digital silence)."""
    if len(x) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 1e-6 else -120.0


def peak_dbfs(x) -> float:
    p = float(np.max(np.abs(x))) if len(x) else 0.0
    return 20 * math.log10(p) if p > 1e-6 else -120.0


def highpass(x, cutoff_hz: float, rate: int = vad.RATE):
    """Zero-phase high-pass: 0 below cutoff/2, a raised-cosine ramp up to 1 at the cutoff (a
    brick wall would ring)."""
    spec = np.fft.rfft(x.astype(np.float64))
    f = np.fft.rfftfreq(len(x), 1 / rate)
    lo = cutoff_hz / 2
    ramp = np.clip((f - lo) / (cutoff_hz - lo), 0.0, 1.0)
    spec *= 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.fft.irfft(spec, len(x)).astype(np.float32)


def _in_segments(x, segments, rate: int):
    parts = [x[int(s * rate):int(e * rate)] for s, e in segments]
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else x


def preprocess(x, *, normalize: str = "rms", target_dbfs: float | None = None,
               highpass_hz: float = 0.0, max_gain_db: float = 30.0) -> dict:
    """x: float32 mono at 16 kHz. → {"samples", "speech_segments", "gain_db", ...}."""
    dc = float(np.mean(x, dtype=np.float64)) if len(x) else 0.0
    y = (x - dc).astype(np.float32)
    if highpass_hz > 0:
        y = highpass(y, highpass_hz)
    segments = vad.speech_segments(y)
    before = {"rms_dbfs": round(dbfs(y), 1), "peak_dbfs": round(peak_dbfs(y), 1),
              "speech_rms_dbfs": round(dbfs(_in_segments(y, segments, vad.RATE)), 1)}
    gain_db, limited = 0.0, False
    if normalize != "none" and before["peak_dbfs"] > -120.0:
        target = DEFAULT_TARGET[normalize] if target_dbfs is None else target_dbfs
        level = before["speech_rms_dbfs"] if normalize == "rms" else before["peak_dbfs"]
        gain_db = target - level
        ceiling = PEAK_CEILING_DBFS if normalize == "rms" else 0.0
        if before["peak_dbfs"] + gain_db > ceiling:   # would clip: as loud as it can go
            gain_db, limited = ceiling - before["peak_dbfs"], True
        if gain_db > max_gain_db:                      # noise is not worth 60 dB of gain
            gain_db, limited = max_gain_db, True
    y = np.clip(y * np.float32(10 ** (gain_db / 20)), -1.0, 1.0)
    return {"samples": y, "speech_segments": segments, "gain_db": round(gain_db, 2),
            "gain_limited": limited, "dc_offset": round(dc, 5), "before": before,
            "after": {"rms_dbfs": round(dbfs(y), 1), "peak_dbfs": round(peak_dbfs(y), 1)}}
