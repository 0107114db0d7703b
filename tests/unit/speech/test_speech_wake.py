"""WakeWordDetector as a real process with the real engine (PocketSphinx keyphrase search):
a wake phrase before a command is detected where it was placed, speech without it and silence
are not detections, every detection is listed, bad input is a clear 4xx while the agent stays
healthy, /health names the phrases, and bad phrase settings are a failed start (exit 2, one
line naming the setting). Audio comes from espeak-ng, the wake word's development voices; the
evaluation voices (flite slt/kal/awb/rms) are only in bench/bench_wake.py."""
import numpy as np
import pytest

from .conftest import agent_env, b64, needs_espeak, needs_numpy, needs_stt, task, wav_bytes
from .test_speech_agents import refused_and_healthy

pytestmark = [needs_numpy, needs_stt]
from unified_agents.builtin.speech import tts, wav  # noqa: E402
from unified_agents.builtin.speech.wake import (PhrasesError, merge,  # noqa: E402
                                                 parse_phrases)

# espeak-ng's formant voices are hard for the acoustic model: of the development voices, the
# female variants f2/f4 are spotted at 1e-60, more permissive than the catalog's default
# (docs/SPEECH.md, "WakeWordDetector")
PHRASES = "hey computer=1e-60,okay computer"
THRESHOLD = "1e-60"
VOICE = "en-us+f2"


@pytest.fixture(scope="module")
def wake(spawn_module):
    return spawn_module("WakeWordDetector", agent_env(
        spawn_module, "wake_word_detector", WAKE_PHRASES=PHRASES, WAKE_THRESHOLD=THRESHOLD,
        WAKE_MAX_AUDIO_S=20),
        notify=False)


@pytest.fixture(scope="module")
def espeak():
    import shutil

    path = shutil.which("espeak-ng")
    return tts.EspeakNG(path) if path else None


def speak(espeak, text: str, voice: str = VOICE):
    """16 kHz int16 samples of espeak-ng saying text."""
    return wav.to_mono16k(wav.read(espeak.synthesize(text, voice, 1.0, 1.0, 30)))[0]


def clip(*parts):
    """Concatenate samples and silences (numbers, seconds): (WAV bytes, where each spoken
    part starts, in seconds)."""
    out, starts, t = [], [], 0.0
    for p in parts:
        if isinstance(p, (int, float)):
            out.append(np.zeros(int(p * 16000), "<i2"))
            t += p
        else:
            starts.append(t + wav.onset_s(p))
            out.append(p)
            t += len(p) / 16000
    return wav.write(np.concatenate(out), 16000), starts


def spot(agent, data: bytes) -> dict:
    status, out = task(agent, {"type": "wake_word", "audio_wav_b64": b64(data)})
    assert status == 200, out
    return out["result"]


@needs_espeak
@pytest.mark.parametrize("voice", ["en-us+f2", "en-us+f4"])
def test_a_wake_phrase_before_a_command_is_detected_where_it_was_placed(wake, espeak, voice):
    data, (at, _) = clip(1.2, speak(espeak, "hey computer", voice), 0.3,
                         speak(espeak, "what time is it", voice), 0.5)
    r = spot(wake, data)
    assert r["detected"] is True and r["phrase"] == "hey computer", r
    assert abs(r["at_s"] - at) <= 0.3, (r["at_s"], at)
    assert r["at_s"] < r["end_s"] <= r["audio_s"]
    assert -1 < r["score"] <= 0
    assert r["engine"] == "pocketsphinx-kws" and r["rtf"] > 0 and r["warnings"] == []


@needs_espeak
def test_speech_without_the_wake_phrase_is_not_a_detection(wake, espeak):
    data, _ = clip(0.5, speak(espeak, "turn on the kitchen lights"), 0.5,
                   speak(espeak, "what is the weather like today"), 0.5)
    r = spot(wake, data)
    assert r["detected"] is False and r["detections"] == [], r
    assert r["phrase"] is None and r["at_s"] is None and r["score"] is None


@needs_espeak
def test_every_detection_is_listed_in_time_order(wake, espeak):
    data, (first, second) = clip(0.5, speak(espeak, "okay computer"), 1.5,
                                 speak(espeak, "hey computer"), 0.5)
    r = spot(wake, data)
    assert [d["phrase"] for d in r["detections"]] == ["okay computer", "hey computer"], r
    assert abs(r["detections"][0]["at_s"] - first) <= 0.3
    assert abs(r["detections"][1]["at_s"] - second) <= 0.3
    assert r["phrase"] == "okay computer" and r["at_s"] == r["detections"][0]["at_s"]


def test_silence_is_no_detection_and_a_warning(wake):
    r = spot(wake, wav_bytes(np.zeros(32000), 16000))
    assert r["detected"] is False and any("silent" in w for w in r["warnings"]), r


@pytest.mark.parametrize("body, status, words", [
    ({"type": "wake_word"}, 400, '"audio_wav_b64" is missing'),
    ({"type": "wake_word", "audio_wav_b64": "%%%"}, 400, "not valid base64"),
    ({"type": "wake_word", "audio_wav_b64": b64(b"not a wav at all")}, 400, "not a WAV file"),
    ({"type": "wake_word", "audio_wav_b64": b64(b"RIFF\x10\x00")}, 400, "truncated WAV header"),
    ({"type": "wake_word", "audio_wav_b64": b64(wav_bytes(np.zeros(0), 16000))}, 400,
     "0 samples"),
    ({"type": "wake_word", "audio_wav_b64": b64(wav_bytes(np.zeros(400), 4000))}, 400,
     "sample rate 4000 Hz is not supported"),
    ({"type": "wake_word", "audio_wav_b64": b64(wav_bytes(np.zeros(16000 * 30), 16000))}, 413,
     "audio is 30.0 s long; allowed: at most 20 s (WAKE_MAX_AUDIO_S)"),
])
def test_bad_audio_is_a_clear_4xx_and_the_agent_stays_healthy(wake, body, status, words):
    refused_and_healthy(wake, body, status, words)


def test_health_names_the_phrases_their_thresholds_and_the_engine(wake):
    status, h, _ = wake.request("GET", "/health", health=True)
    assert status == 200 and h["implementation"] == "builtin", h
    assert h["engine"] == "pocketsphinx-kws" and h["model"].endswith("/model/en-us")
    assert h["engine_version"] and h["checks"]["engine"] is True and h["model_load_s"] > 0
    assert [(p["phrase"], p["threshold"]) for p in h["phrases"]] == [
        ("hey computer", 1e-60), ("okay computer", 1e-60)]


def _start_fails(spawn, **env):
    a = spawn("WakeWordDetector", agent_env(spawn, "wake_word_detector", **env),
              wait_ready=False)
    return a.wait_exit(30), a.stderr().strip().splitlines()


def test_a_phrase_word_not_in_the_dictionary_fails_the_start_naming_word_and_setting(spawn):
    rc, lines = _start_fails(spawn, WAKE_PHRASES="hey zorblax")
    assert rc == 2 and len(lines) == 1, lines
    assert ("WAKE_PHRASES='hey zorblax' is invalid: the word(s) zorblax not in the "
            "pronunciation dictionary") in lines[0], lines


@pytest.mark.parametrize("env, words", [
    ({"WAKE_PHRASES": "hey computer=often"},
     "WAKE_PHRASES='hey computer=often' is invalid: entry 1 'hey computer=often' has "
     "threshold 'often'; allowed: a number 1e-80-1"),
    ({"WAKE_PHRASES": "hey computer,turn-on"}, "entry 2 'turn-on' is not a phrase"),
    ({"WAKE_THRESHOLD": "5"}, "WAKE_THRESHOLD='5' is invalid; allowed:"),
])
def test_a_bad_phrase_setting_fails_the_start_in_one_line(spawn, env, words):
    rc, lines = _start_fails(spawn, **env)
    assert rc == 2 and len(lines) == 1 and words in lines[0], lines


def test_a_missing_model_fails_the_start_naming_the_package(spawn):
    rc, lines = _start_fails(spawn, WAKE_MODEL_DIR="/nonexistent/en-us")
    assert rc == 2 and len(lines) == 1, lines
    assert "install the Debian package pocketsphinx-en-us" in lines[0]


def test_phrases_take_their_own_threshold_or_the_default():
    assert parse_phrases(" Hey  Computer = 1e-30 , okay computer", 1e-20) == [
        ("hey computer", 1e-30), ("okay computer", 1e-20)]
    assert parse_phrases("computer,computer=1e-5", 1e-20) == [("computer", 1e-5)]
    for bad in ("", " , ", "hey computer=0", "hey computer=nan", "a b c d e f g",
                ",".join("a" * i for i in range(1, 22))):   # 21 phrases
        with pytest.raises(PhrasesError):
            parse_phrases(bad, 1e-20)


def test_overlapping_detections_are_one_detection_with_the_best_score():
    found = [{"phrase": "a", "at_s": 1.0, "end_s": 1.6, "score": -0.12},
             {"phrase": "a", "at_s": 1.1, "end_s": 1.7, "score": -0.09},
             {"phrase": "b", "at_s": 1.2, "end_s": 1.8, "score": -0.15},
             {"phrase": "b", "at_s": 3.0, "end_s": 3.5, "score": -0.2},
             {"phrase": "a", "at_s": 3.6, "end_s": 4.0, "score": -0.3}]
    assert merge(found) == [{"phrase": "a", "at_s": 1.1, "end_s": 1.7, "score": -0.09},
                            {"phrase": "b", "at_s": 3.0, "end_s": 3.5, "score": -0.2},
                            {"phrase": "a", "at_s": 3.6, "end_s": 4.0, "score": -0.3}]
