"""The spoken half of a turn (agents/builtin/dialogue/hearing.py) against a fake of the
coordinator: which audio each stage gets, and what a missing stage does."""
from __future__ import annotations

import base64
import io
import wave

import pytest

from unified_agents import HTTPError
from unified_agents.builtin.dialogue import hearing
from unified_agents.builtin.dialogue.peers import Unavailable


def wav_b64(seconds: float, rate: int = 16000, channels: int = 1) -> str:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        # each frame holds its own index: a cut shows exactly which frames it kept
        w.writeframes(b"".join((i % 30000).to_bytes(2, "little") * channels
                               for i in range(int(seconds * rate))))
    return base64.b64encode(buf.getvalue()).decode()


def frames_of(b64: str) -> tuple[int, int]:
    with wave.open(io.BytesIO(base64.b64decode(b64))) as r:
        n = r.getnframes()
        first = int.from_bytes(r.readframes(1)[:2], "little")
        return first, n


class FakePeers:
    def __init__(self, answers: dict):
        self.answers, self.calls = answers, []

    def task(self, ttype, body, timings=None, stage=None, timeout=None):
        self.calls.append((ttype, body))
        if timings is not None:
            timings[stage or ttype] = 1.0
        a = self.answers.get(ttype)
        if isinstance(a, Exception):
            raise a
        if a is None:
            raise Unavailable(ttype, f"unknown task type {ttype!r}", 400)
        return a(body) if callable(a) else a, "Fake"


def test_stt_gets_the_preprocessed_audio_cut_to_the_speech_with_padding():
    prepped = wav_b64(3.0)
    peers = FakePeers({"audio_preprocessing": {"audio_wav_b64": prepped,
                                               "speech_segments": [[1.0, 1.5], [1.8, 2.0]],
                                               "speech_s": 0.7},
                       "stt": {"text": " what time is it "}})
    timings, skipped = {}, []
    r = hearing.hear(peers, wav_b64(3.0, 44100, 2), False, timings, skipped)
    assert r["transcript"] == "what time is it" and r["speech_s"] == 0.7 and skipped == []
    first, n = frames_of(peers.calls[-1][1]["audio_wav_b64"])
    assert first == int((1.0 - hearing.PAD_S) * 16000)
    assert n == int((2.0 + hearing.PAD_S) * 16000) - int((1.0 - hearing.PAD_S) * 16000)
    assert list(timings) == ["preprocess", "stt"]


def test_a_missing_preprocessor_is_skipped_by_name_and_stt_gets_the_audio_as_it_came():
    raw = wav_b64(1.0, 8000)
    peers = FakePeers({"audio_preprocessing": Unavailable(
        "audio_preprocessing", "FusedAudioPreprocessor is not in the profile", 409),
        "stt": {"text": "hello"}})
    skipped: list = []
    r = hearing.hear(peers, raw, False, {}, skipped)
    assert r["transcript"] == "hello" and peers.calls[-1][1]["audio_wav_b64"] == raw
    assert skipped == [{"tier": "preprocess", "why": "audio passed on as it came: "
                        "FusedAudioPreprocessor is not in the profile"}]


def test_bad_audio_is_the_preprocessors_4xx_and_stt_is_not_asked():
    peers = FakePeers({"audio_preprocessing": Unavailable(
        "audio_preprocessing", "not a WAV file: no RIFF header", 400), "stt": {"text": "x"}})
    with pytest.raises(HTTPError) as e:
        hearing.hear(peers, "AAAA", False, {}, [])
    assert e.value.status == 400 and "RIFF" in str(e.value)
    assert [c[0] for c in peers.calls] == ["audio_preprocessing"]


def test_the_command_starts_where_the_wake_phrase_ends():
    prepped = wav_b64(4.0)
    peers = FakePeers({"audio_preprocessing": {"audio_wav_b64": prepped,
                                               "speech_segments": [[0.5, 3.0]]},
                       "wake_word": {"detected": True, "phrase": "okay computer",
                                     "at_s": 0.5, "end_s": 1.4, "score": 1e-10},
                       "stt": {"text": "what time is it"}})
    r = hearing.hear(peers, wav_b64(4.0), True, {}, [])
    assert r["wake"]["phrase"] == "okay computer"
    first, n = frames_of(peers.calls[-1][1]["audio_wav_b64"])
    assert first == int(1.4 * 16000) and first + n == int((3.0 + hearing.PAD_S) * 16000)


def test_a_wake_word_asked_for_and_not_checkable_is_a_502_never_skipped():
    peers = FakePeers({"audio_preprocessing": {"audio_wav_b64": wav_b64(1.0),
                                               "speech_segments": [[0.1, 0.9]]},
                       "stt": {"text": "what time is it"}})
    peers.answers["wake_word"] = Unavailable("wake_word", "WakeWordDetector is not in the "
                                             "profile", 409)
    with pytest.raises(HTTPError) as e:
        hearing.hear(peers, wav_b64(1.0), True, {}, [])
    assert e.value.status == 502 and "WakeWordDetector is not in the profile" in str(e.value)
    assert "stt" not in [c[0] for c in peers.calls]


def test_a_float_wav_is_passed_whole_when_it_cannot_be_cut():
    with pytest.raises(ValueError, match="not a PCM WAV"):
        hearing.cut(base64.b64encode(b"RIFF\0\0\0\0WAVEfmt ").decode(), 0.1, None)
