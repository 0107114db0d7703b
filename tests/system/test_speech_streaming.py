"""The streaming speech agents under systemd with the real engines from the package's Depends
(docs/SPEECH.md, "Streaming"): partial then final transcripts through RequestCoordinator,
the first piece of speech before the rest is synthesised, playback through ALSA (aplay into
the `file` plugin: the ALSA path itself, no sound card) and barge-in: StreamingInterruptHandler
hears speech over a playback and stops it through the coordinator; the file shows the cut.
"""
import base64
import json
import time

import pytest

TTS = "unified-agent@StreamingTTSAgent.service"
PLAYED = "/var/lib/unified/tts-{playback_id}.raw"
LONG = ("Here is the weather for today. It will be sunny in the morning, with clouds coming "
        "in after lunch. In the evening there may be some rain. Tomorrow looks much the same, "
        "a little warmer. Have a nice day.")


def post(c, port: int, body: dict):
    c.write_file("/root/stream-task.json", json.dumps(body))
    r = c.run(["curl", "-sS", "-m", "60", "-w", "\n%{http_code}", "-H",
               "Content-Type: application/json", "-d", "@/root/stream-task.json",
               f"http://127.0.0.1:{port}/task"], timeout=90)
    out, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(out)


def ok(c, port: int, body: dict) -> dict:
    status, out = post(c, port, body)
    assert status == 200, out
    return out["result"]


@pytest.fixture
def speech(container):
    r = container.run(["unified-ctl", "profile", "switch", "core", "--json"], check=False,
                      timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # playback into ALSA's file plugin: one raw file per playback id
    with container.agent_env(["StreamingTTSAgent"], "90-systest-alsa-file",
                             STREAM_TTS_SINK="alsa",
                             STREAM_TTS_ALSA_DEVICE=f"file:FILE={PLAYED},FORMAT=raw"):
        container.wait_until("curl -sf http://127.0.0.1:6801/health && "
                             "curl -sf http://127.0.0.1:6562/health && "
                             "curl -sf http://127.0.0.1:7553/health", timeout=90)
        yield container
    container.run(["sh", "-c", "rm -f /root/stream-task.json /var/lib/unified/tts-*.raw"])


def pcm_of(tts_result: dict) -> bytes:
    """The samples of TTSService's 16 kHz mono WAV (flite rms: 16000 Hz, 44-byte header)."""
    assert tts_result["sample_rate"] == 16000
    return base64.b64decode(tts_result["audio_wav_b64"])[44:]


def test_partial_then_final_transcripts_through_the_coordinator(speech):
    audio = pcm_of(ok(speech, 7201, {"type": "tts", "text": "turn on the kitchen lights",
                                     "voice": "rms"}))
    step, sid, partials = 8000, None, []  # 0.25 s chunks
    for i in range(0, len(audio), step):
        body = {"type": "streaming_stt",
                "audio_chunk_b64": base64.b64encode(audio[i:i + step]).decode()}
        if sid:
            body["session"] = sid
        status, out = post(speech, 7201, body)
        assert status == 200 and out["agent"] == "StreamingSpeechRecognition", out
        sid = out["result"]["session"]
        partials.append(out["result"]["partial"])
    assert any(partials[:-1]), partials  # words before the audio ended
    final = ok(speech, 7201, {"type": "streaming_stt", "session": sid, "final": True})
    assert final["final"] and final["text"] == "turn on the kitchen lights", final
    # the final answer is STTService's pass over the whole utterance, found through the
    # registry by the sandboxed agent
    assert final["final_pass"] == "whole" and "whole_error" not in final, final
    assert [w["word"] for w in final["words"]] == final["text"].split()
    health = json.loads(speech.run(["curl", "-sf", "http://127.0.0.1:7553/health"]).stdout)
    assert health["implementation"] == "builtin" and health["engine"] == "pocketsphinx"
    assert health["sessions"]["open"] == 0


def test_first_audio_comes_before_the_whole_text_is_synthesised(speech):
    status, out = post(speech, 7201, {"type": "streaming_tts", "text": LONG, "play": False})
    assert status == 200 and out["agent"] == "StreamingTTSAgent", out
    r = out["result"]
    assert r["chunks"] >= 4 and r["chunk"]["text"] == "Here is the weather for today."
    rest = [ok(speech, 7201, {"type": "streaming_tts_chunk", "stream_id": r["stream_id"],
                              "index": i}) for i in range(1, r["chunks"])]
    assert rest[-1]["last"] and r["first_audio_s"] < sum(p["synth_s"] for p in rest)
    print(f"first audio after {r['first_audio_s'] * 1000:.0f} ms; the whole text "
          f"{(r['chunk']['synth_s'] + sum(p['synth_s'] for p in rest)) * 1000:.0f} ms")


def played_s(c, pid: str) -> float:
    r = c.run(["stat", "-c", "%s", PLAYED.format(playback_id=pid)])
    return int(r.stdout) / 32000


def test_playback_goes_through_alsa_and_barge_in_cuts_it(speech):
    unit = "unified-agent@StreamingInterruptHandler.service"
    speech.run(["unified-ctl", "agent", "start", "StreamingInterruptHandler"], timeout=120)
    try:
        speech.wait_until("curl -sf http://127.0.0.1:6576/health", timeout=60)
        # a short reply plays in full through aplay into the file plugin
        short = ok(speech, 7201, {"type": "streaming_tts", "text": "Played in full."})
        speech.wait_until(["sh", "-c", f"curl -sf -d '{{\"type\": \"playback_status\", "
                           f"\"playback_id\": \"{short['playback_id']}\"}}' "
                           "http://127.0.0.1:5562/task | grep -q finished"], timeout=30)
        assert played_s(speech, short["playback_id"]) == pytest.approx(
            short["chunk"]["audio_s"], abs=0.03)
        # a long one is talked over: the user's voice on the microphone stops it
        user = pcm_of(ok(speech, 7201, {"type": "tts", "text": "stop", "voice": "rms"}))
        pid = ok(speech, 7201, {"type": "streaming_tts", "text": LONG})["playback_id"]
        t0 = time.monotonic()
        # what it sounds like so far, through RequestCoordinator: the echo reference that
        # "reference": "playback" makes the handler ask for
        time.sleep(0.6)
        h = ok(speech, 7201, {"type": "playback_heard", "playback_id": pid, "seconds": 0.4})
        sounded = base64.b64decode(h["audio_b64"])
        assert h["playback_id"] == pid and len(sounded) == 2 * round(0.4 * h["sample_rate"])
        assert any(sounded), "0.6 s into the playback, the last 0.4 s were silent"
        quiet = bytes(16000)  # 0.5 s of silence first: nobody speaks
        hit = None
        for i in range(0, len(quiet + user), 3200):  # 0.1 s chunks
            r = ok(speech, 5576, {"type": "interrupt", "playback_id": pid, "audio_chunk_b64":
                                  base64.b64encode((quiet + user)[i:i + 3200]).decode()})
            if r["barge_in"]:
                hit = r
                break
        assert hit is not None and 0.5 <= hit["onset_s"] < hit["detected_s"], hit
        assert hit["stop"]["stopped"] is True and hit["stop"]["playback_id"] == pid, hit
        heard = time.monotonic() - t0
        status = ok(speech, 5562, {"type": "playback_status", "playback_id": pid})
        assert status["state"] == "stopped"
        time.sleep(0.5)  # nothing is written after the stop
        cut = played_s(speech, pid)  # the text is 12 s long; the file ends at the stop
        assert 0 < cut <= hit["stop"]["played_s"] + 0.01 and cut < min(heard + 0.5, 10)
        print(f"barge-in: speech at {hit['onset_s']} s, detected at {hit['detected_s']} s, "
              f"stop call {hit['stop_call_s'] * 1000:.0f} ms, {cut:.2f} s of speech played")
    finally:
        speech.run(["unified-ctl", "agent", "stop", "StreamingInterruptHandler"], check=False)
        speech.systemctl("reset-failed", unit, check=False)
