"""STTService and TTSService under systemd with the real engines installed from Debian by the
package's Depends (docs/SPEECH.md): speech synthesised and recognised through
RequestCoordinator inside the sandboxed units, and a missing model as a failed start with exit
2 that systemd does not restart (RestartPreventExitStatus=2), the package named in the journal.
"""
import json

import pytest

DROPIN = "/run/systemd/system/unified-agent@STTService.service.d/90-systest-nomodel.conf"


def post(c, port: int, body: dict):
    c.write_file("/root/speech-task.json", json.dumps(body))
    r = c.run(["curl", "-sS", "-m", "60", "-w", "\n%{http_code}", "-H",
               "Content-Type: application/json", "-d", "@/root/speech-task.json",
               f"http://127.0.0.1:{port}/task"], timeout=90)
    out, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(out)


@pytest.fixture
def core(container):
    r = container.run(["unified-ctl", "profile", "switch", "core", "--json"], check=False,
                      timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    container.wait_until("curl -sf http://127.0.0.1:6800/health && "
                         "curl -sf http://127.0.0.1:6801/health", timeout=60)
    yield container
    container.run(["rm", "-f", "/root/speech-task.json"])


def test_speech_synthesised_and_recognised_through_the_coordinator(core):
    status, tts = post(core, 7201, {"type": "tts", "text": "turn on the kitchen lights",
                                    "voice": "rms"})
    assert status == 200 and tts["agent"] == "TTSService", tts
    assert tts["result"]["engine"] == "flite" and tts["result"]["sample_rate"] == 16000
    status, stt = post(core, 7201, {"type": "stt",
                                    "audio_wav_b64": tts["result"]["audio_wav_b64"]})
    assert status == 200 and stt["agent"] == "STTService", stt
    assert stt["result"]["text"] == "turn on the kitchen lights", stt["result"]
    health = json.loads(core.run(["curl", "-sf", "http://127.0.0.1:6800/health"]).stdout)
    assert health["implementation"] == "builtin" and health["engine"] == "pocketsphinx"
    assert health["model"] == "/usr/share/pocketsphinx/model/en-us" and health["engine_version"]


def test_bad_audio_is_a_clear_400_and_the_agent_stays_up(core):
    status, out = post(core, 5800, {"type": "stt", "audio_wav_b64": "bm90IGEgd2F2"})
    assert status == 400 and out["error"].startswith("not a WAV file"), out
    core.run(["curl", "-sf", "http://127.0.0.1:6800/health"])


def test_a_missing_model_fails_the_start_once_naming_the_package(core):
    unit = "unified-agent@STTService.service"
    try:
        core.write_file(DROPIN, '[Service]\nEnvironment="STT_MODEL_DIR=/nonexistent/en-us"\n')
        core.systemctl("daemon-reload")
        core.systemctl("restart", unit, check=False)
        core.wait_until(f"systemctl is-failed -q {unit}", timeout=60)
        assert core.unit_property(unit, "ExecMainStatus") == "2"
        assert core.unit_property(unit, "NRestarts") == "0"            # no restart loop
        core.wait_until(f"journalctl -u {unit} -o cat | grep -q "
                        "'install the Debian package pocketsphinx-en-us'", timeout=15)
    finally:
        core.run(["rm", "-f", DROPIN])
        core.systemctl("daemon-reload")
        core.systemctl("reset-failed", unit, check=False)
        core.systemctl("start", unit, check=False)
    core.wait_until("curl -sf http://127.0.0.1:6800/health", timeout=60)
