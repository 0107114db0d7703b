"""WAV in and out: any RIFF WAVE (8-48 kHz, 1-8 channels, PCM 8/16/24/32-bit or IEEE float
32/64-bit, plain or WAVE_FORMAT_EXTENSIBLE) → 16 kHz mono int16 for the recognisers.

The RIFF chunks are parsed here rather than with the stdlib `wave` module, which (Python 3.11)
refuses IEEE float and WAVE_FORMAT_EXTENSIBLE files. A data chunk whose declared size runs
past the end of the file is read up to the end: programs that write WAV to a pipe (espeak-ng
--stdout, arecord to stdout) cannot seek back to fill in the size, so that is normal; a file
whose *header* is cut short is an error. Every error is a WavError with the HTTP status it
deserves (400 bad input, 413 too long) and one line saying what is allowed.
"""
from __future__ import annotations

import io
import math
import struct
import wave

import numpy as np

from .pcm import MAX_CHANNELS, MAX_RATE, MIN_RATE

TARGET_RATE = 16000
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
ALLOWED = ("a RIFF WAVE file: 8000-48000 Hz, 1-8 channels, PCM 8/16/24/32-bit or IEEE float "
           "32/64-bit")


class WavError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Audio:
    """Decoded audio: float32 samples in [-1, 1], shape (frames, channels)."""

    def __init__(self, samples, rate: int, source_format: str):
        self.samples = samples
        self.rate = rate
        self.source_format = source_format

    @property
    def frames(self) -> int:
        return self.samples.shape[0]

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def _header(data: bytes):
    """(format tag, channels, rate, bits, data offset, data length) from the RIFF chunks."""
    if len(data) < 12:
        if data and b"RIFF".startswith(data[:4]):
            raise WavError(400, f"truncated WAV header: {len(data)} bytes; allowed: {ALLOWED}")
        raise WavError(400, f"not a WAV file ({len(data)} bytes, no RIFF/WAVE header); "
                            f"allowed: {ALLOWED}")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        kind = "RIFF but not WAVE" if data[:4] == b"RIFF" else f"starts with {data[:4]!r}"
        raise WavError(400, f"not a WAV file ({kind}); allowed: {ALLOWED}")
    pos, fmt = 12, None
    while True:
        if pos + 8 > len(data):
            what = "no 'fmt ' chunk" if fmt is None else "no 'data' chunk"
            raise WavError(400, f"truncated WAV header: {what} in {len(data)} bytes; "
                                f"allowed: {ALLOWED}")
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise WavError(400, f"truncated WAV header: 'fmt ' chunk of {size} bytes "
                                    f"({len(data) - body} present); allowed: {ALLOWED}")
            tag, ch, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _EXTENSIBLE:
                if size < 40 or body + 26 > len(data):
                    raise WavError(400, "truncated WAV header: WAVE_FORMAT_EXTENSIBLE 'fmt ' "
                                        f"chunk of {size} bytes; allowed: {ALLOWED}")
                tag = struct.unpack_from("<H", data, body + 24)[0]  # the sub-format GUID
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise WavError(400, f"bad WAV: 'data' chunk before 'fmt ' chunk; allowed: "
                                    f"{ALLOWED}")
            # a size past the end: written to a pipe (see the module doc), read what is there
            return (*fmt, body, min(size, len(data) - body))
        pos = body + size + (size & 1)  # chunks are padded to an even size


def read(data: bytes, max_seconds: float | None = None) -> Audio:
    """Decode a WAV file's bytes. WavError (400, or 413 when longer than max_seconds)."""
    tag, ch, rate, bits, off, n = _header(data)
    if tag not in (_PCM, _FLOAT):
        raise WavError(400, f"WAV format tag {tag} is not supported; allowed: 1 (PCM) or 3 "
                            "(IEEE float)")
    kinds = {_PCM: (8, 16, 24, 32), _FLOAT: (32, 64)}[tag]
    if bits not in kinds:
        name = "PCM" if tag == _PCM else "IEEE float"
        raise WavError(400, f"{bits}-bit {name} WAV is not supported; allowed: "
                            f"{'/'.join(map(str, kinds))}-bit {name}")
    if not 1 <= ch <= MAX_CHANNELS:
        raise WavError(400, f"WAV has {ch} channels; allowed: 1-{MAX_CHANNELS}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise WavError(400, f"WAV sample rate {rate} Hz is not supported; allowed: "
                            f"{MIN_RATE}-{MAX_RATE} Hz")
    width = bits // 8
    frames = n // (width * ch)
    if frames == 0:
        raise WavError(400, "WAV has 0 samples; allowed: at least one sample")
    seconds = frames / rate
    if max_seconds is not None and seconds > max_seconds:
        # before decoding: a 10-minute file is refused without touching its samples
        raise WavError(413, f"audio is {seconds:.1f} s long; allowed: at most "
                            f"{max_seconds:g} s")
    raw = data[off:off + frames * width * ch]
    fmt = f"{'float' if tag == _FLOAT else 'pcm'}{bits}"
    if tag == _FLOAT:
        x = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float32)
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(x, -1.0, 1.0, out=x)
    elif bits == 8:  # unsigned, centred on 128
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    else:
        x = np.frombuffer(raw, "<i2" if bits == 16 else "<i4").astype(np.float32)
        x /= float(1 << (bits - 1))
    return Audio(x.reshape(frames, ch), rate, fmt)


def resample(x, rate: int, target: int):
    """Band-limited resampling of a 1-D float signal (FFT: exact low-pass at the lower
    Nyquist frequency, no aliasing; naive interpolation of 22 kHz speech to 16 kHz turned
    "turn on the kitchen lights" into "the" for the recogniser)."""
    if rate == target:
        return x
    g = math.gcd(rate, target)
    step = rate // g  # zero-pad to a multiple of it: the output length is then exact
    n = len(x)
    padded = -(-n // step) * step
    xp = np.zeros(padded, np.float64)
    xp[:n] = x
    m = padded // step * (target // g)
    spec = np.fft.rfft(xp)
    out = np.zeros(m // 2 + 1, np.complex128)
    k = min(len(spec), len(out))
    out[:k] = spec[:k]
    if m % 2 == 0 and k == len(out) and len(spec) > k:
        out[-1] = out[-1].real  # the new Nyquist bin must be real
    y = np.fft.irfft(out, m) * (m / padded)
    return y[:round(n * target / rate)].astype(np.float32)


def _mono(audio: Audio):
    return audio.samples.mean(axis=1) if audio.channels > 1 else audio.samples[:, 0]


def _int16(x):
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")  # 16-bit in = out


def to_int16(audio: Audio):
    """int16 mono at the audio's own rate."""
    return _int16(_mono(audio))


def to_mono16k(audio: Audio):
    """int16 mono at 16 kHz, and the fraction of source samples at full scale (clipping)."""
    clipped = float(np.mean(np.abs(audio.samples) >= 0.999))
    return _int16(resample(_mono(audio), audio.rate, TARGET_RATE)), clipped


def write(samples, rate: int) -> bytes:
    """A mono 16-bit PCM WAV of int16 samples."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())
    return buf.getvalue()


def onset_s(pcm, rate: int = TARGET_RATE) -> float:
    """Where sound starts in a clean clip (synthesised speech after digital silence): the
    first 10 ms frame above 1 % of the loudest frame's RMS. Used to know where a phrase was
    placed when building test and evaluation audio."""
    hop = rate // 100
    n = len(pcm) // hop
    if n == 0:
        return 0.0
    frames = np.asarray(pcm[:n * hop], np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    return float(np.argmax(rms > 0.01 * rms.max())) / 100
