"""Noise reduction before recognition: a Wiener filter with a decision-directed a priori SNR
(Ephraim and Malah, 1984), on 32 ms frames with 50 % overlap.

PocketSphinx's acoustic model was trained on clean speech; steady background noise (a fan, a
hum, a noisy microphone) turns into inserted and substituted words. The whole utterance is
at hand (STTService and FusedAudioPreprocessor get a WAV), so the noise spectrum is estimated
from the quietest tenth of its frames (the pauses before, between and after words) instead of
being tracked as audio arrives. The decision-directed estimate smooths the gain over time,
which leaves less "musical noise" than plain spectral subtraction (measured on the development
voices: docs/SPEECH.md, "Noise"). The gain never drops below GAIN_FLOOR, so speech that the
noise estimate overshoots is attenuated, not removed.
"""
from __future__ import annotations

import numpy as np

N_FFT = 512          # 32 ms at 16 kHz
HOP = N_FFT // 2
QUIET_FRACTION = 10  # percent of frames, the quietest, that estimate the noise
SMOOTHING = 0.98     # weight of the previous frame in the a priori SNR (Ephraim-Malah)
GAIN_FLOOR = 0.1     # -20 dB at most


def _frames(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    win = np.hanning(N_FFT)
    pad = np.concatenate([np.zeros(N_FFT), x.astype(np.float64), np.zeros(N_FFT)])
    pad = np.concatenate([pad, np.zeros((-len(pad)) % HOP)])
    frames = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::HOP] * win
    return np.fft.rfft(frames, axis=1), win


def _overlap_add(spec: np.ndarray, win: np.ndarray, n: int) -> np.ndarray:
    frames = np.fft.irfft(spec, n=N_FFT, axis=1) * win
    count = len(frames)
    out = np.zeros((count + 1) * HOP)
    norm = np.zeros_like(out)
    # HOP is half a frame: each output half-frame is one frame's tail plus the next's head
    out[:count * HOP] += frames[:, :HOP].ravel()
    out[HOP:] += frames[:, HOP:].ravel()
    w2 = win ** 2
    norm[:count * HOP] += np.tile(w2[:HOP], count)
    norm[HOP:] += np.tile(w2[HOP:], count)
    return (out / np.maximum(norm, 1e-8))[N_FFT:N_FFT + n]


def wiener(pcm: np.ndarray) -> np.ndarray:
    """16 kHz mono, int16 or float → the same type with stationary noise reduced (same length
    and timing)."""
    if len(pcm) < 2 * N_FFT:
        return pcm
    spec, win = _frames(pcm)
    power = spec.real ** 2 + spec.imag ** 2
    energy = power.sum(axis=1)
    quiet = power[energy <= np.percentile(energy, QUIET_FRACTION)]
    noise = np.maximum(quiet.mean(axis=0), 1e-10)
    gains = np.empty_like(power)
    previous = np.ones(power.shape[1])  # |gain * X|² / noise of the frame before
    for t, p in enumerate(power):
        posterior = p / noise
        prior = SMOOTHING * previous + (1 - SMOOTHING) * np.maximum(posterior - 1.0, 0.0)
        g = np.maximum(prior / (1.0 + prior), GAIN_FLOOR)
        gains[t] = g
        previous = g * g * posterior
    y = _overlap_add(spec * gains, win, len(pcm))
    if pcm.dtype == np.int16:
        return np.clip(np.round(y), -32768, 32767).astype(np.int16)
    return np.clip(y, -1.0, 1.0).astype(pcm.dtype)
