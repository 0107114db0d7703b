"""FusedAudioPreprocessor: speech segments found between silences of known length (clean and in
noise), DC removed, high-pass, RMS/peak normalisation with the gain reported, as functions and
through a real agent process; bad input of every speech agent is a clear 4xx, the agent stays
healthy and its memory does not grow over 1,000 bad requests. Speech here is development audio
(flite rms, espeak-ng); the evaluation voices are only in bench/bench_prep.py."""
import base64
import pathlib
import time

import numpy as np
import pytest

from .conftest import (agent_env, b64, needs_espeak, needs_flite, needs_numpy, needs_stt, task,
                       wav_bytes)

pytestmark = needs_numpy
from unified_agents.builtin.speech import denoise, prep, vad, wav  # noqa: E402

RATE = 16000


def synth(engine: str, voice: str, text: str):
    """16 kHz float speech, trimmed to its speech (as bench_prep's truth)."""
    from unified_agents.builtin.speech import tts

    import shutil
    cls = tts.Flite if engine == "flite" else tts.EspeakNG
    a = wav.read(cls(shutil.which(cls.binary)).synthesize(text, voice, 1.0, 1.0, 30))
    x = wav.resample(a.samples[:, 0], a.rate, RATE)
    hop = RATE // 100
    e = np.mean(x[:len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1)
    on = np.flatnonzero(e > e.max() * 1e-4)
    return x[on[0] * hop:(on[-1] + 1) * hop]


def sequence(parts):
    """parts: float arrays (speech) and numbers (seconds of silence) → (signal, truth)."""
    out, truth, t = [], [], 0.0
    for p in parts:
        if isinstance(p, (int, float)):
            out.append(np.zeros(int(p * RATE), np.float32))
        else:
            truth.append([t, t + len(p) / RATE])
            out.append(p.astype(np.float32))
        t += len(out[-1]) / RATE
    return np.concatenate(out), truth


def with_noise(x, truth, snr_db, seed=1):
    speech = np.concatenate([x[int(s * RATE):int(e * RATE)] for s, e in truth])
    p = np.mean(speech.astype(np.float64) ** 2)
    noise = np.random.default_rng(seed).standard_normal(len(x)) * np.sqrt(p / 10 ** (snr_db / 10))
    return np.clip(x + noise, -1, 1).astype(np.float32)


def assert_segments(got, truth, tol=0.12):
    assert len(got) == len(truth), (got, truth)
    for (s, e), (ts, te) in zip(got, truth):
        assert abs(s - ts) <= tol and abs(e - te) <= tol, (got, truth)


@pytest.fixture(scope="module")
def two_commands():
    a = synth("espeak-ng", "en-us", "turn on the light")
    b = synth("flite", "rms", "what is the time")
    return sequence([0.7, a, 1.0, b, 0.6])


@needs_flite
@needs_espeak
def test_each_command_between_known_silences_is_one_segment(two_commands):
    x, truth = two_commands
    assert_segments(vad.speech_segments(x), truth)


@needs_flite
@needs_espeak
def test_commands_in_white_noise_at_10_db_are_still_found(two_commands):
    x, truth = two_commands
    assert_segments(vad.speech_segments(with_noise(x, truth, 10.0)), truth, tol=0.2)


@needs_flite
def test_a_short_pause_inside_a_sentence_does_not_split_it():
    a, b = synth("flite", "rms", "set a timer"), synth("flite", "rms", "for five minutes")
    x, truth = sequence([0.5, a, 0.15, b, 0.5])
    assert vad.speech_segments(x) == [[pytest.approx(truth[0][0], abs=0.12),
                                       pytest.approx(truth[1][1], abs=0.12)]]


def test_silence_and_steady_noise_hold_no_speech():
    assert vad.speech_segments(np.zeros(3 * RATE, np.float32)) == []
    noise = np.random.default_rng(3).standard_normal(5 * RATE).astype(np.float32) * 0.05
    assert vad.speech_segments(noise) == []
    hum = 0.3 * np.sin(2 * np.pi * 50 * np.arange(4 * RATE) / RATE).astype(np.float32)
    assert vad.speech_segments(hum) == []
    assert vad.speech_segments(np.zeros(0, np.float32)) == []


def test_a_tone_burst_after_silence_is_detected_where_it_is():
    # not speech, but energy where there was none: the detector is energy-based (documented)
    x = np.zeros(3 * RATE, np.float32)
    t = np.arange(RATE) / RATE
    x[RATE:2 * RATE] = 0.1 * np.sin(2 * np.pi * 440 * t)
    assert vad.speech_segments(x) == [[pytest.approx(1.0, abs=0.07),
                                       pytest.approx(2.0, abs=0.07)]]


def test_dc_offset_is_removed_and_reported():
    x = (0.25 + 0.1 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE)).astype(np.float32)
    out = prep.preprocess(x, normalize="none")
    assert out["dc_offset"] == pytest.approx(0.25, abs=1e-4)
    assert abs(float(np.mean(out["samples"]))) < 1e-4 and out["gain_db"] == 0


def test_highpass_removes_hum_below_the_cutoff_and_keeps_speech_frequencies():
    t = np.arange(2 * RATE) / RATE
    hum, voice = np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 1000 * t)
    y = prep.highpass((0.3 * hum + 0.3 * voice).astype(np.float32), 120.0)
    spec = np.abs(np.fft.rfft(y)) / (len(y) / 2)
    f = np.fft.rfftfreq(len(y), 1 / RATE)
    assert spec[np.argmin(abs(f - 50))] < 0.3 * 10 ** (-40 / 20)      # hum down 40 dB+
    assert spec[np.argmin(abs(f - 1000))] == pytest.approx(0.3, rel=0.01)


@needs_flite
def test_rms_normalisation_brings_quiet_speech_to_the_target_and_reports_the_gain():
    a = synth("flite", "rms", "open the garage door")
    x, truth = sequence([0.5, a * 0.02, 2.0])      # ~34 dB too quiet, and long silence
    out = prep.preprocess(x, normalize="rms", target_dbfs=-20, max_gain_db=60)
    assert not out["gain_limited"] and len(out["speech_segments"]) == 1
    s, e = out["speech_segments"][0]
    assert prep.dbfs(out["samples"][int(s * RATE):int(e * RATE)]) == pytest.approx(-20, abs=0.1)
    assert out["gain_db"] == pytest.approx(-20 - out["before"]["speech_rms_dbfs"], abs=0.06)
    assert out["gain_db"] > 25 and out["after"]["peak_dbfs"] <= -1.0 + 0.01
    # the silence after the command does not change the gain (measured on speech only)
    longer, _ = sequence([0.5, a * 0.02, 8.0])
    assert prep.preprocess(longer, max_gain_db=60)["gain_db"] == pytest.approx(out["gain_db"],
                                                                             abs=0.2)


def test_peak_normalisation_and_the_gain_limit():
    x = (0.05 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE)).astype(np.float32)
    out = prep.preprocess(x, normalize="peak", target_dbfs=-3)
    assert out["gain_db"] == pytest.approx(-3 - 20 * np.log10(0.05), abs=0.05)
    assert out["after"]["peak_dbfs"] == pytest.approx(-3, abs=0.05)
    weak = prep.preprocess(x * 0.001, normalize="peak", max_gain_db=30)  # -100 dBFS: noise
    assert weak["gain_db"] == 30 and weak["gain_limited"]


def test_silence_gets_no_gain():
    out = prep.preprocess(np.zeros(RATE, np.float32))
    assert out["gain_db"] == 0 and out["speech_segments"] == []


# ------------------------------------------------------------------ the agent process
# ------------------------------------------------------------------ noise reduction (denoise.py)
def _snr_db(clean, y, truth):
    """SNR of y against the clean signal, over the speech only."""
    speech = np.concatenate([np.arange(int(s * RATE), int(e * RATE)) for s, e in truth])
    err = y[speech].astype(np.float64) - clean[speech]
    return 10 * np.log10(np.mean(clean[speech].astype(np.float64) ** 2) / np.mean(err ** 2))


@needs_flite
@needs_espeak
def test_denoising_raises_the_snr_of_speech_in_steady_noise_and_keeps_its_timing(two_commands):
    x, truth = two_commands
    noisy = with_noise(x, truth, 10.0)
    y = denoise.wiener(noisy)
    assert y.dtype == np.float32 and len(y) == len(x)
    assert _snr_db(x, y, truth) > _snr_db(x, noisy, truth) + 3   # measured +4.8 dB
    pause = slice(int((truth[0][1] + 0.3) * RATE), int((truth[1][0] - 0.3) * RATE))
    assert prep.dbfs(y[pause]) < prep.dbfs(noisy[pause]) - 12      # the pause goes quiet: -19.5 dB measured
    assert_segments(vad.speech_segments(y), truth, tol=0.2)


def test_denoising_keeps_int16_and_leaves_audio_too_short_to_estimate_alone():
    rng = np.random.default_rng(5)
    pcm = (rng.standard_normal(RATE) * 1000).astype(np.int16)
    assert denoise.wiener(pcm).dtype == np.int16
    short = pcm[:2 * denoise.N_FFT - 1]
    assert denoise.wiener(short) is short


def _stream(x: np.ndarray, sizes) -> np.ndarray:
    f = denoise.StreamingWiener()
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(f.push(x[i:i + n]))
        i, k = i + n, k + 1
    return np.concatenate(out + [f.flush()])


def test_the_streaming_filter_gives_the_same_audio_whatever_the_chunks():
    rng = np.random.default_rng(9)
    x = (rng.standard_normal(RATE * 2 + 123) * 2000).astype(np.int16)
    whole = _stream(x, [len(x)])
    assert whole.dtype == np.int16 and len(whole) == len(x)
    assert np.array_equal(_stream(x, [1, 7, 333, 4000, 255]), whole)
    assert np.array_equal(_stream(x, [1600]), whole)
    # the output runs at most one frame (32 ms) behind the input; flush() gives the rest
    f = denoise.StreamingWiener()
    first = len(f.push(x[:1600]))
    assert denoise.HOP <= 1600 - first <= denoise.N_FFT
    assert len(f.flush()) == 1600 - first


def test_a_stream_that_ends_early_or_is_empty_gives_back_what_it_got():
    assert len(denoise.StreamingWiener().flush()) == 0
    f = denoise.StreamingWiener()
    assert len(f.push(np.full(100, 500, np.int16))) == 0
    assert len(f.flush()) == 100


@needs_flite
@needs_espeak
def test_streamed_denoising_raises_the_snr_of_speech_and_keeps_its_timing(two_commands):
    x, truth = two_commands
    noisy = with_noise(x, truth, 10.0)
    pcm = np.clip(np.round(noisy * 32768), -32768, 32767).astype(np.int16)
    y = _stream(pcm, [1600]).astype(np.float32) / 32768
    assert len(y) == len(x)
    assert _snr_db(x, y, truth) > _snr_db(x, noisy, truth) + 3
    pause = slice(int((truth[0][1] + 0.3) * RATE), int((truth[1][0] - 0.3) * RATE))
    assert prep.dbfs(y[pause]) < prep.dbfs(noisy[pause]) - 12
    assert_segments(vad.speech_segments(y), truth, tol=0.2)


@pytest.fixture(scope="module")
def fap(spawn_module):
    return spawn_module("FusedAudioPreprocessor", agent_env(
        spawn_module, "fused_audio_preprocessor", PREP_MAX_AUDIO_S=20), notify=False)


def preprocess_task(agent, data: bytes, **opts):
    status, out = task(agent, {"type": "audio_preprocessing", "audio_wav_b64": b64(data), **opts})
    assert status == 200, out
    return out["result"]


@needs_flite
@needs_espeak
def test_the_agent_turns_a_48k_stereo_float_file_into_16k_mono_with_segments(fap, two_commands):
    x, truth = two_commands
    x48 = wav.resample(x * 0.1, RATE, 48000)
    r = preprocess_task(fap, wav_bytes(np.stack([x48, x48], 1), 48000, fmt="float32"))
    out = wav.read(base64.b64decode(r["audio_wav_b64"]))
    assert out.rate == r["sample_rate"] == 16000 and out.channels == 1
    assert abs(out.seconds - len(x) / RATE) < 0.01
    assert r["input"] == {"sample_rate": 48000, "channels": 2, "format": "float32",
                          "clipped_fraction": 0.0}
    assert_segments(r["speech_segments"], truth)
    assert r["gain_db"] > 10 and r["normalize"] == "rms" and r["warnings"] == []
    speech = np.concatenate([out.samples[int(s * RATE):int(e * RATE), 0]
                             for s, e in r["speech_segments"]])
    assert prep.dbfs(speech) == pytest.approx(-20, abs=0.5)       # the speech at the target


def test_the_agent_applies_a_high_pass_when_asked(fap):
    t = np.arange(RATE) / RATE
    data = wav_bytes(0.3 * np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 1000 * t), RATE)
    r = preprocess_task(fap, data, highpass_hz=150, normalize="none")
    y = wav.read(base64.b64decode(r["audio_wav_b64"])).samples[:, 0]
    assert r["highpass_hz"] == 150 and prep.dbfs(y) == pytest.approx(prep.dbfs(
        0.3 * np.sin(2 * np.pi * 1000 * t)), abs=0.3)


def test_the_agent_reduces_noise_when_asked_and_says_so(fap):
    noise = np.random.default_rng(9).standard_normal(2 * RATE) * 0.05
    plain = preprocess_task(fap, wav_bytes(noise, RATE), normalize="none")
    quiet = preprocess_task(fap, wav_bytes(noise, RATE), normalize="none", denoise="wiener")
    assert plain["denoise"] == "none" and quiet["denoise"] == "wiener"
    assert quiet["after"]["rms_dbfs"] < plain["after"]["rms_dbfs"] - 15


def test_clipped_input_is_processed_with_a_warning(fap):
    t = np.arange(RATE) / RATE
    r = preprocess_task(fap, wav_bytes(np.clip(2 * np.sin(2 * np.pi * 300 * t), -1, 1), RATE))
    assert r["input"]["clipped_fraction"] > 0.3
    assert any("clipped" in w for w in r["warnings"])


def test_silence_is_answered_with_no_segments_and_a_warning(fap):
    r = preprocess_task(fap, wav_bytes(np.zeros(RATE), 8000))
    assert r["speech_segments"] == [] and r["gain_db"] == 0 and r["audio_s"] == 2.0
    assert any("silent" in w for w in r["warnings"])


def test_prep_health_names_implementation_engine_and_limits(fap):
    status, h, _ = fap.request("GET", "/health", health=True)
    assert status == 200 and h["implementation"] == "builtin" and h["engine"] == "numpy"
    assert h["engine_version"] == np.__version__ and "VAD" in h["model"]
    assert h["max_audio_s"] == 20


def ten_minutes() -> bytes:
    """600 s of 8 kHz 8-bit mono (4.8 MB): long enough to be refused, small enough to send."""
    return wav_bytes(np.zeros(8000 * 600), 8000, fmt="pcm8")


def truncated() -> bytes:
    return wav_bytes(np.zeros(100), RATE)[:30]


BAD_AUDIO = [
    (b64(b"not a wav at all"), 400, "not a WAV file"),
    (b64(b"RIFF"), 400, "truncated WAV header"),
    (b64(truncated()), 400, "truncated WAV header"),
    (b64(wav_bytes(np.zeros(0), RATE)), 400, "0 samples"),
    (b64(wav_bytes(np.zeros(400), 4000)), 400, "4000 Hz is not supported; allowed: 8000-48000"),
    (b64(wav_bytes(np.zeros(960), 96000)), 400, "96000 Hz is not supported"),
    ("%%%", 400, "not valid base64"),
]


@pytest.mark.parametrize("audio, status, words", BAD_AUDIO + [
    (b64(ten_minutes()), 413, "audio is 600.0 s long; allowed: at most 20 s (PREP_MAX_AUDIO_S)")])
def test_bad_audio_is_a_clear_4xx_and_the_preprocessor_stays_healthy(fap, audio, status, words):
    got, out = task(fap, {"type": "audio_preprocessing", "audio_wav_b64": audio})
    assert got == status and words in out["error"], out
    assert fap.request("GET", "/health", health=True)[0] == 200


@pytest.mark.parametrize("opts, words", [
    ({"normalize": "loud"}, '"normalize"=\'loud\'; allowed: rms, peak, none'),
    ({"target_dbfs": 3}, '"target_dbfs"=3; allowed: a number -40-0'),
    ({"highpass_hz": 5}, '"highpass_hz"=5; allowed: 0 or a number 20-1000'),
    ({"highpass_hz": True}, '"highpass_hz"=True'),
    ({"denoise": "rnnoise"}, '"denoise"=\'rnnoise\'; allowed: wiener, none'),
])
def test_bad_options_are_a_clear_400(fap, opts, words):
    got, out = task(fap, {"type": "audio_preprocessing",
                          "audio_wav_b64": b64(wav_bytes(np.zeros(100), RATE)), **opts})
    assert got == 400 and words in out["error"], out


def test_a_high_pass_setting_below_20_hz_fails_the_start(spawn):
    a = spawn("FusedAudioPreprocessor", agent_env(spawn, "fused_audio_preprocessor",
                                                  PREP_HIGHPASS_HZ=5), wait_ready=False)
    assert a.wait_exit(30) == 2
    assert "PREP_HIGHPASS_HZ=5 is invalid; allowed: 0 (off) or 20-1000" in a.stderr()


# ------------------------------------------- nothing leaks: 1,000 bad requests, every agent
def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))


def _settled_rss_kb(pid: int, within: float = 0.0, wait_s: float = 3.0) -> int:
    """RSS once the last request's buffers are gone: the answer reaches the client before
    the worker drops its references to the body, so a reading taken at once can still
    count that request (up to ~24 MB for the ten-minute body). A leak stays above
    `within` however long this waits."""
    deadline = time.monotonic() + wait_s
    rss = _rss_kb(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _rss_kb(pid)
        if now == rss and (not within or now <= within):
            return now
        rss = now
    return rss


def _bad_bodies(kind: str) -> list[dict]:
    audio = [a for a, _, _ in BAD_AUDIO]
    big = b64(ten_minutes())
    if kind in ("stt", "audio_preprocessing"):
        bodies = [{"type": kind, "audio_wav_b64": a} for a in audio]
        bodies += [{"type": kind}, {"type": kind, "audio_wav_b64": 42}]
        return bodies + [{"type": kind, "audio_wav_b64": big}]
    if kind == "tts":
        return [{"type": "tts"}, {"type": "tts", "text": "x" * 301},
                {"type": "tts", "text": "hi", "voice": "nosuch"},
                {"type": "tts", "text": "hi", "rate": 9}, {"type": "tts", "text": "\x00 \t"}]
    return [{"type": kind}, {"type": kind, "seconds": 0}, {"type": kind, "seconds": -1},
            {"type": kind, "seconds": 10_000}, {"type": kind, "seconds": "5"},
            {"type": kind, "seconds": True}]


@pytest.fixture(scope="module")
def capture_file(spawn_module, tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "in.wav"
    path.write_bytes(wav_bytes(np.zeros(RATE), RATE))
    return spawn_module("AudioCapture", agent_env(spawn_module, "audio_capture",
                                                   AUDIO_SOURCE=f"file:{path}"), notify=False)


@pytest.mark.parametrize("agent, kind", [("fap", "audio_preprocessing"),
                                         ("capture_file", "audio_capture"),
                                         ("stt", "stt"), ("tts", "tts")])
def test_a_thousand_bad_requests_leave_every_speech_agent_healthy_without_growing(
        request, agent, kind):
    if kind == "stt":
        request.getfixturevalue("_need_stt")
    if kind == "tts":
        request.getfixturevalue("_need_flite")
    a = request.getfixturevalue(agent)
    bodies = _bad_bodies(kind)
    # the big body (10 minutes of audio, 6.4 MB of base64) goes every 20th request
    sequence_ = [bodies[-1] if i % 20 == 19 else bodies[i % (len(bodies) - 1)]
                 for i in range(1000)]

    def send_all(items):
        for body in items:
            status, out = task(a, body)
            assert 400 <= status < 500 and out["error"], (body, out)

    send_all(sequence_[:200])            # warm-up: allocator pools and buffers reach size
    before = _settled_rss_kb(a.proc.pid)
    send_all(sequence_)
    after = _settled_rss_kb(a.proc.pid, within=before * 1.05)
    print(f"\n{agent}: RSS {before} kB before, {after} kB after 1,000 bad requests")
    assert a.request("GET", "/health", health=True)[0] == 200
    assert after <= before * 1.05, f"RSS {before} kB → {after} kB after 1,000 bad requests"


# ------------------------------------------------------------------ numpy waits for the first task
def _numpy_mapped(agent) -> bool:
    """numpy's compiled core is in the process's memory map once numpy is imported."""
    maps = pathlib.Path(f"/proc/{agent.proc.pid}/maps").read_text()
    return "_multiarray_umath" in maps


@needs_flite
@needs_stt
def test_audio_agents_start_without_numpy_and_load_it_for_their_first_task(spawn, tmp_path):
    # ~100 ms of CPU and ~15 MB per agent that may never convert audio (deps.need_installed)
    src = tmp_path / "in.wav"
    src.write_bytes(wav_bytes(np.zeros(RATE // 4), RATE))
    agents = {
        "FusedAudioPreprocessor": ("fused_audio_preprocessor", {}, {
            "type": "audio_preprocessing", "audio_wav_b64": b64(wav_bytes(np.zeros(RATE), RATE))}),
        "AudioCapture": ("audio_capture", {"AUDIO_SOURCE": f"file:{src}"},
                         {"type": "audio_capture", "seconds": 0.1}),
        "TTSService": ("tts_service", {"TTS_ENGINE": "flite"}, {"type": "tts", "text": "hi"}),
        "STTService": ("stt_service", {}, {
            "type": "stt", "audio_wav_b64": b64(wav_bytes(np.zeros(RATE // 2), RATE))}),
        "StreamingInterruptHandler": ("streaming_interrupt", {}, {
            "type": "interrupt", "playback_id": "p1", "audio_chunk_b64": b64(bytes(3200))}),
    }
    for name, (module, env, body) in agents.items():
        a = spawn(name, agent_env(spawn, module, **env), notify=False)
        assert not _numpy_mapped(a), f"{name} imported numpy at start"
        status, out = task(a, body)
        assert status in (200, 422), (name, out)  # 422: silence, found by the numpy code
        assert _numpy_mapped(a), name


def test_a_module_that_is_not_installed_fails_the_start_naming_the_package():
    from unified_agents.builtin import deps
    from unified_agents.config import ConfigError

    with pytest.raises(ConfigError) as e:
        deps.need_installed("AudioCapture", "no_such_module_xyz", "python3-xyz", "xyz for audio")
    assert "install the Debian package python3-xyz" in str(e.value)
    assert "no_such_module_xyz" in str(e.value) and "not installed" in str(e.value)


def test_installed_version_reads_debian_and_pypi_metadata_directories():
    from importlib import metadata

    from unified_agents.builtin import deps

    for dist in ("numpy", "PyYAML", "pyyaml", "ruamel.yaml"):
        assert deps.installed_version(dist) == metadata.version(dist), dist
    assert deps.installed_version("no-such-distribution-xyz") == "unknown"
