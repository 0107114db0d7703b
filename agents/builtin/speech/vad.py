"""Voice activity detection on numpy: sub-band energies against an adaptive noise floor.

Debian bookworm ships no webrtcvad/silero; this detector is small, deterministic and
documented (docs/SPEECH.md, "FusedAudioPreprocessor", has its measured accuracy):

1. 16 kHz audio in 20 ms Hann frames every 10 ms; the power spectrum of each frame is summed
   into BANDS (100 Hz - 8 kHz, narrow at the bottom where voiced speech puts its energy).
2. The noise floor of each band is a low percentile (FLOOR_PERCENTILE) of that band's level
   over a sliding window of FLOOR_WINDOW_S around the frame: it follows noise that changes
   (a fan switched on) and needs only ~10 % of any window to be non-speech. It never goes
   below ABS_FLOOR_DB, so digital silence does not make every dithered sample "speech".
3. A frame's score is the mean of its TOP_BANDS best band SNRs (dB above the floor, capped at
   SNR_CAP_DB). Speech is loud in a few bands at a time (formants, fricatives) while
   broadband noise raises all bands alike, so the best bands separate speech from noise far
   better than the total energy does: at 10 dB SNR of white noise, the low bands of a vowel
   are 20-30 dB above their floor.
4. Hysteresis: a segment starts where the score passes ON_DB and extends both ways while it
   stays above OFF_DB; segments closer than MERGE_GAP_S merge (pauses inside a sentence),
   shorter than MIN_SPEECH_S are dropped (clicks), and each is padded by PAD_S.

The constants were set on development audio (espeak-ng voices, bench/bench_prep.py --dev)
and then frozen; the evaluation voices (flite) never informed them.
"""
from __future__ import annotations

import numpy as np

RATE = 16000
FRAME = 320             # 20 ms
HOP = 160               # 10 ms: segment times have a 10 ms grid
BANDS = (100, 250, 450, 700, 1000, 1500, 2200, 3200, 4500, 8000)  # Hz edges
FLOOR_WINDOW_S = 6.0
FLOOR_PERCENTILE = 10.0
FLOOR_STEP = 10         # the floor is computed every 10 frames and interpolated (speed)
ABS_FLOOR_DB = -90.0    # band power in dB re full scale: below this is digital silence
SNR_CAP_DB = 30.0
TOP_BANDS = 3
ON_DB = 10.0
OFF_DB = 6.0
MERGE_GAP_S = 0.3
MIN_SPEECH_S = 0.08
PAD_S = 0.03


def band_levels(x) -> np.ndarray:
    """(frames, bands) power in dB of a float signal at 16 kHz."""
    n = len(x)
    frames = max(1, 1 + (n - FRAME + HOP - 1) // HOP) if n > FRAME else 1
    padded = np.zeros((frames - 1) * HOP + FRAME, np.float64)
    padded[:n] = x
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(frames)[:, None]
    # (FRAME / 2)^2: a full-scale sine is 0 dB
    spec = np.abs(np.fft.rfft(padded[idx] * np.hanning(FRAME), axis=1)) ** 2 / (FRAME / 2) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    out = np.empty((frames, len(BANDS) - 1))
    for k, (lo, hi) in enumerate(zip(BANDS, BANDS[1:])):
        sel = (freqs >= lo) & (freqs < hi)
        out[:, k] = spec[:, sel].sum(axis=1)
    return 10 * np.log10(out + 1e-20)


def noise_floor(levels: np.ndarray) -> np.ndarray:
    """The adaptive floor of every band (same shape as levels)."""
    frames = levels.shape[0]
    half = int(FLOOR_WINDOW_S * RATE / HOP / 2)
    centres = np.arange(0, frames, FLOOR_STEP)
    floors = np.empty((len(centres), levels.shape[1]))
    for i, c in enumerate(centres):
        lo, hi = max(0, c - half), min(frames, c + half + 1)
        floors[i] = np.percentile(levels[lo:hi], FLOOR_PERCENTILE, axis=0)
    if len(centres) > 1:
        full = np.stack([np.interp(np.arange(frames), centres, floors[:, k])
                         for k in range(levels.shape[1])], axis=1)
    else:
        full = np.repeat(floors, frames, axis=0)
    return np.maximum(full, ABS_FLOOR_DB)


def frame_scores(x) -> np.ndarray:
    """Per 10 ms frame: the mean SNR (dB) of the TOP_BANDS bands most above their floor."""
    levels = band_levels(x)
    snr = np.clip(levels - noise_floor(levels), 0.0, SNR_CAP_DB)
    top = np.sort(snr, axis=1)[:, -TOP_BANDS:]
    return top.mean(axis=1)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    d = np.diff(np.concatenate((np.zeros(1, np.int8), mask.astype(np.int8),
                                np.zeros(1, np.int8))))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def segments_from_scores(scores: np.ndarray, duration_s: float) -> list[list[float]]:
    """Hysteresis, merging, minimum length and padding → [[start_s, end_s], ...]."""
    frame_s = HOP / RATE
    core = scores > ON_DB
    segs = []
    for a, b in _runs(scores > OFF_DB):
        if core[a:b].any():
            # frame i covers [i*hop, i*hop + frame): its centre is the time it speaks for
            segs.append([a * frame_s + FRAME / RATE / 2 - frame_s / 2,
                         b * frame_s + FRAME / RATE / 2 - frame_s / 2])
    merged: list[list[float]] = []
    for s in segs:
        if merged and s[0] - merged[-1][1] < MERGE_GAP_S:
            merged[-1][1] = s[1]
        else:
            merged.append(s)
    out: list[list[float]] = []
    for start, end in merged:
        if end - start < MIN_SPEECH_S:
            continue
        start, end = max(0.0, start - PAD_S), min(duration_s, end + PAD_S)
        if out and start <= out[-1][1]:
            out[-1][1] = end
        else:
            out.append([start, end])
    return [[round(a, 2), round(b, 2)] for a, b in out]


def speech_segments(x) -> list[list[float]]:
    """[[start_s, end_s], ...] of speech in a float signal at 16 kHz."""
    if len(x) == 0:
        return []
    return segments_from_scores(frame_scores(x), len(x) / RATE)
