"""Fixtures for the speech agents' tests: real STTService/TTSService processes (the SDK
tests' spawner) running the real engines. Tests that need an engine fail, naming the Debian
package, where it is not installed (the project installs them for the test machine:
scripts/dev/host-tools; docs/SPEECH.md)."""
from __future__ import annotations

import base64
import os
import struct

import pytest

from tests.host_tools import require_module, require_tool
from ..sdk.harness import builtin_env as agent_env  # noqa: F401  (the tests import it from here)
from ..sdk.harness import ROOT, sdk_path, spawn, spawn_module  # noqa: F401  (fixtures)


# A missing engine fails the test naming its Debian package (tests/host_tools.py): the
# project installs them (scripts/dev/host-tools), and a skipped test would prove nothing.
@pytest.fixture
def _need_numpy():
    require_module("numpy")


@pytest.fixture
def _need_stt():
    require_module("pocketsphinx")
    if not os.path.isdir("/usr/share/pocketsphinx/model/en-us"):
        pytest.fail("the pocketsphinx model is missing: install it with "
                    "scripts/dev/install_deps.sh (Debian package pocketsphinx-en-us)",
                    pytrace=False)


@pytest.fixture
def _need_flite():
    require_tool("flite")


@pytest.fixture
def _need_espeak():
    require_tool("espeak-ng")


needs_numpy = pytest.mark.usefixtures("_need_numpy")
needs_stt = pytest.mark.usefixtures("_need_stt")
needs_flite = pytest.mark.usefixtures("_need_flite")
needs_espeak = pytest.mark.usefixtures("_need_espeak")


# notify=False: these agents live for a whole module and nobody reads a stand-in notify
# socket meanwhile; once its queue is full (net.unix.max_dgram_qlen, 10 here) the agent's
# next STATUS= would block, as it would against a PID 1 that stopped reading
@pytest.fixture(scope="module")
def stt(spawn_module):  # noqa: F811
    return spawn_module("STTService", agent_env(spawn_module, "stt_service",
                                                 STT_MAX_AUDIO_S=20), notify=False)


@pytest.fixture(scope="module")
def tts(spawn_module):  # noqa: F811
    return spawn_module("TTSService", agent_env(spawn_module, "tts_service", TTS_ENGINE="flite",
                                                 TTS_VOICE="rms", TTS_MAX_CHARS=300),
                        notify=False)


def task(agent, body: dict):
    status, out, _ = agent.request("POST", "/task", body, timeout=60)
    return status, out


def say(tts_agent, text: str, **opts) -> bytes:
    status, out = task(tts_agent, {"type": "tts", "text": text, **opts})
    assert status == 200, out
    return base64.b64decode(out["result"]["audio_wav_b64"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wav_bytes(samples, rate: int, *, fmt: str = "pcm16", extensible: bool = False,
              data_size: int | None = None) -> bytes:
    """A WAV file of float samples in [-1, 1], shape (frames, channels), written by hand
    (the stdlib `wave` writes PCM only) as pcm8/pcm16/pcm24/pcm32/float32/float64."""
    import numpy as np

    x = np.asarray(samples, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    if fmt == "float32":
        raw, tag, bits = x.astype("<f4").tobytes(), 3, 32
    elif fmt == "float64":
        raw, tag, bits = x.astype("<f8").tobytes(), 3, 64
    elif fmt == "pcm8":
        raw, tag, bits = np.clip(np.round(x * 127 + 128), 0, 255).astype(np.uint8).tobytes(), 1, 8
    elif fmt == "pcm24":
        v = np.clip(np.round(x * 8388607), -8388608, 8388607).astype("<i4").reshape(-1)
        raw = b"".join(int(i).to_bytes(3, "little", signed=True) for i in v)
        tag, bits = 1, 24
    else:
        bits = int(fmt[3:])
        scale = (1 << (bits - 1)) - 1
        raw = np.round(x * scale).astype("<i2" if bits == 16 else "<i4").tobytes()
        tag = 1
    block = ch * bits // 8
    if extensible:
        guid = struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
        fmt_chunk = struct.pack("<HHIIHHHHI", 0xFFFE, ch, rate, rate * block, block, bits, 22,
                                bits, 0) + guid
    else:
        fmt_chunk = struct.pack("<HHIIHH", tag, ch, rate, rate * block, block, bits)
    size = len(raw) if data_size is None else data_size
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
            + b"data" + struct.pack("<I", size) + raw)
    return b"RIFF" + struct.pack("<I", min(len(body), 0xFFFFFFFF)) + body
