"""WakeWordDetector speaks Wyoming's "wake" domain, checked with the PyPI `wyoming` library
(the client Home Assistant uses): describe lists the phrases as models; a streamed
microphone gets a "detection" as soon as the phrase has been heard, with its offset; a stream without the phrase ends in "not-detected"; an unknown wake word
name is an error event naming the ones served."""
from __future__ import annotations

import io
import wave

import pytest

from ..sdk.harness import free_port
from .conftest import agent_env, needs_espeak, needs_numpy, needs_stt
from .test_speech_wake import PHRASES, THRESHOLD, clip, speak
from .test_speech_wyoming import error_of, talk

pytestmark = [needs_numpy, needs_stt, needs_espeak]
from wyoming.audio import wav_to_chunks  # noqa: E402
from wyoming.info import Describe, Info  # noqa: E402
from wyoming.wake import Detect, Detection  # noqa: E402


@pytest.fixture(scope="module")
def wake_w(spawn_module):
    port = free_port()
    a = spawn_module("WakeWordDetector", agent_env(
        spawn_module, "wake_word_detector", WAKE_PHRASES=PHRASES, WAKE_THRESHOLD=THRESHOLD,
        WYOMING_PORT=port), notify=False)
    a.wyoming_port = port
    return a


@pytest.fixture(scope="module")
def espeak():
    import shutil

    from unified_agents.builtin.speech import tts

    return tts.EspeakNG(shutil.which("espeak-ng"))


def stream(wav_data: bytes, **detect):
    """What a satellite sends: detect, then its microphone in 1024-sample chunks."""
    with wave.open(io.BytesIO(wav_data)) as wf:
        return [Detect(**detect), *wav_to_chunks(wf, 1024, start_event=True, stop_event=True)]


def test_describe_lists_each_phrase_as_a_wake_model(wake_w):
    info = Info.from_event(talk(wake_w.wyoming_port, [Describe()])[-1])
    (program,) = info.wake
    assert program.name == "WakeWordDetector" and program.installed
    assert [(m.name, m.phrase, m.languages) for m in program.models] == [
        ("hey computer", "hey computer", ["en"]), ("okay computer", "okay computer", ["en"])]


def test_a_streamed_phrase_is_a_detection_where_it_was_spoken(wake_w, espeak):
    data, (at, _) = clip(1.5, speak(espeak, "hey computer"), 0.3,
                         speak(espeak, "what time is it"), 1.0)
    got = talk(wake_w.wyoming_port, stream(data), until=("detection", "not-detected"))
    assert [e.type for e in got] == ["detection"], got
    d = Detection.from_event(got[0])
    assert d.name == "hey computer"
    assert abs(d.timestamp / 1000 - at) < 0.3, (d.timestamp, at)


def test_a_stream_without_the_phrase_ends_in_not_detected(wake_w, espeak):
    data, _ = clip(0.5, speak(espeak, "turn on the kitchen lights"), 0.5)
    got = talk(wake_w.wyoming_port, stream(data), until=("not-detected",))
    assert [e.type for e in got] == ["not-detected"], got


def test_only_the_names_asked_for_are_detected(wake_w, espeak):
    data, _ = clip(1.0, speak(espeak, "hey computer"), 1.0)
    got = talk(wake_w.wyoming_port, stream(data, names=["okay computer"]), until=("not-detected",))
    assert [e.type for e in got] == ["not-detected"], got


def test_an_unknown_wake_word_is_an_error_naming_the_ones_served(wake_w):
    err = error_of(talk(wake_w.wyoming_port, [Detect(names=["alexa"])]))
    assert err.code == "bad-name"
    assert "'alexa'" in err.text and "hey computer, okay computer" in err.text
    assert "WAKE_PHRASES" in err.text
