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

StreamingWiener is the same filter for audio that arrives in chunks (StreamingSpeechRecognition,
when a session asks for it): the noise spectrum is then the quietest tenth of the frames heard
so far (at most the last HISTORY_FRAMES), and the output runs at most N_FFT samples (32 ms)
behind the input.
"""
from __future__ import annotations

import numpy as np

N_FFT = 512          # 32 ms at 16 kHz
HOP = N_FFT // 2
QUIET_FRACTION = 10  # percent of frames, the quietest, that estimate the noise
SMOOTHING = 0.98     # weight of the previous frame in the a priori SNR (Ephraim-Malah)
GAIN_FLOOR = 0.1     # -20 dB at most
HISTORY_FRAMES = 625  # 10 s of frames: what a stream's noise estimate looks back over
NOISE_EVERY = 8       # frames between two noise estimates of a stream (128 ms)...
YOUNG_FRAMES = 64     # ...after its first second, when it is re-estimated every frame
# A stream's estimate starts from few frames (the quietest tenth of 30 frames is 3 frames), and
# a spectrum averaged over so few frames is itself noisy, which the filter turns into "musical
# noise". So a stream averages at least STREAM_LEAST_FRAMES frames and smooths the estimate
# over STREAM_SMOOTH_BINS bins (156 Hz): steady noise has a smooth spectrum. Chosen on the
# development voices (docs/SPEECH.md, "Noise"); without them the streaming filter lost to no
# filter at 15 dB SNR.
STREAM_LEAST_FRAMES = 4
STREAM_SMOOTH_BINS = 5


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


def _gain(p: np.ndarray, noise: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's gain from its power spectrum; the a priori SNR for the next frame."""
    posterior = p / noise
    prior = SMOOTHING * previous + (1 - SMOOTHING) * np.maximum(posterior - 1.0, 0.0)
    g = np.maximum(prior / (1.0 + prior), GAIN_FLOOR)
    return g, g * g * posterior


def _noise(power: np.ndarray, energy: np.ndarray, least: int = 1, smooth: int = 1) -> np.ndarray:
    """The mean power spectrum of the quietest QUIET_FRACTION of the frames (at least
    `least` of them), smoothed over `smooth` bins."""
    if least > 1:
        quiet = power[np.argsort(energy, kind="stable")[:max(least, -(-len(energy) * QUIET_FRACTION // 100))]]
    else:
        quiet = power[energy <= np.percentile(energy, QUIET_FRACTION)]
    noise = quiet.mean(axis=0)
    if smooth > 1:
        noise = np.convolve(np.pad(noise, smooth // 2, mode="edge"), np.ones(smooth) / smooth,
                            mode="valid")
    return np.maximum(noise, 1e-10)


def _as_input_type(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype == np.int16:
        return np.clip(np.round(y), -32768, 32767).astype(np.int16)
    return np.clip(y, -1.0, 1.0).astype(like.dtype)


def wiener(pcm: np.ndarray) -> np.ndarray:
    """16 kHz mono, int16 or float → the same type with stationary noise reduced (same length
    and timing)."""
    if len(pcm) < 2 * N_FFT:
        return pcm
    spec, win = _frames(pcm)
    power = spec.real ** 2 + spec.imag ** 2
    noise = _noise(power, power.sum(axis=1))
    gains = np.empty_like(power)
    previous = np.ones(power.shape[1])  # |gain * X|² / noise of the frame before
    for t, p in enumerate(power):
        gains[t], previous = _gain(p, noise, previous)
    return _as_input_type(_overlap_add(spec * gains, win, len(pcm)), pcm)


class StreamingWiener:
    """wiener() for a stream: push() chunks of int16 samples, each call returns the samples
    that are final so far (N_FFT behind the input); flush() returns the rest. The output is
    the same whatever the chunk sizes (tests/unit/speech). The noise estimate starts from
    the first frames heard: a stream that starts with speech is filtered less well until
    its first pause has been heard."""

    def __init__(self) -> None:
        self._win = np.hanning(N_FFT)
        w2 = self._win ** 2
        self._norm = np.maximum(w2[:HOP] + w2[HOP:], 1e-8)  # two frames cover each half-frame
        self._buf = np.zeros(N_FFT)  # the batch filter's leading padding: same frames
        self._tail = np.zeros(HOP)  # the second half of the last frame, to add to the next
        self._previous = np.zeros(N_FFT // 2 + 1)
        self._powers = np.zeros((HISTORY_FRAMES, N_FFT // 2 + 1))
        self._energies = np.zeros(HISTORY_FRAMES)
        self._heard = 0  # frames of real audio so far (the padded first two are not)
        self._frames = 0
        self._noise: np.ndarray | None = None
        self._skip = N_FFT  # output samples that are the padding's
        self._pushed = 0
        self._emitted = 0

    @staticmethod
    def samples(raw: bytes) -> np.ndarray:
        """Raw signed 16-bit little-endian bytes (a stream's chunk) as samples."""
        return np.frombuffer(raw, "<i2")

    def push(self, pcm: np.ndarray) -> np.ndarray:
        self._pushed += len(pcm)
        return self._emit(self._filter(pcm.astype(np.float64)))

    def flush(self) -> np.ndarray:
        """The samples still held back, the stream ended with zeros (as wiener() pads)."""
        y = self._emit(self._filter(np.zeros(N_FFT + (-(len(self._buf)) % HOP))))
        return y[:max(0, self._pushed - (self._emitted - len(y)))]

    def _filter(self, x: np.ndarray) -> np.ndarray:
        """Append x; filter every whole frame now buffered (hop by hop)."""
        self._buf = np.concatenate([self._buf, x])
        out = []
        while len(self._buf) >= N_FFT:
            out.append(self._frame(self._buf[:N_FFT]))
            self._buf = self._buf[HOP:]
        return np.concatenate(out) if out else np.zeros(0)

    @property
    def noise_dbfs(self) -> float | None:
        """The level of the noise the filter estimates (dB of full scale), None before the
        first frame: how noisy the room is, as a number an operator can compare."""
        if self._noise is None:
            return None
        n = self._noise  # one-sided power spectrum of a Hann-windowed frame (Parseval)
        mean_square = (n[0] + n[-1] + 2 * n[1:-1].sum()) / N_FFT / (self._win ** 2).sum()
        return round(10 * float(np.log10(mean_square / 32768.0 ** 2 + 1e-20)), 1)

    def _frame(self, samples: np.ndarray) -> np.ndarray:
        """Filter one frame; the HOP samples that are now final."""
        spec = np.fft.rfft(samples * self._win)
        p = spec.real ** 2 + spec.imag ** 2
        if self._frames >= 2:  # not a frame of the leading zeros
            slot = self._heard % HISTORY_FRAMES
            self._powers[slot], self._energies[slot] = p, p.sum()
            self._heard += 1
            if self._heard < YOUNG_FRAMES or self._heard % NOISE_EVERY == 0:
                n = min(self._heard, HISTORY_FRAMES)
                self._noise = _noise(self._powers[:n], self._energies[:n],
                                     STREAM_LEAST_FRAMES, STREAM_SMOOTH_BINS)
        self._frames += 1
        if self._noise is None:  # the leading padding and the first 16 ms: no estimate yet,
            g = np.full_like(p, GAIN_FLOOR)  # so treat it as noise
        else:
            g, self._previous = _gain(p, self._noise, self._previous)
        y = np.fft.irfft(spec * g, n=N_FFT) * self._win
        done = (self._tail + y[:HOP]) / self._norm
        self._tail = y[HOP:]
        return done

    def _emit(self, y: np.ndarray) -> np.ndarray:
        drop = min(self._skip, len(y))
        self._skip -= drop
        y = y[drop:]
        self._emitted += len(y)
        return np.clip(np.round(y), -32768, 32767).astype(np.int16)
