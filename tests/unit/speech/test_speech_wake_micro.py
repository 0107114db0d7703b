"""WakeWordDetector with WAKE_ENGINE=microwakeword (PyPI pymicro-wakeword's shipped models),
as a real process: the phrase is detected and the command starts where it ends, other speech
is not a detection, /health names engine, models and cutoffs, and a phrase it has no model
for, a bad cutoff or a missing engine fail the start in one line. Audio from espeak-ng (the
development voices); the evaluation voices are bench/bench_wake.py's (flite)."""
import numpy as np
import pytest

from tests.host_tools import require_module
from .conftest import agent_env, b64, needs_espeak, needs_numpy, task
from .test_speech_wake import clip, speak

pytestmark = [needs_numpy]


@pytest.fixture(scope="module")
def micro(spawn_module):
    require_module("pymicro_wakeword")
    return spawn_module("WakeWordDetector", agent_env(
        spawn_module, "wake_word_detector", WAKE_ENGINE="microwakeword",
        WAKE_PHRASES="hey jarvis, okay nabu", WAKE_MAX_AUDIO_S=20), notify=False)


@pytest.fixture(scope="module")
def espeak():
    import shutil

    from unified_agents.builtin.speech import tts
    path = shutil.which("espeak-ng")
    return tts.EspeakNG(path) if path else None


def spot(agent, data: bytes) -> dict:
    status, out = task(agent, {"type": "wake_word", "audio_wav_b64": b64(data)})
    assert status == 200, out
    return out["result"]


@needs_espeak
# espeak-ng's formant voices are far from the models' training voices: each phrase with a
# development voice it is heard in (the evaluation voices, flite's, are bench_wake.py's)
@pytest.mark.parametrize("phrase, voice", [("hey jarvis", "en-us+f4"), ("okay nabu", "en-us")])
def test_each_model_detects_its_phrase_and_the_command_follows_its_end(micro, espeak, phrase,
                                                                       voice):
    said = speak(espeak, phrase, voice)
    data, (at, command_at) = clip(1.0, said, 0.3, speak(espeak, "what time is it", voice),
                                  0.5)
    r = spot(micro, data)
    assert r["detected"] is True and r["phrase"] == phrase, r
    assert [d["phrase"] for d in r["detections"]] == [phrase], r
    # the model fires as the phrase ends: before the command is under way
    assert at < r["end_s"] <= command_at + 0.3, (r, at, command_at)
    assert abs(r["at_s"] - at) <= 0.3, (r["at_s"], at)
    assert 0 < r["score"] <= 1 and r["engine"] == "microwakeword", r


@needs_espeak
def test_speech_without_a_wake_phrase_is_not_a_detection(micro, espeak):
    data, _ = clip(0.5, speak(espeak, "hey there, turn on the kitchen lights", "en-us"), 0.5,
                   speak(espeak, "okay, what is the weather like today", "en-us"), 0.5)
    r = spot(micro, data)
    assert r["detected"] is False and r["detections"] == [], r


def test_silence_is_no_detection(micro):
    from unified_agents.builtin.speech import wav
    r = spot(micro, wav.write(np.zeros(16000 * 2, "<i2"), 16000))
    assert r["detected"] is False and "silent" in r["warnings"][0], r


def test_health_names_the_engine_its_models_and_their_cutoffs(micro):
    status, h, _ = micro.request("GET", "/health", health=True)
    assert status == 200, h
    assert h["engine"] == "microwakeword" and h["engine_version"].startswith("pymicro-wakeword")
    assert [p["phrase"] for p in h["phrases"]] == ["hey jarvis", "okay nabu"], h
    assert all(0 < p["threshold"] < 1 for p in h["phrases"]), h


def _start_fails(spawn, **env):
    a = spawn("WakeWordDetector", agent_env(spawn, "wake_word_detector",
                                            **{"WAKE_ENGINE": "microwakeword", **env}),
              wait_ready=False)
    return a.wait_exit(30), a.stderr().strip().splitlines()


@pytest.mark.parametrize("env, words", [
    ({"WAKE_PHRASES": "okay computer"},
     "WAKE_PHRASES='okay computer' is invalid for WAKE_ENGINE=microwakeword: 'okay computer' "
     "is not a model it ships; allowed: comma-separated, of alexa, hey jarvis, hey mycroft, "
     "okay nabu"),
    ({"WAKE_CUTOFF": "2"}, "WAKE_CUTOFF='2' is invalid; allowed: a probability 0.01-0.999"),
    ({"WAKE_ENGINE": "snowboy"},
     "WAKE_ENGINE='snowboy' is invalid; allowed: pocketsphinx, microwakeword"),
])
def test_a_bad_setting_fails_the_start_in_one_line(spawn, env, words):
    require_module("pymicro_wakeword")
    rc, lines = _start_fails(spawn, **env)
    assert rc == 2 and len(lines) == 1 and words in lines[0], lines


def test_a_missing_engine_fails_the_start_naming_the_package(spawn, tmp_path):
    # a machine without it: first on the path, a module of that name whose import fails
    hide = tmp_path / "hide" / "pymicro_wakeword"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError(\"No module named 'pymicro_wakeword'\")\n")
    env = agent_env(spawn, "wake_word_detector", WAKE_ENGINE="microwakeword",
                    WAKE_VENDOR_DIR=str(tmp_path / "empty"))
    env["PYTHONPATH"] = f"{hide.parent}:{env['PYTHONPATH']}"
    a = spawn("WakeWordDetector", env, wait_ready=False)
    rc, lines = a.wait_exit(30), a.stderr().strip().splitlines()
    assert rc == 2 and len(lines) == 1, lines
    assert ("install it: pip install --no-deps pymicro-wakeword==2.5.0 "
            "pymicro-features==2.0.2") in lines[0] and "WAKE_ENGINE=pocketsphinx" in lines[0]


def test_a_wyoming_satellite_streaming_its_microphone_gets_the_detection(spawn, espeak):
    """The same Wyoming "wake" domain over this engine: it is streaming by nature, so the
    detection comes as the phrase ends, not at a window's decode."""
    from wyoming.wake import Detection

    from ..sdk.harness import free_port
    from .test_speech_wyoming import talk
    from .test_speech_wyoming_wake import stream

    require_module("pymicro_wakeword")
    port = free_port()
    spawn("WakeWordDetector", agent_env(spawn, "wake_word_detector",
                                        WAKE_ENGINE="microwakeword", WAKE_PHRASES="okay nabu",
                                        WYOMING_PORT=port), notify=False)
    data, (at, _) = clip(1.5, speak(espeak, "okay nabu", "en-us"), 0.3,
                         speak(espeak, "what time is it", "en-us"), 1.0)
    got = talk(port, stream(data), until=("detection", "not-detected"))
    assert [e.type for e in got] == ["detection"], got
    d = Detection.from_event(got[0])
    assert d.name == "okay nabu" and abs(d.timestamp / 1000 - at) < 0.3, (d, at)
    data, _ = clip(0.5, speak(espeak, "turn on the kitchen lights", "en-us"), 0.5)
    got = talk(port, stream(data), until=("not-detected",))
    assert [e.type for e in got] == ["not-detected"], got
