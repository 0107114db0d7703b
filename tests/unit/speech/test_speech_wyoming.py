"""STTService and TTSService speak Wyoming (Home Assistant's voice protocol), checked with the
PyPI `wyoming` library as the client, the one Home Assistant's Wyoming integration uses (a
test dependency: pip install wyoming; the shipped server is our own, agents/builtin/speech/
wyoming.py). Also: a second STTService/TTSService that uses the first one's Wyoming server as
its engine, an unreachable engine as a 503 naming its address, bad frames as an error event
while the agent serves on, and the catalog's port checks covering WYOMING_PORT."""
from __future__ import annotations

import asyncio
import io
import json
import socket
import time
import wave

import pytest

from unified_core.catalog import load_catalog
from unified_core.errors import CatalogInvalid

from ..sdk.harness import free_port
from .conftest import (agent_env, b64, needs_espeak, needs_flite, needs_numpy, needs_stt, say,
                       task)

pytestmark = needs_numpy
try:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop, wav_to_chunks
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.event import Event, read_event, write_event
    from wyoming.info import Describe, Info
    from wyoming.ping import Ping
    from wyoming.tts import Synthesize, SynthesizeVoice
except ImportError:  # a test dependency, not a Debian package: say how to get it
    pytest.fail("the PyPI package wyoming (the Wyoming client library) is missing: install it "
                "with scripts/dev/install_deps.sh (scripts/dev/host-tools: pypi:wyoming)",
                pytrace=False)

from unified_agents.builtin.speech import wyoming as ours  # noqa: E402

COMMAND = "turn on the kitchen lights"


# ----------------------------------------------------------------- the client side
def talk(port: int, events, until=("transcript", "audio-stop", "info", "pong")):
    """Send `events` with the PyPI client; the events read back, up to one of `until`, an
    error, or the end of the connection."""
    async def run():
        got = []
        async with AsyncTcpClient("127.0.0.1", port) as client:
            for e in events:
                await client.write_event(e if isinstance(e, Event) else e.event())
            while True:
                ev = await asyncio.wait_for(client.read_event(), 60)
                if ev is None:
                    return got
                got.append(ev)
                if ev.type in until or ev.type == "error":
                    return got
    return asyncio.run(run())


def transcribe_events(wav_data: bytes, **transcribe):
    with wave.open(io.BytesIO(wav_data)) as wf:
        return [Transcribe(**transcribe), *wav_to_chunks(wf, 1024, start_event=True,
                                                          stop_event=True)]


def raw_exchange(port: int, data: bytes) -> tuple[list[Event], bool]:
    """Bytes written as they are; (events read back, whether the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        f = s.makefile("rb")
        got = []
        while True:
            ev = read_event(f)
            if ev is None:
                return got, True
            got.append(ev)


def error_of(events) -> Error:
    assert events and Error.is_type(events[-1].type), events
    return Error.from_event(events[-1])


# ----------------------------------------------------------------- agents
@pytest.fixture(scope="module")
def stt_w(spawn_module):
    port = free_port()
    a = spawn_module("STTService", agent_env(spawn_module, "stt_service", STT_MAX_AUDIO_S=20,
                                             WYOMING_PORT=port), notify=False)
    a.wyoming_port = port
    return a


@pytest.fixture(scope="module")
def tts_w(spawn_module):
    port = free_port()
    a = spawn_module("TTSService", agent_env(spawn_module, "tts_service", TTS_ENGINE="flite",
                                             TTS_VOICE="rms", TTS_MAX_CHARS=300,
                                             WYOMING_PORT=port), notify=False)
    a.wyoming_port = port
    return a


def eventually(check, timeout: float = 10.0) -> None:
    """A counter the server bumps when the client's connection has ended (after its answer)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within 10 s"
        time.sleep(0.05)


def healthy(agent) -> dict:
    status, h, _ = agent.request("GET", "/health", health=True)
    assert status == 200, h
    return h


# ----------------------------------------------------------------- wire format
def test_our_events_and_the_libraries_read_each_other():
    pcm = bytes(range(256)) * 4
    buf = io.BytesIO(ours.encode(ours.Event("audio-chunk", {"rate": 16000, "width": 2,
                                                            "channels": 1}, pcm)))
    ev = read_event(buf)
    assert ev.type == "audio-chunk" and ev.payload == pcm
    assert AudioChunk.from_event(ev).rate == 16000
    out = io.BytesIO()
    write_event(Synthesize("héllo", voice=SynthesizeVoice(name="slt")).event(), out)
    back = ours.read_event(io.BytesIO(out.getvalue()))
    assert back.type == "synthesize" and back.data["text"] == "héllo"
    assert back.data["voice"] == {"name": "slt"} and back.payload is None


@pytest.mark.parametrize("frame, words", [
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "JSON list"),
    (b'{"data": {}}\n', '"type"=None'),
    (b'{"type": "x", "data": 5}\n', '"data" of \'x\' is a JSON int'),
    (b'{"type": "x", "payload_length": -1}\n', '"payload_length"=-1'),
    (b'{"type": "x", "payload_length": 99999999999}\n', "allowed: an integer 0-4194304"),
    (b'{"type": "x", "data_length": 4}\n[1]\n', "not a JSON object"),
    (b'{"type": "x", "payload_length": 10}\nabc', "ended inside the event payload (3 of 10"),
    (b'{"type": "x"', "ended inside an event header"),
    (b"{" + b" " * (70 * 1024), "event header longer than 65536 bytes"),
])
def test_a_bad_frame_is_a_frame_error_naming_what_is_wrong(frame, words):
    with pytest.raises(ours.FrameError) as e:
        ours.read_event(io.BytesIO(frame))
    assert words in str(e.value)


# ----------------------------------------------------------------- STTService's server
@needs_stt
def test_describe_lists_the_installed_recogniser(stt_w):
    info = Info.from_event(talk(stt_w.wyoming_port, [Describe()])[-1])
    assert [p.name for p in info.asr] == ["STTService"] and not info.tts and not info.wake
    model = info.asr[0].models[0]
    assert model.name == "pocketsphinx-en-us" and model.installed and model.languages == ["en"]
    assert model.version == healthy(stt_w)["engine_version"]


@needs_stt
@needs_flite
def test_a_spoken_command_is_transcribed_over_wyoming(stt_w, tts_w):
    events = talk(stt_w.wyoming_port, transcribe_events(say(tts_w, COMMAND), language="en"))
    t = Transcript.from_event(events[-1])
    assert t.text == COMMAND and t.language == "en"
    # the same audio as a task: the same words (one recogniser behind both doors)
    status, out = task(stt_w, {"type": "stt", "audio_wav_b64": b64(say(tts_w, COMMAND))})
    assert status == 200 and out["result"]["text"] == t.text
    assert healthy(stt_w)["wyoming"]["port"] == stt_w.wyoming_port


@needs_stt
@needs_flite
def test_audio_without_a_transcribe_event_is_transcribed_too(stt_w, tts_w):
    events = transcribe_events(say(tts_w, "what time is it"))[1:]   # audio-start … stop only
    assert Transcript.from_event(talk(stt_w.wyoming_port, events)[-1]).text == "what time is it"


@needs_stt
def test_audio_over_the_limit_is_an_error_event_naming_the_setting(stt_w):
    second = AudioChunk(16000, 2, 1, bytes(32000)).event()
    events = talk(stt_w.wyoming_port, [Transcribe(), AudioStart(16000, 2, 1).event(),
                                       *[second] * 21, AudioStop().event()])
    e = error_of(events)
    assert e.code == "too-long" and "at most 20 s (STT_MAX_AUDIO_S)" in e.text
    healthy(stt_w)


@needs_stt
@pytest.mark.parametrize("events, code, words", [
    ([Transcribe(language="de")], "bad-language", "language 'de' is not served; allowed: en"),
    ([Transcribe(), AudioStart(4000, 2, 1)], "bad-audio", 'audio "rate"=4000; allowed: 8000'),
    ([Transcribe(), AudioStart(16000, 1, 1)], "bad-audio", 'audio "width"=1; allowed: 2, 3'),
    ([Transcribe(), AudioStart(16000, 2, 1), AudioChunk(16000, 2, 1, b"abc")], "bad-audio",
     "3 bytes is not whole samples"),
    ([Transcribe(), AudioStart(16000, 2, 1), AudioChunk(8000, 2, 1, b"ab")], "bad-audio",
     "differs from the stream's"),
    ([Transcribe(), AudioStop()], "bad-audio", "audio-stop without audio"),
    ([Transcribe(), AudioStart(16000, 2, 1), AudioStop()], "bad-request", "0 samples"),
])
def test_a_bad_request_is_an_error_event_and_the_agent_serves_on(stt_w, events, code, words):
    e = error_of(talk(stt_w.wyoming_port, events))
    assert e.code == code and words in e.text, e
    healthy(stt_w)
    assert talk(stt_w.wyoming_port, [Ping(text="still there")])[-1].data["text"] == "still there"


@needs_stt
def test_garbage_on_the_port_is_an_error_event_then_a_close(stt_w):
    events, closed = raw_exchange(stt_w.wyoming_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    e = error_of(events)
    assert closed and e.code == "bad-frame" and "not JSON" in e.text
    big, closed = raw_exchange(stt_w.wyoming_port,
                               b'{"type": "audio-chunk", "payload_length": 5000000}\n')
    assert closed and "allowed: an integer 0-4194304" in error_of(big).text
    before = healthy(stt_w)["wyoming"]["errors"]
    assert before >= 2


@needs_stt
def test_unknown_events_are_dropped_as_the_protocol_asks(stt_w):
    events = talk(stt_w.wyoming_port, [Event("select-program", {"name": "x"}),
                                       Event("made-up"), Describe()])
    assert [e.type for e in events] == ["info"]


# ----------------------------------------------------------------- TTSService's server
@needs_flite
def test_describe_lists_the_installed_voices_by_the_names_tasks_take(tts_w):
    info = Info.from_event(talk(tts_w.wyoming_port, [Describe()])[-1])
    assert [p.name for p in info.tts] == ["TTSService"] and not info.asr
    voices = {v.name: v for v in info.tts[0].voices}
    assert {"rms", "slt", "kal"} <= set(voices) and voices["rms"].languages == ["en-us"]
    assert all(v.installed and v.attribution.name for v in voices.values())


@needs_flite
def test_synthesize_streams_the_voice_as_16_bit_chunks(tts_w, stt_w):
    events = talk(tts_w.wyoming_port, [Synthesize(COMMAND, voice=SynthesizeVoice("rms"))])
    assert [e.type for e in events[:1] + events[-1:]] == ["audio-start", "audio-stop"]
    start = AudioStart.from_event(events[0])
    chunks = [AudioChunk.from_event(e) for e in events if e.type == "audio-chunk"]
    assert (start.rate, start.width, start.channels) == (16000, 2, 1) and len(chunks) > 5
    pcm = b"".join(c.audio for c in chunks)
    # the same speech as the task gives: transcribed back to the words
    status, out = task(stt_w, {"type": "stt", "audio_wav_b64": b64(
        ours.pcm_to_wav(pcm, 16000, 2, 1))})
    assert status == 200 and out["result"]["text"] == COMMAND, out


@needs_flite
@needs_espeak
def test_a_voice_asked_for_by_language_is_one_that_speaks_it(tts_w):
    events = talk(tts_w.wyoming_port, [Synthesize("guten Morgen",
                                                  voice=SynthesizeVoice(language="de"))])
    assert AudioStart.from_event(events[0]).rate == 22050   # espeak-ng's German voice
    events = talk(tts_w.wyoming_port, [Synthesize("hello", voice=SynthesizeVoice(
        language="en_US"))])
    assert AudioStart.from_event(events[0]).rate == 16000   # the default voice, flite rms


@needs_flite
@pytest.mark.parametrize("event, words", [
    (Synthesize("hi", voice=SynthesizeVoice("nosuch")), "no voice 'nosuch'"),
    (Synthesize("x" * 301), "301 characters; allowed: at most 300 (TTS_MAX_CHARS)"),
    (Synthesize(" \t "), '"text" is empty'),
    (Synthesize("hi", voice=SynthesizeVoice(language="xx")), "no voice speaks 'xx'"),
    (Event("synthesize", {"voice": {"name": "rms"}}), '"text" is missing'),
])
def test_a_bad_synthesize_is_an_error_event_with_the_tasks_words(tts_w, event, words):
    assert words in error_of(talk(tts_w.wyoming_port, [event])).text
    healthy(tts_w)


def test_connections_past_the_limit_and_idle_ones_are_told_why(spawn):
    port = free_port()
    a = spawn("TTSService", agent_env(spawn, "tts_service", TTS_ENGINE="flite",
                                      WYOMING_PORT=port, WYOMING_MAX_CONNECTIONS=1,
                                      WYOMING_IDLE_S=1))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as first:
        events, closed = raw_exchange(port, b"")
        assert closed and error_of(events).code == "busy"
        assert "WYOMING_MAX_CONNECTIONS" in error_of(events).text
        idle = read_event(first.makefile("rb"))      # the first one, silent for 1 s
        assert idle.type == "error" and idle.data["code"] == "timeout"
    assert healthy(a)["wyoming"]["refused"] == 1


# ----------------------------------------------------------------- a Wyoming service as engine
@needs_stt
@needs_flite
def test_a_second_stt_service_uses_the_first_ones_wyoming_server_as_engine(spawn, stt_w,
                                                                            tts_w):
    url = f"wyoming://127.0.0.1:{stt_w.wyoming_port}"
    second = spawn("STTService2", agent_env(spawn, "stt_service", STT_ENGINE=url))
    h = healthy(second)
    assert h["engine"] == "wyoming" and h["checks"]["engine"] == {"status": "ok",
                                                                  "address": url}
    assert h["model"] == f"STTService/pocketsphinx-en-us at {url}"
    served = healthy(stt_w)["wyoming"]["served"]
    status, out = task(second, {"type": "stt", "audio_wav_b64": b64(say(tts_w, COMMAND))})
    r = out["result"]
    assert status == 200 and r["text"] == COMMAND and r["engine"] == "wyoming", out
    assert r["confidence"] is None and r["words"] == [] and r["search"] == "remote"
    eventually(lambda: healthy(stt_w)["wyoming"]["served"] > served)  # through the first
    status, out = task(second, {"type": "stt", "audio_wav_b64": b64(say(tts_w, COMMAND)),
                                "phrases": ["what time is it"]})
    assert status == 400 and "need the local PocketSphinx engine" in out["error"]


@needs_flite
def test_a_second_tts_service_uses_the_first_ones_wyoming_server_as_engine(spawn, tts_w):
    url = f"wyoming://127.0.0.1:{tts_w.wyoming_port}"
    second = spawn("TTSService2", agent_env(spawn, "tts_service", TTS_ENGINE=url))
    status, out = task(second, {"type": "tts", "text": "good morning", "voice": "slt"})
    r = out["result"]
    assert status == 200 and r["engine"] == "wyoming" and r["voice"] == "slt", out
    assert r["sample_rate"] == 16000 and r["audio_s"] > 0.3
    status, out = task(second, {"type": "tts", "text": "hi", "rate": 1.5})
    assert status == 400 and "need a local engine" in out["error"]
    status, out = task(second, {"type": "tts", "text": "hi", "voice": "nosuch"})
    assert status == 502 and "answered an error" in out["error"] and "nosuch" in out["error"]
    h = healthy(second)
    assert h["engine"] == "wyoming" and h["checks"]["engine"]["address"] == url


def test_an_unreachable_engine_is_a_503_naming_its_address_not_a_fallback(spawn):
    url = f"wyoming://127.0.0.1:{free_port()}"
    a = spawn("STTService3", agent_env(spawn, "stt_service", STT_ENGINE=url))
    h = healthy(a)                                   # the agent runs; its engine is away
    assert h["status"] == "degraded" and h["engine"] == "wyoming"
    assert url in h["checks"]["engine"]["error"] and "unreachable" in h["checks"]["engine"]["error"]
    status, out = task(a, {"type": "stt", "audio_wav_b64": b64(ours.pcm_to_wav(
        bytes(3200), 16000, 2, 1))})
    assert status == 503 and f"the Wyoming service at {url} (STT_ENGINE) is unreachable" \
        in out["error"], out


# ----------------------------------------------------------------- settings
@pytest.mark.parametrize("module, env, rc, words", [
    ("stt_service", {"STT_ENGINE": "whisper"}, 2, "STT_ENGINE='whisper' is invalid; allowed: "
     "pocketsphinx, or wyoming://HOST:PORT"),
    ("stt_service", {"STT_ENGINE": "wyoming://nohost"}, 2, "allowed: wyoming://HOST:PORT"),
    ("tts_service", {"TTS_ENGINE": "wyoming:/x:1"}, 2, "allowed: wyoming://HOST:PORT"),
    ("tts_service", {"WYOMING_PORT": "80"}, 2, "WYOMING_PORT='80' is invalid; allowed: an "
     "integer 1024-65535"),
])
def test_a_bad_wyoming_setting_is_exit_2_naming_it(spawn, module, env, rc, words):
    a = spawn("Speech", agent_env(spawn, module, TTS_ENGINE=env.pop("TTS_ENGINE", "flite"),
                                  **env), wait_ready=False)
    assert a.wait_exit(30) == rc
    lines = a.stderr().strip().splitlines()   # (after "synthesiser ready", for a TTSService)
    assert words in lines[-1], lines


def test_a_wyoming_port_in_use_fails_the_start_naming_it(spawn):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        a = spawn("Speech", agent_env(spawn, "tts_service", TTS_ENGINE="flite",
                                      WYOMING_PORT=port), wait_ready=False)
        assert a.wait_exit(30) == 1
    assert f"cannot listen on 127.0.0.1:{port} (WYOMING_PORT)" in a.stderr()


def _catalog_with(tmp_path, stt_env: str):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "etc" / "unified" / "unified.yaml").read_text()
    old = "    environment: {WYOMING_PORT: 10310}\n"
    assert text.count(old) == 1
    p = tmp_path / "unified.yaml"
    p.write_text(text.replace(old, f"    environment: {{WYOMING_PORT: {stt_env}}}\n"))
    return load_catalog(str(p), dropins=False)


def test_the_catalogs_wyoming_ports_are_checked_like_agent_ports(tmp_path):
    cat = _catalog_with(tmp_path, "10310")
    assert dict(cat.agents["STTService"].environment)["WYOMING_PORT"] == "10310"
    with pytest.raises(CatalogInvalid) as e:
        _catalog_with(tmp_path, "10210")                  # TTSService's Wyoming port
    assert "agents.TTSService.environment.WYOMING_PORT" in str(e.value)
    assert "port 10210 is already used by STTService.WYOMING_PORT" in str(e.value)
    with pytest.raises(CatalogInvalid) as e:
        _catalog_with(tmp_path, "5801")                   # TTSService's agent port
    assert "port 5801 is already used by STTService.WYOMING_PORT" in str(e.value)
    with pytest.raises(CatalogInvalid) as e:
        _catalog_with(tmp_path, "80")
    assert "agents.STTService.environment.WYOMING_PORT" in str(e.value)
    assert "80 is out of range" in str(e.value)


def test_the_wyoming_info_is_json_the_library_parses_without_our_agents():
    # the info an agent sends, built by our helpers, read by the library's Info
    prog = ours.artifact("X", "d", "1", by="us", url="u", models=[ours.artifact(
        "m", "d", "1", by="us", url="u", languages=["en"])])
    ev = Event("info", json.loads(json.dumps({"asr": [prog]})))
    assert Info.from_event(ev).asr[0].models[0].languages == ["en"]


def test_a_profile_switch_finds_a_wyoming_port_taken_by_another_program(tmp_path):
    from unified_ctl import ports

    cat = _catalog_with(tmp_path, "10310")
    whisper = ports.Listener("0.0.0.0", 10310, 812, "python3", "wyoming-whisper.service")
    (clash,) = ports.clashes(cat, ["STTService", "TTSService"], [whisper])
    assert (clash.agent, clash.what, clash.port) == ("STTService", "WYOMING_PORT", 10310)
    assert str(clash).endswith("give the agent another port "
                               "(agents.STTService.environment.WYOMING_PORT in the catalog)")
