"""StreamingSpeechRecognition, StreamingTTSAgent and StreamingInterruptHandler as real
processes with the real engines (PocketSphinx, flite, aplay through ALSA's `file` plugin):
partial then final transcripts, bounded sessions, the first piece of speech before the rest,
playback to a file and to ALSA that stop_playback cuts, and barge-in stopping exactly the
playback it watches. Development voices only (flite rms, espeak-ng); docs/SPEECH.md."""
import base64
import socket
import time
import wave

import numpy as np
import pytest

from .conftest import (agent_env, b64, needs_espeak, needs_flite, needs_numpy, needs_stt, say,
                       spawn, stt, task)
from tests.host_tools import require_tool

pytestmark = needs_numpy
from unified_agents.builtin.speech import sentences, wav  # noqa: E402
from unified_agents.builtin.speech.scoring import word_error_rate  # noqa: E402
from unified_agents.builtin.speech.energy_vad import EnergyVAD  # noqa: E402
from unified_agents.builtin.speech.playback import Playback  # noqa: E402

COMMANDS = ["turn on the kitchen lights", "what time is it", "play some music",
            "turn off the radio"]
LONG = ("Here is the weather for today. It will be sunny in the morning, with clouds "
        "coming in after lunch. In the evening there may be some rain. Tomorrow looks "
        "much the same, a little warmer. Have a nice day.")


def pcm16k(wav_data: bytes) -> bytes:
    return wav.to_mono16k(wav.read(wav_data))[0].tobytes()


def ok(agent, body: dict) -> dict:
    status, out = task(agent, body)
    assert status == 200, out
    return out["result"]


def err(agent, body: dict, status: int) -> str:
    got, out = task(agent, body)
    assert got == status, out
    return out["error"]


def stream_chunks(agent, pcm: bytes, chunk_s: float = 0.25) -> tuple[list[dict], dict]:
    """Send `pcm` in chunks as a microphone would; (the partial answers, the final one)."""
    step = int(16000 * chunk_s) * 2
    partials, sid = [], None
    for i in range(0, len(pcm), step):
        body = {"type": "streaming_stt", "audio_chunk_b64": b64(pcm[i:i + step])}
        if sid:
            body["session"] = sid
        r = ok(agent, body)
        sid = r["session"]
        partials.append(r)
    return partials, ok(agent, {"type": "streaming_stt", "session": sid, "final": True})


# ------------------------------------------------------------------ recognition
@pytest.fixture(scope="module")
def sstt(spawn_module, stt):  # noqa: F811
    # the final answer's second pass goes to the module's STTService (the fleet finds it
    # through the registry; here there is none)
    return spawn_module("StreamingSpeechRecognition", agent_env(
        spawn_module, "streaming_speech_recognition", STREAM_STT_MAX_SESSIONS=2,
        STREAM_STT_IDLE_S=2, STREAM_STT_MAX_AUDIO_S=8, STREAM_STT_MAX_CHUNK_S=4,
        STREAM_STT_WHOLE_URL=stt.url("")), notify=False)


@needs_stt
@needs_flite
def test_partial_hypotheses_come_while_audio_arrives_then_the_final_with_words(sstt, tts):
    audio = pcm16k(say(tts, "turn on the kitchen lights"))
    partials, final = stream_chunks(sstt, audio)
    assert len(partials) >= 4 and all(not p["final"] for p in partials)
    # words are recognised before the audio ends: a partial before the last chunk has some
    assert any(p["partial"] for p in partials[:-1]), partials
    assert [p["audio_s"] for p in partials] == sorted(p["audio_s"] for p in partials)
    assert final["final"] is True and final["text"] == "turn on the kitchen lights", final
    assert [w["word"] for w in final["words"]] == final["text"].split()
    assert all(0 <= w["start_s"] < w["end_s"] <= final["audio_s"] + 0.01 for w in final["words"])
    assert final["engine"] == "pocketsphinx" and final["rtf"] > 0
    assert 0 < final["confidence"] <= 1


@needs_stt
@needs_flite
def test_streamed_commands_are_recognised_about_as_well_as_whole_files(sstt, tts):
    # incremental decoding normalises the cepstrum live, not over the whole file: a little
    # worse than STTService (docs/SPEECH.md, Streaming), never garbage
    pairs = [(t, stream_chunks(sstt, pcm16k(say(tts, t)), 0.1)[1]["text"]) for t in COMMANDS]
    assert word_error_rate(pairs) <= 0.25, pairs


def _narrow_band(pcm: bytes) -> bytes:
    """Telephone-band audio: 16 kHz → 8 kHz → 16 kHz (nothing above 4 kHz)."""
    x = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    y = wav.resample(wav.resample(x, 16000, 8000), 8000, 16000)
    return np.clip(np.round(y * 32768), -32768, 32767).astype("<i2").tobytes()


def stream_opts(agent, pcm: bytes, **opening) -> dict:
    """The final answer for `pcm` sent in 0.1 s chunks, `opening` on the first chunk."""
    sid = None
    for i in range(0, len(pcm), 3200):
        body = {"type": "streaming_stt", "audio_chunk_b64": b64(pcm[i:i + 3200])}
        body.update({"session": sid} if sid else opening)
        sid = ok(agent, body)["session"]
    return ok(agent, {"type": "streaming_stt", "session": sid, "final": True})


@needs_stt
@needs_flite
def test_the_final_answer_is_a_second_pass_over_the_whole_utterance(sstt, tts):
    # the live pass starts each utterance from the cepstral means of the ones before; after
    # wide-band speech, telephone-band speech is where that shows (docs/SPEECH.md, "Two
    # passes"): WER 25 % live, 11 % from STTService's pass, measured on these commands
    pairs: dict[str, list] = {"whole": [], "live": []}
    for text in COMMANDS + ["set a timer for five minutes", "what is the weather like today"]:
        pcm = pcm16k(say(tts, text))
        stream_opts(sstt, pcm)  # the wide-band utterance before
        narrow = _narrow_band(pcm)
        whole = stream_opts(sstt, narrow)
        assert whole["final_pass"] == "whole" and "live_text" in whole and whole["whole_s"] > 0
        assert [w["word"] for w in whole["words"]] == whole["text"].split()
        pairs["whole"].append((text, whole["text"]))
        stream_opts(sstt, pcm)
        live = stream_opts(sstt, narrow, final_pass="live")
        assert live["final_pass"] == "live" and "live_text" not in live
        pairs["live"].append((text, live["text"]))
    assert word_error_rate(pairs["whole"]) < word_error_rate(pairs["live"]) - 0.05, pairs


@needs_stt
@needs_flite
def test_without_stt_service_the_final_answer_is_the_live_pass_and_says_why(spawn, tts):  # noqa: F811
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    a = spawn("StreamingSpeechRecognition", agent_env(
        spawn, "streaming_speech_recognition", STREAM_STT_WHOLE_URL=f"http://127.0.0.1:{port}"),
        notify=False)
    final = stream_opts(a, pcm16k(say(tts, "turn off the radio")))
    assert final["final_pass"] == "live" and "Connection" in final["whole_error"], final
    assert final["text"] and "live_text" not in final
    assert a.request("GET", "/health", health=True)[0] == 200


@needs_stt
def test_a_session_that_asks_for_denoising_reports_the_noise_it_heard(sstt):
    # steady white noise at -40 dBFS streamed in 0.1 s chunks: the filter's estimate is the
    # room's level (within 2 dB)
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(16000 * 3) * 32768 * 10 ** (-40 / 20)).astype("<i2").tobytes()
    sid = None
    for i in range(0, len(noise), 3200):
        body = {"type": "streaming_stt", "audio_chunk_b64": b64(noise[i:i + 3200])}
        body.update({"session": sid} if sid else {"denoise": "wiener", "final_pass": "live"})
        sid = ok(sstt, body)["session"]
    final = ok(sstt, {"type": "streaming_stt", "session": sid, "final": True})
    assert final["denoise"] == "wiener" and final["final_pass"] == "live", final
    assert abs(final["noise_dbfs"] + 40) <= 2, final
    default = stream_chunks(sstt, noise, 0.1)[1]  # off unless asked: nothing estimated
    assert default["denoise"] == "none" and "noise_dbfs" not in default


@needs_stt
def test_a_session_keeps_the_noise_reduction_it_was_opened_with(sstt):
    chunk = b64(bytes(3200))
    sid = ok(sstt, {"type": "streaming_stt", "audio_chunk_b64": chunk, "denoise": "none"})["session"]
    assert ok(sstt, {"type": "streaming_stt", "session": sid, "audio_chunk_b64": chunk,
                     "denoise": "none"})["final"] is False  # repeating the choice is fine
    msg = err(sstt, {"type": "streaming_stt", "session": sid, "denoise": "wiener"}, 400)
    assert '"denoise"=\'wiener\', but session' in msg and 'opened with "none"' in msg
    assert ok(sstt, {"type": "streaming_stt", "session": sid, "final": True})["denoise"] == "none"
    msg = err(sstt, {"type": "streaming_stt", "audio_chunk_b64": chunk, "denoise": "rnnoise"}, 400)
    assert "allowed: wiener, none" in msg
    msg = err(sstt, {"type": "streaming_stt", "audio_chunk_b64": chunk, "final_pass": "x"}, 400)
    assert "allowed: whole, live" in msg
    assert len(sstt.request("GET", "/health", health=True)[1]["sessions"]) and \
        sstt.request("GET", "/health", health=True)[1]["sessions"]["open"] == 0


@needs_stt
def test_sessions_are_bounded_in_number_with_429_and_retry_after(sstt):
    silence = b64(bytes(3200))
    a = ok(sstt, {"type": "streaming_stt", "audio_chunk_b64": silence})["session"]
    b = ok(sstt, {"type": "streaming_stt", "audio_chunk_b64": silence})["session"]
    status, out, headers = sstt.request("POST", "/task", {"type": "streaming_stt"})
    assert status == 429 and "STREAM_STT_MAX_SESSIONS" in out["error"], out
    assert 1 <= int(headers["Retry-After"]) <= 2
    assert ok(sstt, {"type": "streaming_stt", "session": a, "final": True})["text"] == ""
    c = ok(sstt, {"type": "streaming_stt"})["session"]  # a's decoder is free again
    for sid in (b, c):
        ok(sstt, {"type": "streaming_stt", "session": sid, "final": True})


@needs_stt
def test_a_second_decoder_is_loaded_only_when_two_sessions_overlap(spawn):  # noqa: F811
    # each decoder is ~0.4 s of CPU and ~80 MB: the start loads one (BENCHMARKS.md)
    a = spawn("StreamingSpeechRecognition", agent_env(
        spawn, "streaming_speech_recognition", STREAM_STT_MAX_SESSIONS=3), notify=False)

    def loaded():
        return a.request("GET", "/health", health=True)[1]["sessions"]["decoders_loaded"]

    assert loaded() == 1
    one = ok(a, {"type": "streaming_stt"})["session"]
    ok(a, {"type": "streaming_stt", "session": one, "final": True})
    two = ok(a, {"type": "streaming_stt"})["session"]  # the same decoder, free again
    assert loaded() == 1
    three = ok(a, {"type": "streaming_stt"})["session"]  # overlaps: a second one
    assert loaded() == 2
    final = ok(a, {"type": "streaming_stt", "session": three, "final": True})
    assert final["text"] == "" and final["final"] is True
    ok(a, {"type": "streaming_stt", "session": two, "final": True})
    assert a.request("GET", "/health", health=True)[1]["sessions"]["max"] == 3


@needs_stt
def test_an_idle_session_expires_and_gives_its_decoder_back(sstt):
    sids = [ok(sstt, {"type": "streaming_stt"})["session"] for _ in range(2)]
    time.sleep(2.5)  # STREAM_STT_IDLE_S=2
    assert "expired: idle for more than 2 s" in err(
        sstt, {"type": "streaming_stt", "session": sids[0]}, 404)
    new = [ok(sstt, {"type": "streaming_stt"})["session"] for _ in range(2)]
    for sid in new:
        ok(sstt, {"type": "streaming_stt", "session": sid, "final": True})
    health = sstt.request("GET", "/health", health=True)[1]
    assert health["sessions"]["open"] == 0 and health["sessions"]["expired"] >= 2, health


@needs_stt
def test_a_session_past_the_audio_limit_is_413_and_closed(sstt):
    sid = ok(sstt, {"type": "streaming_stt", "audio_chunk_b64": b64(bytes(4 * 32000))})["session"]
    ok(sstt, {"type": "streaming_stt", "session": sid, "audio_chunk_b64": b64(bytes(3 * 32000))})
    assert "STREAM_STT_MAX_AUDIO_S" in err(sstt, {"type": "streaming_stt", "session": sid,
                                                  "audio_chunk_b64": b64(bytes(2 * 32000))}, 413)
    assert "unknown" in err(sstt, {"type": "streaming_stt", "session": sid}, 404)


@needs_stt
@pytest.mark.parametrize("body,status,words", [
    ({"audio_chunk_b64": b64(b"\x00\x01\x02")}, 400, "odd number"),
    ({"audio_chunk_b64": "not base64!"}, 400, "not valid base64"),
    ({"audio_chunk_b64": b64(bytes(5 * 32000))}, 413, "STREAM_STT_MAX_CHUNK_S"),
    ({"session": "0123abcd"}, 404, "is unknown"),
    ({"session": 7}, 400, "allowed: the id"),
    ({"final": "yes"}, 400, '"final"'),
])
def test_bad_chunks_are_clear_4xx_and_the_agent_stays_healthy(sstt, body, status, words):
    assert words in err(sstt, {"type": "streaming_stt", **body}, status)
    assert sstt.request("GET", "/health", health=True)[0] == 200


@needs_stt
def test_streaming_health_names_engine_model_version_and_sessions(sstt):
    h = sstt.request("GET", "/health", health=True)[1]
    assert h["implementation"] == "builtin" and h["engine"] == "pocketsphinx"
    assert h["model"] == "/usr/share/pocketsphinx/model/en-us" and h["engine_version"]
    assert h["sessions"]["max"] == 2 and "16000 Hz" in h["chunk_format"]
    assert h["denoise"] == "none" and h["final_pass"] == "whole"
    assert h["whole_via"].startswith("http://127.0.0.1:")  # the module's STTService


# ------------------------------------------------------------------ synthesis and playback
@pytest.fixture(scope="module")
def play_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("playback")


@pytest.fixture(scope="module")
def stts(spawn_module, play_dir):  # noqa: F811
    return spawn_module("StreamingTTSAgent", agent_env(
        spawn_module, "streaming_tts", TTS_ENGINE="flite", TTS_VOICE="rms", TTS_MAX_CHARS=600,
        STREAM_TTS_SINK="file", STREAM_TTS_FILE_DIR=play_dir, STREAM_TTS_MAX_STREAMS=4),
        notify=False)


@pytest.fixture(scope="module")
def stts_alsa(spawn_module, play_dir):  # noqa: F811
    require_tool("aplay")
    return spawn_module("StreamingTTSAgent", agent_env(
        spawn_module, "streaming_tts", TTS_ENGINE="flite", TTS_VOICE="rms",
        STREAM_TTS_SINK="alsa",
        STREAM_TTS_ALSA_DEVICE=f"file:FILE={play_dir}/alsa-{{playback_id}}.raw,FORMAT=raw"),
        notify=False)


def wait_state(agent, pid: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = ok(agent, {"type": "playback_status", "playback_id": pid})
        if st["state"] != "playing" or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def wav_seconds(path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def test_text_is_cut_into_sentences_and_the_first_piece_short():
    assert sentences.split("Hello there. How are you? Fine!") == \
        ["Hello there.", "How are you?", "Fine!"]
    long = ("When the sun goes down over the hills, the birds stop singing, the wind turns "
            "cold, and everyone goes back inside.")
    pieces = sentences.split(long)
    assert " ".join(pieces) == long and len(pieces) > 1
    assert len(pieces[0].split()) <= 10
    # no comma: the first piece is cut before a word that starts a phrase
    assert sentences.split("the weather today will be mostly sunny with a light breeze from "
                           "the west") == ["the weather today will be mostly sunny",
                                           "with a light breeze from the west"]
    numbers = "one two three four five six seven eight nine ten eleven twelve"
    assert sentences.split(numbers) == [numbers]  # nowhere to cut: whole
    assert sentences.split(f"Hi. {numbers} and {numbers}.") == \
        ["Hi.", f"{numbers} and {numbers}."]  # only the first piece is cut short


@needs_flite
def test_the_first_piece_comes_back_before_the_rest_is_synthesised(stts):
    r = ok(stts, {"type": "streaming_tts", "text": LONG, "play": False})
    assert r["playback_id"] is None and r["chunks"] == len(sentences.split(LONG)) >= 4
    first = r["chunk"]
    assert first["index"] == 0 and first["text"] == "Here is the weather for today."
    assert first["sample_rate"] == 16000 and not first["last"]
    pieces = [first] + [ok(stts, {"type": "streaming_tts_chunk", "stream_id": r["stream_id"],
                                  "index": i}) for i in range(1, r["chunks"])]
    assert [p["index"] for p in pieces] == list(range(r["chunks"])) and pieces[-1]["last"]
    # the answer waited for one piece of several: the rest was synthesised after it
    assert first["synth_s"] < sum(p["synth_s"] for p in pieces)
    assert r["first_audio_s"] < sum(p["synth_s"] for p in pieces)
    total = sum(wav.read(base64.b64decode(p["audio_wav_b64"])).seconds for p in pieces)
    assert total == pytest.approx(sum(p["audio_s"] for p in pieces), abs=0.01)
    assert total > 8


@needs_flite
def test_a_playback_to_the_file_sink_plays_every_piece(stts, play_dir):
    r = ok(stts, {"type": "streaming_tts", "text": "Two short sentences. Played in full."})
    pid = r["playback_id"]
    st = wait_state(stts, pid)
    assert st["state"] == "finished" and st["sink"] == "file", st
    audio_s = r["chunk"]["audio_s"] + ok(stts, {"type": "streaming_tts_chunk", "stream_id":
                                                r["stream_id"], "index": 1})["audio_s"]
    assert wav_seconds(play_dir / f"{pid}.wav") == pytest.approx(audio_s, abs=0.03)
    assert st["played_s"] == pytest.approx(audio_s, abs=0.03)


@needs_flite
def test_stop_playback_cuts_exactly_that_playback(stts, play_dir):
    a = ok(stts, {"type": "streaming_tts", "text": LONG})["playback_id"]
    b = ok(stts, {"type": "streaming_tts", "text": "The other playback. It keeps playing."})
    time.sleep(1.0)
    stop = ok(stts, {"type": "stop_playback", "playback_id": a})
    assert stop["stopped"] is True and stop["state"] == "stopped", stop
    assert 0.5 < stop["played_s"] < 8
    assert wait_state(stts, b["playback_id"])["state"] == "finished"
    assert ok(stts, {"type": "playback_status", "playback_id": a})["state"] == "stopped"
    # the file holds what was played up to the stop, not the text's 10+ s
    assert wav_seconds(play_dir / f"{a}.wav") == pytest.approx(stop["played_s"], abs=0.03)
    again = ok(stts, {"type": "stop_playback", "playback_id": a})
    assert again["stopped"] is False and again["state"] == "stopped"


@needs_flite
def test_playback_through_alsa_writes_the_file_plugin_and_stops(stts_alsa, play_dir):
    r = ok(stts_alsa, {"type": "streaming_tts", "text": "Played through ALSA."})
    st = wait_state(stts_alsa, r["playback_id"])
    assert st["state"] == "finished" and st["sink"] == "alsa", st
    raw = play_dir / f"alsa-{r['playback_id']}.raw"
    assert raw.stat().st_size / 32000 == pytest.approx(r["chunk"]["audio_s"], abs=0.03)
    got = np.frombuffer(raw.read_bytes(), "<i2")
    sent = np.frombuffer(base64.b64decode(r["chunk"]["audio_wav_b64"])[44:], "<i2")
    assert np.array_equal(got[:len(sent)], sent)  # the samples, unchanged
    long = ok(stts_alsa, {"type": "streaming_tts", "text": LONG})["playback_id"]
    time.sleep(1.0)
    stop = ok(stts_alsa, {"type": "stop_playback", "playback_id": long})
    assert stop["stopped"] is True
    time.sleep(0.3)  # nothing more arrives after the stop
    size = (play_dir / f"alsa-{long}.raw").stat().st_size / 32000
    assert size <= stop["played_s"] + 0.01 and size > 0.5


@needs_flite
@pytest.mark.parametrize("body,status,words", [
    ({"type": "streaming_tts"}, 400, '"text"'),
    ({"type": "streaming_tts", "text": "x" * 601}, 413, "TTS_MAX_CHARS"),
    ({"type": "streaming_tts", "text": "hi", "voice": "nobody"}, 400, "allowed"),
    ({"type": "streaming_tts", "text": "hi", "play": "loud"}, 400, '"play"'),
    ({"type": "stop_playback", "playback_id": "feedbeef"}, 404, "unknown"),
    ({"type": "stop_playback"}, 400, '"playback_id"'),
    ({"type": "streaming_tts_chunk", "stream_id": "feedbeef", "index": 0}, 404, "unknown"),
])
def test_bad_streaming_tts_input_is_a_clear_4xx(stts, body, status, words):
    assert words in err(stts, body, status)
    assert stts.request("GET", "/health", health=True)[0] == 200


@needs_flite
def test_a_chunk_index_outside_the_stream_is_a_400(stts):
    r = ok(stts, {"type": "streaming_tts", "text": "One. Two.", "play": False})
    assert "allowed: 0-1" in err(stts, {"type": "streaming_tts_chunk",
                                        "stream_id": r["stream_id"], "index": 2}, 400)


# ------------------------------------------------------------------ barge-in
def test_the_energy_detector_finds_speech_onset_and_ignores_steady_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 600, 48000)  # 3 s at about -35 dBFS: above the threshold
    tone = 6000 * np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000)
    x = np.concatenate([noise, noise[:16000] + tone]).astype(np.int16)
    v = EnergyVAD(-40, 10, 150)
    assert not v.feed(x[:48000])  # noise alone: the floor rises to it, no run of 150 ms
    assert v.floor > -45
    assert v.feed(x[48000:])
    assert v.onset_frame == 300 and v.detected_frame == 315
    quiet = EnergyVAD(-40, 10, 150)  # a quiet room: the absolute threshold decides
    assert quiet.feed(np.concatenate([np.zeros(3200), tone]).astype(np.int16))
    assert quiet.onset_frame == 20 and quiet.floor < -100


def _int16(a) -> np.ndarray:
    """Float samples as 16-bit, clipped."""
    return np.clip(np.round(a), -32768, 32767).astype("<i2")


def _bursts(rng, seconds: float, level_dbfs: float):
    """Noise in syllable-like bursts, 200 ms on and 100 ms off: an assistant's reply."""
    n = int(16000 * seconds)
    x = rng.normal(0, 1, n) * ((np.arange(n) // 1600) % 3 != 2)
    return x * 32768 * 10 ** (level_dbfs / 20) / np.sqrt(np.mean(x * x))


def _heard_back(x, delay_s: float, gain_db: float, rng):
    """`x` through a speaker, a room (0.3 s of reverberation) and a microphone: delayed,
    smeared, `gain_db` under what was played."""
    h = rng.normal(0, 1, 4800) * np.exp(-np.arange(4800) / 700)
    h[0] = 3.0
    e = np.convolve(np.concatenate([np.zeros(int(16000 * delay_s)), x]), h)[:len(x)]
    return e * 10 ** (gain_db / 20) * np.sqrt(np.mean(x * x) / np.mean(e * e))


def _feed(v: EnergyVAD, mic, played=None) -> bool:
    for i in range(0, len(mic), 1600):
        ref = None if played is None else _int16(played[i:i + 1600])
        if v.feed(_int16(mic[i:i + 1600]), ref):
            return True
    return False


def test_with_what_was_played_as_reference_its_echo_is_no_barge_in_but_the_user_is():
    rng = np.random.default_rng(4)
    played = _bursts(rng, 8, -20)
    echo = _heard_back(played, 0.15, -15, rng) + rng.normal(0, 30, len(played))
    assert _feed(EnergyVAD(), echo)  # energy alone takes the assistant's own voice for the user
    v = EnergyVAD()
    assert not _feed(v, echo, played) and v.frames == 800
    assert -17 < v.echo_gain < -12  # learnt: the echo path's gain, 15 dB down
    user = np.zeros(len(played))
    user[80000:96000] = 4000 * np.sin(np.arange(16000) * 2 * np.pi * 300 / 16000)  # -21 dBFS
    v = EnergyVAD()
    assert _feed(v, echo + user, played)
    assert v.onset_frame >= 500 and v.detected_frame <= 560


def test_a_reference_must_cover_the_same_samples_on_every_chunk():
    v = EnergyVAD()
    with pytest.raises(ValueError, match="as many"):
        v.feed(np.zeros(1600, np.int16), np.zeros(800, np.int16))
    v.feed(np.zeros(1600, np.int16), np.zeros(1600, np.int16))
    with pytest.raises(ValueError, match="every chunk"):
        v.feed(np.zeros(1600, np.int16))


@pytest.fixture(scope="module")
def interrupt(spawn_module, stts):  # noqa: F811
    return spawn_module("StreamingInterruptHandler", agent_env(
        spawn_module, "streaming_interrupt",
        INTERRUPT_TTS_URL=f"http://127.0.0.1:{stts.port}"), notify=False)


def mic(agent, pid: str, pcm: bytes, chunk_s: float = 0.1, real_time: bool = True):
    """Send microphone audio in chunks; the answers."""
    step = int(16000 * chunk_s) * 2
    out = []
    for i in range(0, len(pcm), step):
        out.append(ok(agent, {"type": "interrupt", "playback_id": pid,
                              "audio_chunk_b64": b64(pcm[i:i + step])}))
        if real_time:
            time.sleep(chunk_s)
    return out


@needs_flite
@needs_espeak
def test_the_user_talking_over_a_playback_stops_it(stts, interrupt, tts, play_dir):
    user = pcm16k(say(tts, "stop, what time is it", voice="espeak-ng:en-us"))
    pid = ok(stts, {"type": "streaming_tts", "text": LONG})["playback_id"]
    room = np.random.default_rng(2).normal(0, 100, 16000).astype("<i2").tobytes()  # 1 s
    answers = mic(interrupt, pid, room + user)
    assert not any(a["barge_in"] for a in answers[:10])
    hit = next(a for a in answers if a["barge_in"])
    assert 1.0 <= hit["onset_s"] < hit["detected_s"] <= 1.6, hit
    assert hit["stop"]["stopped"] is True and hit["stop"]["playback_id"] == pid
    assert all(a["stop"] == hit["stop"] for a in answers[answers.index(hit):])  # stopped once
    st = ok(stts, {"type": "playback_status", "playback_id": pid})
    assert st["state"] == "stopped" and st["played_s"] < 4
    assert wav_seconds(play_dir / f"{pid}.wav") == pytest.approx(st["played_s"], abs=0.03)


@needs_flite
def test_quiet_room_noise_does_not_stop_the_playback(stts, interrupt):
    pid = ok(stts, {"type": "streaming_tts", "text": "A short answer. Heard in full."})[
        "playback_id"]
    room = np.random.default_rng(3).normal(0, 100, 32000).astype("<i2").tobytes()
    answers = mic(interrupt, pid, room, real_time=False)
    assert not any(a["barge_in"] for a in answers) and answers[-1]["stop"] is None
    assert wait_state(stts, pid)["state"] == "finished"


def test_interrupt_input_is_checked(interrupt):
    assert '"playback_id"' in err(interrupt, {"type": "interrupt"}, 400)
    assert "odd number" in err(interrupt, {"type": "interrupt", "playback_id": "p",
                                            "audio_chunk_b64": b64(b"\x00")}, 400)
    assert "not valid base64" in err(interrupt, {"type": "interrupt", "playback_id": "p",
                                                 "audio_chunk_b64": "%%"}, 400)


def test_an_interrupt_reference_is_checked_against_its_audio(interrupt):
    one = b64(bytes(3200))
    assert "as many" in err(interrupt, {"type": "interrupt", "playback_id": "r1",
                                        "audio_chunk_b64": one,
                                        "reference_chunk_b64": b64(bytes(1600))}, 400)
    r = ok(interrupt, {"type": "interrupt", "playback_id": "r2", "audio_chunk_b64": one,
                       "reference_chunk_b64": one})
    assert r["barge_in"] is False and r["echo_gain_db"] is None
    assert "every chunk" in err(interrupt, {"type": "interrupt", "playback_id": "r2",
                                            "audio_chunk_b64": one}, 400)
    assert ok(interrupt, {"type": "interrupt", "playback_id": "r3",
                          "audio_chunk_b64": one})["echo_gain_db"] is None


@needs_flite
def test_the_echo_of_a_playback_given_as_reference_does_not_stop_it(stts, interrupt):
    rng = np.random.default_rng(5)
    played = _bursts(rng, 3, -20)
    echo = _heard_back(played, 0.1, -12, rng)
    pid = ok(stts, {"type": "streaming_tts", "text": LONG})["playback_id"]
    mic_b, ref_b = _int16(echo).tobytes(), _int16(played).tobytes()
    for i in range(0, len(mic_b), 3200):
        r = ok(interrupt, {"type": "interrupt", "playback_id": pid,
                           "audio_chunk_b64": b64(mic_b[i:i + 3200]),
                           "reference_chunk_b64": b64(ref_b[i:i + 3200])})
        assert not r["barge_in"], r
    assert -15 < r["echo_gain_db"] < -9
    assert ok(stts, {"type": "playback_status", "playback_id": pid})["state"] == "playing"
    ok(stts, {"type": "stop_playback", "playback_id": pid})


class ListSink:
    kind = "list"

    def __init__(self):
        self.data = bytearray()

    def write(self, block: bytes) -> None:
        self.data += block

    def close(self) -> None:
        pass

    abort = close


def test_a_playback_says_what_sounded_over_the_last_moments():
    ramp = (np.arange(16000) % 20000 + 1).astype("<i2")  # 2 s at 8 kHz, no sample silent
    p = Playback("p1", ListSink(), 8000)
    p.feed(ramp.tobytes())
    p.end()
    time.sleep(1.0)
    heard = np.frombuffer(p.heard(0.5), "<i2")
    assert len(heard) == 4000 and heard.all()  # all of it sounded: 0.5-1.0 s in
    assert list(np.diff(heard.astype(int))) == [1] * 3999  # consecutive samples, in order
    assert 7000 <= heard[-1] <= 9600  # the last one ≈ 1 s in (pacing, 60 ms lead, sleep)
    p.stop()
    time.sleep(0.6)
    assert not np.frombuffer(p.heard(0.5), "<i2").any()  # stopped: nothing sounds


def _played(stts, r: dict) -> np.ndarray:
    """Every piece of a stream, as the playback plays them (16-bit samples at their rate)."""
    pieces = [r["chunk"]] + [ok(stts, {"type": "streaming_tts_chunk", "stream_id": r["stream_id"],
                                       "index": i}) for i in range(1, r["chunks"])]
    return np.concatenate([np.frombuffer(base64.b64decode(c["audio_wav_b64"])[44:], "<i2")
                           for c in pieces]).astype(np.float64)


@needs_flite
@needs_espeak
def test_with_its_own_playback_as_reference_the_echo_does_not_stop_it_but_the_user_does(
        stts, interrupt, tts):
    r = ok(stts, {"type": "streaming_tts", "text": LONG})
    t_play, pid = time.monotonic(), r["playback_id"]
    played = _played(stts, r)  # flite slt at 16 kHz: the agent's default voice
    assert r["chunk"]["sample_rate"] == 16000
    gain = 10 ** (-12 / 20)  # the echo 12 dB under what was played, 100 ms late
    user = np.frombuffer(pcm16k(say(tts, "stop, what time is it", voice="espeak-ng:en-us")),
                         "<i2").astype(np.float64)
    user *= np.sqrt(np.mean(played ** 2) / np.mean(user ** 2))  # as loud as the playback
    heard_user, answers, user_from = 0, [], None
    while heard_user < len(user) and not (answers and answers[-1]["barge_in"]):
        time.sleep(0.1)
        t = time.monotonic() - t_play  # the microphone took the last 100 ms of the room
        a, b = int((t - 0.2) * 16000), int((t - 0.1) * 16000)
        mic = played[max(a, 0):max(b, 0)] * gain
        mic = np.concatenate([np.zeros(1600 - len(mic)), mic])
        if t > 3.0:  # the user talks over the playback from 3 s on
            if user_from is None:  # in the microphone's time: chunks sent so far
                user_from = answers[-1]["audio_s"]
            part = user[heard_user:heard_user + 1600]
            mic[:len(part)] += part
            heard_user += len(part)
        answers.append(ok(interrupt, {"type": "interrupt", "playback_id": pid,
                                      "audio_chunk_b64": b64(_int16(mic).tobytes()),
                                      "reference": "playback"}))
        if t <= 3.0:
            assert not answers[-1]["barge_in"], answers[-1]  # the echo alone: no barge-in
    hit = answers[-1]
    assert hit["barge_in"] and hit["onset_s"] >= user_from and hit["stop"]["stopped"] is True, hit
    assert -16 < hit["echo_gain_db"] < -8


def test_a_reference_is_one_kind_or_the_other(interrupt):
    one = b64(bytes(3200))
    assert "allowed: \"playback\"" in err(interrupt, {"type": "interrupt", "playback_id": "k1",
                                                      "audio_chunk_b64": one,
                                                      "reference": "speaker"}, 400)
    assert "no \"reference_chunk_b64\"" in err(
        interrupt, {"type": "interrupt", "playback_id": "k1", "audio_chunk_b64": one,
                    "reference": "playback", "reference_chunk_b64": one}, 400)
    r = ok(interrupt, {"type": "interrupt", "playback_id": "0000gone", "audio_chunk_b64": one,
                       "reference": "playback"})  # a playback that is gone plays nothing
    assert r["barge_in"] is False


def test_speech_over_a_playback_that_is_gone_stops_nothing(interrupt):
    tone = (8000 * np.sin(np.arange(8000) * 2 * np.pi * 200 / 16000)).astype("<i2")
    r = mic(interrupt, "0000feed", bytes(6400) + tone.tobytes(), real_time=False)[-1]
    assert r["barge_in"] is True and r["stop"]["stopped"] is False
    assert "unknown" in r["stop"]["error"]
