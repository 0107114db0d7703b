"""AudioCapture and FusedAudioPreprocessor under systemd with the real package: speech captured
through ALSA (arecord on a PCM of ALSA's `file` plugin defined in /etc/asound.conf, as an
operator defines a microphone; the sandboxed unit with the `audio` group and nothing more),
then preprocessed through RequestCoordinator, with its speech segments where the speech is.
"""
import base64
import io
import json
import re
import wave

import numpy as np
import pytest

CAPTURE = "unified-agent@AudioCapture.service"
RAW = "/var/lib/unified-systest-audio/mic.raw"
RATE = 16000


def post(c, port: int, body: dict):
    c.write_file("/root/prep-task.json", json.dumps(body))
    r = c.run(["curl", "-sS", "-m", "60", "-w", "\n%{http_code}", "-H",
               "Content-Type: application/json", "-d", "@/root/prep-task.json",
               f"http://127.0.0.1:{port}/task"], timeout=90)
    out, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(out)


def pcm(wav_bytes: bytes):
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def trimmed(x):
    """The utterance without the synthesiser's leading and trailing silence."""
    hop = RATE // 100
    e = np.mean(x[:len(x) // hop * hop].reshape(-1, hop).astype(np.float64) ** 2, axis=1)
    on = np.flatnonzero(e > e.max() * 1e-4)
    return x[on[0] * hop:(on[-1] + 1) * hop]


@pytest.fixture
def core(container):
    r = container.run(["unified-ctl", "profile", "switch", "core", "--json"], check=False,
                      timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    container.wait_until("curl -sf http://127.0.0.1:7550/health && "
                         "curl -sf http://127.0.0.1:7551/health && "
                         "curl -sf http://127.0.0.1:6801/health", timeout=60)
    yield container
    container.run(["rm", "-f", "/root/prep-task.json"])


@pytest.fixture
def speech_file(core, tmp_path):
    """Two spoken commands (TTSService) with silences of known length, as raw 16 kHz samples
    in the container; → (samples, true segments)."""
    parts, truth, t = [np.zeros(int(0.6 * RATE), "<i2")], [], 0.6
    for text, gap in (("turn on the kitchen lights", 1.2), ("what time is it", 0.7)):
        status, out = post(core, 7201, {"type": "tts", "text": text, "voice": "rms"})
        assert status == 200, out
        rate, x = pcm(base64.b64decode(out["result"]["audio_wav_b64"]))
        assert rate == RATE
        x = trimmed(x)
        truth.append((t, t + len(x) / RATE))
        parts += [x, np.zeros(int(gap * RATE), "<i2")]
        t += len(x) / RATE + gap
    samples = np.concatenate(parts)
    host = tmp_path / "mic.raw"
    host.write_bytes(samples.tobytes())
    core.copy_in(host, RAW)
    core.write_file("/etc/asound.conf", 'pcm.systest_mic {\n  type file\n  slave.pcm "null"\n'
                    f'  file "/dev/null"\n  infile "{RAW}"\n  format "raw"\n}}\n')
    try:
        yield samples, truth
    finally:
        core.run(["rm", "-rf", "/etc/asound.conf", RAW.rsplit("/", 1)[0]])


def test_alsa_capture_then_preprocessing_through_the_coordinator_finds_the_commands(
        core, speech_file):
    samples, truth = speech_file
    with core.agent_env(["AudioCapture"], "90-systest-alsa", AUDIO_SOURCE="alsa:systest_mic"):
        core.wait_until("curl -sf http://127.0.0.1:7550/health", timeout=60)
        status, cap = post(core, 7201, {"type": "audio_capture",
                                        "seconds": len(samples) / RATE})
        assert status == 200 and cap["agent"] == "AudioCapture", cap
        assert cap["result"]["source"] == "alsa:systest_mic"
        rate, got = pcm(base64.b64decode(cap["result"]["audio_wav_b64"]))
        assert rate == RATE and np.array_equal(got, samples)        # what ALSA delivered
        # the unit has the audio group and nothing more than the other agents
        assert core.unit_property(CAPTURE, "SupplementaryGroups") == "audio"
        pid = core.unit_property(CAPTURE, "MainPID")
        gid = core.run(["getent", "group", "audio"]).stdout.split(":")[2]
        groups = re.search(r"^Groups:(.*)$", core.read_file(f"/proc/{pid}/status"), re.M)
        assert gid in groups.group(1).split()

    status, out = post(core, 7201, {"type": "audio_preprocessing",
                                    "audio_wav_b64": cap["result"]["audio_wav_b64"]})
    assert status == 200 and out["agent"] == "FusedAudioPreprocessor", out
    r = out["result"]
    assert r["sample_rate"] == RATE and len(r["speech_segments"]) == 2, r["speech_segments"]
    for (s, e), (ts, te) in zip(r["speech_segments"], truth):
        assert abs(s - ts) <= 0.12 and abs(e - te) <= 0.12, (r["speech_segments"], truth)
    h = json.loads(core.run(["curl", "-sf", "http://127.0.0.1:7551/health"]).stdout)
    assert h["implementation"] == "builtin" and h["engine"] == "numpy"


def test_capture_exposure_stays_in_the_sandbox_budget(core):
    out = core.run(["systemd-analyze", "security", "--no-pager", CAPTURE]).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert m and float(m.group(1)) <= 2.0, out[-1500:]
    print(f"\nsystemd-analyze security {CAPTURE}: {m.group(1)}")


@pytest.mark.parametrize("body, status, words", [
    ({"audio_wav_b64": "bm90IGEgd2F2"}, 400, "not a WAV file"),
    ({"audio_wav_b64": base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()}, 400,
     "truncated WAV header"),
])
def test_bad_audio_is_a_clear_4xx_and_the_preprocessor_stays_up(core, body, status, words):
    got, out = post(core, 6551, {"type": "audio_preprocessing", **body})
    assert got == status and words in out["error"], out
    core.run(["curl", "-sf", "http://127.0.0.1:7551/health"])


def test_a_capture_from_a_missing_device_is_a_503_and_the_agent_stays_up(core):
    # the catalog's default source (alsa:default) in a container without a sound card
    got, out = post(core, 6550, {"type": "audio_capture", "seconds": 0.5})
    assert got == 503 and out["error"].startswith("arecord -D default failed"), out
    core.run(["curl", "-sf", "http://127.0.0.1:7550/health"])
