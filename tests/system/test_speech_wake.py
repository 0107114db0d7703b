"""WakeWordDetector under systemd with the real engines installed by the packages (docs/SPEECH.md,
"WakeWordDetector"): "<wake phrase>, what time is it" synthesised by TTSService, the wake
phrase spotted where it was placed and the rest transcribed by STTService, all through
RequestCoordinator (the detector socket-activated by its first task, in the full profile
where it lives), with the catalog's engine (microWakeWord, from unified-system-wakeword) and
with PocketSphinx (a drop-in); a Wyoming satellite; and a phrase word the dictionary lacks as
a failed start with exit 2 naming the word and the setting, not restarted.
"""
import json

import pytest

from test_speech import post

UNIT = "unified-agent@WakeWordDetector.service"
DROPIN = f"/run/systemd/system/{UNIT}.d/90-systest-badphrase.conf"
# Run inside the container with the installed package's own WAV code: 1.0 s of silence, the
# wake phrase, 0.3 s, the command, 0.5 s; prints where the phrase's sound starts.
ASSEMBLE = """
import base64, json, sys
import numpy as np
from unified_agents.builtin.speech import wav
parts = []
for name in ("phrase", "command"):
    data = base64.b64decode(json.load(open(f"/root/wake-{name}.json"))["result"]["audio_wav_b64"])
    parts.append(wav.to_mono16k(wav.read(data))[0])
z = lambda s: np.zeros(int(s * 16000), "<i2")
pcm = np.concatenate([z(1.0), parts[0], z(0.3), parts[1], z(0.5)])
open("/root/wake-clip.wav", "wb").write(wav.write(pcm, 16000))
print(json.dumps({"at_s": 1.0 + wav.onset_s(parts[0]), "audio_wav_b64":
                  base64.b64encode(wav.write(pcm, 16000)).decode()}))
"""
CONFIGURED = """
import yaml
env = yaml.safe_load(open("/etc/unified/unified.yaml"))["agents"]["WakeWordDetector"]["environment"]
print(env["WAKE_PHRASES"].split(",")[0].split("=")[0].strip())
"""
CUT = """
import base64, json, sys
from unified_agents.builtin.speech import wav
a = wav.read(open("/root/wake-clip.wav", "rb").read())
pcm = wav.to_mono16k(a)[0][int(float(sys.argv[1]) * 16000):]
print(base64.b64encode(wav.write(pcm, 16000)).decode())
"""


@pytest.fixture
def full(container):
    """The full profile (WakeWordDetector is optional, in audio_services), back to core after."""
    r = container.run(["unified-ctl", "profile", "switch", "full", "--json"], check=False,
                      timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    container.wait_until("curl -sf http://127.0.0.1:8201/health", timeout=60)
    yield container
    container.run(["sh", "-c", "rm -f /root/wake-*.json /root/wake-clip.wav "
                               "/root/speech-task.json"])
    r = container.run(["unified-ctl", "profile", "switch", "core", "--json"], check=False,
                      timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def say(c, text: str, name: str) -> None:
    status, out = post(c, 7201, {"type": "tts", "text": text})
    assert status == 200 and out["agent"] == "TTSService", out
    c.write_file(f"/root/wake-{name}.json", json.dumps(out))


@pytest.fixture
def pocketsphinx(full):
    """The Debian-only engine (the shipped catalog runs microWakeWord): a runtime drop-in."""
    with full.agent_env(["WakeWordDetector"], "90-systest-pocketsphinx", **PS_ENV):
        yield full


PS_ENV = {"WAKE_ENGINE": "pocketsphinx", "WAKE_PHRASES": "okay computer",
          "WAKE_THRESHOLD": "1e-30"}


def spotted_then_transcribed(full, phrase: str, engine: str) -> dict:
    """"<phrase>, what time is it" through the coordinator: the phrase spotted where it was
    said by `engine`, and the audio after its end_s transcribed as the command."""
    say(full, phrase, "phrase")
    say(full, "what time is it", "command")
    clip = json.loads(full.run(["python3", "-c", ASSEMBLE]).stdout)

    status, out = post(full, 7201, {"type": "wake_word", "audio_wav_b64": clip["audio_wav_b64"]})
    assert status == 200 and out["agent"] == "WakeWordDetector", out
    r = out["result"]
    assert r["detected"] is True and r["phrase"] == phrase, r
    assert abs(r["at_s"] - clip["at_s"]) <= 0.3, (r["at_s"], clip["at_s"])
    assert r["engine"] == engine, r

    rest = full.run(["python3", "-c", CUT, str(r["end_s"])]).stdout.strip()
    status, out = post(full, 7201, {"type": "stt", "audio_wav_b64": rest})
    assert status == 200 and out["agent"] == "STTService", out
    assert out["result"]["text"] == "what time is it", out["result"]
    return r


def test_wake_phrase_then_command_is_spotted_in_place_and_the_rest_transcribed(pocketsphinx):
    full = pocketsphinx
    phrase = "okay computer"
    spotted_then_transcribed(full, phrase, "pocketsphinx-kws")

    h = json.loads(full.run(["curl", "-sf", "http://127.0.0.1:7552/health"]).stdout)
    assert h["implementation"] == "builtin" and h["engine"] == "pocketsphinx-kws", h
    assert h["engine_version"] and h["model"] == "/usr/share/pocketsphinx/model/en-us"
    assert [p["phrase"] for p in h["phrases"]] == [phrase], h
    assert full.unit_property(UNIT, "ActiveState") == "active"  # started by its socket


def test_bad_audio_is_a_400_through_the_coordinator_and_the_detector_stays_up(full):
    status, out = post(full, 7201, {"type": "wake_word", "audio_wav_b64": "bm90IGEgd2F2"})
    assert status == 400 and out["error"].startswith("not a WAV file"), out
    full.run(["curl", "-sf", "http://127.0.0.1:7552/health"])


def test_a_phrase_word_not_in_the_dictionary_fails_the_start_once_naming_it(full):
    try:
        full.write_file(DROPIN, '[Service]\nEnvironment="WAKE_ENGINE=pocketsphinx" '
                                '"WAKE_PHRASES=hey zorblax"\n')
        full.systemctl("daemon-reload")
        full.systemctl("restart", UNIT, check=False)
        full.wait_until(f"systemctl is-failed -q {UNIT}", timeout=60)
        assert full.unit_property(UNIT, "ExecMainStatus") == "2"
        assert full.unit_property(UNIT, "NRestarts") == "0"            # no restart loop
        full.wait_until(f"journalctl -u {UNIT} -o cat | grep -q "
                        "\"WAKE_PHRASES='hey zorblax' is invalid: the word(s) zorblax\"",
                        timeout=15)
    finally:
        full.run(["rm", "-f", DROPIN])
        full.systemctl("daemon-reload")
        full.systemctl("reset-failed", UNIT, check=False)
    status, out = post(full, 7201, {"type": "wake_word", "audio_wav_b64": "bm90IGEgd2F2"})
    assert status == 400, out                     # activated again by its socket, now healthy


WYOMING_DROPIN = f"/run/systemd/system/{UNIT}.d/90-systest-wyoming.conf"
WAKE_PORT = 10410  # next to openWakeWord's 10400, as docs/SPEECH.md "Wyoming" says
# A satellite as Home Assistant drives one, stdlib only (the container has no PyPI wyoming):
# describe, then detect + the clip streamed in 1024-sample chunks; prints what came back.
SATELLITE = r'''
import json, socket, sys, wave
def send(s, etype, data=None, payload=b""):
    h = {"type": etype}
    body = json.dumps(data).encode() if data else b""
    if body: h["data_length"] = len(body)
    if payload: h["payload_length"] = len(payload)
    s.sendall(json.dumps(h).encode() + b"\n" + body + payload)
def read(f):
    h = json.loads(f.readline())
    data = h.get("data") or {}
    if h.get("data_length"): data.update(json.loads(f.read(h["data_length"])))
    if h.get("payload_length"): f.read(h["payload_length"])
    return h["type"], data
port = int(sys.argv[1])
with socket.create_connection(("127.0.0.1", port), 30) as s:
    send(s, "describe"); info = read(s.makefile("rb"))[1]
w = wave.open("/root/wake-clip.wav"); pcm = w.readframes(w.getnframes())
fmt = {"rate": 16000, "width": 2, "channels": 1}
with socket.create_connection(("127.0.0.1", port), 60) as s:
    send(s, "detect", {"names": None}); send(s, "audio-start", fmt)
    for i in range(0, len(pcm), 2048): send(s, "audio-chunk", fmt, pcm[i:i + 2048])
    send(s, "audio-stop"); got = read(s.makefile("rb"))
print(json.dumps({"models": [m["phrase"] for p in info["wake"] for m in p["models"]], "got": got}))
'''


def test_a_wyoming_satellite_streams_its_microphone_and_gets_the_detection(full):
    """Home Assistant's way: WakeWordDetector serves Wyoming's wake domain on WYOMING_PORT
    under systemd, sandboxed; a streamed clip gets "detection" with the phrase's offset."""
    phrase = full.run(["python3", "-c", CONFIGURED]).stdout.strip()
    say(full, phrase, "phrase")
    say(full, "what time is it", "command")
    clip = json.loads(full.run(["python3", "-c", ASSEMBLE]).stdout)
    try:
        full.write_file(WYOMING_DROPIN, f'[Service]\nEnvironment="WYOMING_PORT={WAKE_PORT}"\n')
        full.systemctl("daemon-reload")
        full.systemctl("restart", UNIT, timeout=60)
        full.wait_until(["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', "
                                          f"{WAKE_PORT}), 2).close()"], timeout=60)
        full.write_file("/root/wake-satellite.py", SATELLITE)
        out = json.loads(full.run(["python3", "/root/wake-satellite.py", str(WAKE_PORT)],
                                  timeout=120).stdout)
        assert out["models"] == [phrase], out
        etype, data = out["got"]
        assert etype == "detection" and data["name"] == phrase, out
        assert abs(data["timestamp"] / 1000 - clip["at_s"]) <= 0.3, (data, clip["at_s"])
        h = json.loads(full.run(["curl", "-sf", "http://127.0.0.1:7552/health"]).stdout)
        assert h["wyoming"]["port"] == WAKE_PORT and h["wyoming"]["served"] >= 2, h
    finally:
        full.run(["rm", "-f", WYOMING_DROPIN, "/root/wake-satellite.py"])
        full.systemctl("daemon-reload")
        full.systemctl("stop", UNIT, check=False, timeout=60)


def test_the_catalogs_microwakeword_engine_from_its_package_spots_its_phrase_in_place(full):
    """The shipped catalog's engine, WAKE_ENGINE=microwakeword, from unified-system-wakeword
    (installed beside the voice package, as `apt install ./dist/unified-system*.deb` does):
    the vendored wheels load under the unit's sandbox, the phrase is spotted where it was
    said, the rest is the command, and /health names engine, model and cutoff."""
    assert full.run(["dpkg-query", "-W", "-f", "${Status}", "unified-system-wakeword"]
                    ).stdout.endswith("installed")
    phrase = full.run(["python3", "-c", CONFIGURED]).stdout.strip()
    assert phrase == "okay nabu", phrase
    spotted_then_transcribed(full, phrase, "microwakeword")
    h = json.loads(full.run(["curl", "-sf", "http://127.0.0.1:7552/health"]).stdout)
    assert h["engine"] == "microwakeword" and h["engine_version"] == "pymicro-wakeword 2.5.0", h
    assert h["model"] == "/usr/lib/unified-system/wakeword/pymicro_wakeword/models", h
    assert h["phrases"] == [{"phrase": "okay nabu", "threshold": 0.5}], h
    assert full.unit_property(UNIT, "ActiveState") == "active"  # started by its socket
