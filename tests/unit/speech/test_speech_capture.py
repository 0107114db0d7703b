"""AudioCapture as a real process: captures through ALSA itself (arecord on a PCM of ALSA's
`file` plugin whose `infile` holds known samples: the ALSA path runs, nothing is mocked), from a
WAV file and from an HTTP WAV stream; bounded durations; a source that fails is a clear 5xx and
the agent stays up; a missing arecord or a bad AUDIO_SOURCE is a failed start (exit 2)."""
import base64
import http.server
import struct
import threading

import numpy as np
import pytest

from tests.host_tools import require_tool

from .conftest import agent_env, needs_numpy, task, wav_bytes

pytestmark = needs_numpy
from unified_agents.builtin.speech import wav  # noqa: E402

RATE = 16000


@pytest.fixture(scope="module")
def arecord():
    return require_tool("arecord")


def known_signal(seconds: float, rate: int, seed: int = 5):
    """int16 samples no capture could produce by accident: a chirp plus seeded noise."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.4 * np.sin(2 * np.pi * (200 + 400 * t) * t)
    x += 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return np.round(x * 32767).astype("<i2")


def alsa_config(tmp_path, name: str, samples) -> str:
    """An ALSA configuration file defining PCM `name`: the file plugin over the null device,
    reading capture data from `infile` (raw: ALSA's file plugin reads the infile as raw
    samples in the capture format, so no WAV header goes in it)."""
    raw = tmp_path / f"{name}.raw"
    raw.write_bytes(np.asarray(samples, "<i2").tobytes())
    conf = tmp_path / f"{name}.conf"
    conf.write_text(f'pcm.{name} {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
                    f'  infile "{raw}"\n  format "raw"\n}}\n')
    # ALSA's own variable: its base configuration, then ours (what /etc/asound.conf would be)
    return f"/usr/share/alsa/alsa.conf:{conf}"


def capture(agent, seconds, status=200):
    got, out = task(agent, {"type": "audio_capture", "seconds": seconds})
    assert got == status, out
    return out if status != 200 else out["result"]


def samples_of(result):
    audio = wav.read(base64.b64decode(result["audio_wav_b64"]))
    assert audio.channels == 1 and audio.source_format == "pcm16"
    return np.round(audio.samples[:, 0] * 32768).astype(np.int16), audio


@pytest.fixture(scope="module")
def mic(spawn_module, tmp_path_factory, arecord):
    tmp = tmp_path_factory.mktemp("alsa")
    sig = known_signal(3.0, RATE)
    env = agent_env(spawn_module, "audio_capture", AUDIO_SOURCE="alsa:testmic",
                    ALSA_CONFIG_PATH=alsa_config(tmp, "testmic", sig), AUDIO_MAX_CAPTURE_S=5)
    return spawn_module("AudioCapture", env, notify=False), sig


def test_alsa_capture_returns_exactly_what_the_device_delivered(mic):
    agent, sig = mic
    r = capture(agent, 1.5)
    got, audio = samples_of(r)
    assert r["sample_rate"] == audio.rate == RATE and r["source"] == "alsa:testmic"
    assert r["audio_s"] == 1.5 and len(got) == 24000
    assert np.array_equal(got, sig[:24000])
    assert r["warnings"] == [] and -25 < r["level_dbfs"] < -5
    # a fraction of a second is a fraction of a second (arecord --samples, not -d)
    assert len(samples_of(capture(agent, 0.25))[0]) == 4000


def test_alsa_capture_at_another_rate_asks_the_device_for_it(spawn, tmp_path, arecord):
    sig = known_signal(1.0, 8000)
    env = agent_env(spawn, "audio_capture", AUDIO_SOURCE="alsa:mic8k", AUDIO_RATE=8000,
                    ALSA_CONFIG_PATH=alsa_config(tmp_path, "mic8k", sig))
    r = capture(spawn("AudioCapture", env), 0.5)
    got, _ = samples_of(r)
    assert r["sample_rate"] == 8000 and np.array_equal(got, sig[:4000])


def test_an_alsa_device_that_does_not_exist_is_a_503_naming_it_and_the_agent_stays_up(
        spawn, arecord):
    env = agent_env(spawn, "audio_capture", AUDIO_SOURCE="alsa:nosuchdevice",
                    ALSA_CONFIG_PATH="/usr/share/alsa/alsa.conf")
    a = spawn("AudioCapture", env)
    out = capture(a, 1, status=503)
    assert out["error"].startswith("arecord -D nosuchdevice failed (exit 1): ")
    assert a.request("GET", "/health", health=True)[0] == 200


@pytest.mark.parametrize("seconds, words", [
    (None, '"seconds"=None'), (0, '"seconds"=0'), (-1, '"seconds"=-1'),
    ("2", '"seconds"=\'2\''), (True, '"seconds"=True'),
    (5.01, '"seconds"=5.01; allowed: a number of seconds above 0 and at most 5 '
           "(AUDIO_MAX_CAPTURE_S)"),
])
def test_durations_outside_the_limit_are_a_clear_400(mic, seconds, words):
    agent, _ = mic
    body = {"type": "audio_capture"} if seconds is None else {"type": "audio_capture",
                                                              "seconds": seconds}
    got, out = task(agent, body)
    assert got == 400 and words in out["error"], out
    assert agent.request("GET", "/health", health=True)[0] == 200


def test_capture_health_names_the_source_and_arecord(mic):
    agent, _ = mic
    status, h, _ = agent.request("GET", "/health", health=True)
    assert status == 200 and h["implementation"] == "builtin"
    assert h["engine"] == "arecord" and h["engine_version"].startswith("arecord: version")
    assert h["source"] == "alsa:testmic" and h["max_capture_s"] == 5


def test_a_file_source_gives_its_first_seconds_and_says_when_it_is_shorter(spawn, tmp_path):
    sig = known_signal(1.0, 22050)
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(np.stack([sig, sig], 1) / 32767, 22050))  # stereo: mixed to mono
    a = spawn("AudioCapture", agent_env(spawn, "audio_capture", AUDIO_SOURCE=f"file:{path}"))
    r = capture(a, 0.5)
    got, _ = samples_of(r)
    assert r["sample_rate"] == 22050 and len(got) == 11025 and r["input"]["channels"] == 2
    assert np.abs(got.astype(int) - sig[:11025]).max() <= 1
    r = capture(a, 3)
    assert r["audio_s"] == 1.0 and "gave 1.00 s of the 3 s asked for" in r["warnings"][0]


class _Stream(http.server.BaseHTTPRequestHandler):
    """An endless-looking WAV stream: a header with the 'unknown' size, then the samples."""
    samples = b""

    def do_GET(self):
        if self.path != "/mic.wav":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.end_headers()
        fmt = struct.pack("<HHIIHH", 1, 1, RATE, RATE * 2, 2, 16)
        self.wfile.write(b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVEfmt "
                         + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF))
        try:
            for i in range(0, len(self.samples), 3200):
                self.wfile.write(self.samples[i:i + 3200])
                self.wfile.flush()
        except OSError:
            pass  # the agent hung up once it had what it asked for

    def log_message(self, *args):
        pass


@pytest.fixture
def stream_server():
    sig = known_signal(4.0, RATE)
    handler = type("H", (_Stream,), {"samples": sig.tobytes()})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", sig
    srv.shutdown()
    srv.server_close()


def test_an_http_wav_stream_is_read_for_the_seconds_asked(spawn, stream_server):
    url, sig = stream_server
    a = spawn("AudioCapture", agent_env(spawn, "audio_capture", AUDIO_SOURCE=f"{url}/mic.wav"))
    r = capture(a, 2)
    got, _ = samples_of(r)
    assert r["source"] == f"{url}/mic.wav" and r["sample_rate"] == RATE
    assert np.array_equal(got, sig[:32000])


def test_a_stream_that_fails_is_a_503_naming_it_and_the_agent_stays_up(spawn, stream_server):
    url, _ = stream_server
    a = spawn("AudioCapture", agent_env(spawn, "audio_capture", AUDIO_SOURCE=f"{url}/nope.wav"))
    out = capture(a, 1, status=503)
    assert out["error"] == f"network source {url}/nope.wav: HTTP 404 Not Found"
    assert a.request("GET", "/health", health=True)[0] == 200


def test_a_stream_that_is_not_a_wav_is_a_502(spawn, tmp_path):
    page = tmp_path / "index.html"
    page.write_text("<html>hello</html>")

    class Page(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/index.html"
        a = spawn("AudioCapture", agent_env(spawn, "audio_capture", AUDIO_SOURCE=url))
        out = capture(a, 1, status=502)
        assert out["error"].startswith(f"{url} is not a WAV stream (it starts with b'<html>")
    finally:
        srv.shutdown()
        srv.server_close()


def _start_fails(spawn, **env):
    a = spawn("AudioCapture", agent_env(spawn, "audio_capture", **env), wait_ready=False)
    return a.wait_exit(30), a.stderr().strip().splitlines()


def test_an_alsa_source_without_arecord_is_exit_2_naming_alsa_utils(spawn, tmp_path):
    bare = tmp_path / "bin"          # a PATH with a shell and nothing else
    bare.mkdir()
    (bare / "sh").symlink_to("/bin/sh")
    rc, lines = _start_fails(spawn, AUDIO_SOURCE="alsa:default", PATH=str(bare))
    assert rc == 2 and len(lines) == 1, lines
    assert "needs the program 'arecord'" in lines[0] and "apt install alsa-utils" in lines[0]


@pytest.mark.parametrize("source, words", [
    ("pulse:default", "AUDIO_SOURCE='pulse:default' is not a source; allowed: alsa:DEVICE, "
                      "file:/PATH.wav, http://HOST[:PORT]/PATH"),
    ("file:relative.wav", "a file source needs an absolute path"),
    ("file:/nonexistent/x.wav", "AUDIO_SOURCE='file:/nonexistent/x.wav': no such file"),
])
def test_a_bad_source_setting_is_exit_2_naming_it(spawn, source, words):
    rc, lines = _start_fails(spawn, AUDIO_SOURCE=source)
    assert rc == 2 and len(lines) == 1 and words in lines[0], lines
