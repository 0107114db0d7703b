"""wav.py: any WAV the issue lists (8-48 kHz, mono/stereo, PCM/float, EXTENSIBLE) becomes
16 kHz mono int16; resampling does not alias; every bad file is one clear error with the
status it deserves (400, 413 over the length limit)."""
import numpy as np
import pytest

from .conftest import needs_numpy, wav_bytes

pytestmark = needs_numpy
from unified_agents.builtin.speech import wav  # noqa: E402


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5):
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def peak_hz(pcm, rate: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spec) * rate / len(pcm))


@pytest.mark.parametrize("fmt", ["pcm8", "pcm16", "pcm24", "pcm32", "float32", "float64"])
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_every_sample_format_and_rate_becomes_16k_mono_with_the_same_pitch(fmt, rate):
    audio = wav.read(wav_bytes(tone(440, rate), rate, fmt=fmt))
    pcm, clipped = wav.to_mono16k(audio)
    assert audio.rate == rate and audio.source_format == fmt and clipped == 0
    assert pcm.dtype == np.dtype("<i2") and len(pcm) == round(int(rate * 0.5) * 16000 / rate)
    assert abs(peak_hz(pcm) - 440) <= 2
    assert 0.4 < np.abs(pcm).max() / 32767 < 0.6                      # level kept


def test_stereo_is_mixed_down_and_extensible_headers_are_read():
    left, right = tone(440, 48000), tone(1000, 48000)
    audio = wav.read(wav_bytes(np.stack([left, right], 1), 48000, fmt="float32",
                               extensible=True))
    assert audio.channels == 2
    pcm, _ = wav.to_mono16k(audio)
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    bins = [round(f * len(pcm) / 16000) for f in (440, 1000)]
    assert all(spec[b] > 0.2 * spec.max() for b in bins)              # both channels heard


def test_24_bit_samples_keep_their_sign_and_value():
    x = np.array([0.0, 0.5, -0.5, 0.999, -1.0])
    audio = wav.read(wav_bytes(x, 16000, fmt="pcm24"))
    assert np.allclose(audio.samples[:, 0], x, atol=1e-6)


def test_resampling_removes_what_the_lower_rate_cannot_hold():
    # 10 kHz at 44.1 kHz is above 16 kHz's Nyquist (8 kHz): it must vanish, not fold to 6 kHz
    pcm, _ = wav.to_mono16k(wav.read(wav_bytes(tone(10000, 44100), 44100)))
    assert np.abs(pcm).max() < 0.01 * 32767


def test_a_data_size_past_the_end_reads_what_is_there_like_a_pipe_written_file():
    data = wav_bytes(tone(440, 16000, 0.25), 16000, data_size=0xFFFFFFFF)
    assert wav.read(data).frames == 4000


def test_clipping_is_measured():
    x = np.clip(tone(440, 16000, amp=2.0), -1, 1)
    _, clipped = wav.to_mono16k(wav.read(wav_bytes(x, 16000, fmt="float32")))
    assert clipped > 0.3


def test_write_then_read_gives_the_samples_back():
    pcm = (tone(300, 22050) * 32767).astype("<i2")
    audio = wav.read(wav.write(pcm, 22050))
    assert audio.rate == 22050 and np.array_equal(wav.to_int16(audio), pcm)


GOOD = wav_bytes(tone(440, 16000, 0.1), 16000)


@pytest.mark.parametrize("data, status, words", [
    (b"", 400, "not a WAV file"),
    (b"hello world, not audio", 400, "not a WAV file"),
    (b"RIFF\x10\x00\x00\x00AVI LIST", 400, "RIFF but not WAVE"),
    (GOOD[:10], 400, "truncated WAV header"),
    (GOOD[:30], 400, "truncated WAV header"),
    (GOOD[:40], 400, "truncated WAV header"),                           # fmt, no data chunk
    (GOOD[:44], 400, "0 samples"),
    (wav_bytes(tone(440, 4000), 4000), 400, "4000 Hz is not supported"),
    (wav_bytes(tone(440, 96000, 0.01), 96000), 400, "96000 Hz is not supported"),
    (wav_bytes(tone(440, 16000), 16000, fmt="pcm16")[:20] + b"\x02\x00" +
     wav_bytes(tone(440, 16000), 16000)[22:], 400, "format tag 2 is not supported"),
])
def test_bad_files_are_one_clear_error(data, status, words):
    with pytest.raises(wav.WavError) as e:
        wav.read(data)
    assert e.value.status == status and words in e.value.message, e.value.message
    assert "allowed" in e.value.message or "truncated" in e.value.message


def test_too_long_is_a_413_with_the_limit_before_the_samples_are_decoded():
    ten_minutes = wav_bytes(np.zeros(16000 * 600), 16000)
    with pytest.raises(wav.WavError) as e:
        wav.read(ten_minutes, max_seconds=60)
    assert e.value.status == 413
    assert e.value.message == "audio is 600.0 s long; allowed: at most 60 s"
