"""A Wyoming client (what Home Assistant's Wyoming integration does) transcribes and
synthesises against STTService and TTSService under systemd, sandboxed, on the catalog's
WYOMING_PORT (10310, 10210). The client is plain stdlib Python written here from the
protocol's description (the PyPI `wyoming` library is the client of the unit tests; the
container has only Debian packages), so the wire format is checked by a second, independent
implementation. A bad frame gets an error event and the agent serves on."""
import json

import pytest

STT_PORT, TTS_PORT = 10310, 10210
TEXT = "turn on the kitchen lights"
CLIENT = "/root/wyoming_client.py"
CLIENT_PY = r'''
import json, socket, sys

def send(sock, etype, data=None, payload=b""):
    header = {"type": etype}
    body = json.dumps(data).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    sock.sendall(json.dumps(header).encode() + b"\n" + body + payload)

def read(f):
    line = f.readline()
    if not line:
        return None
    h = json.loads(line)
    data = h.get("data") or {}
    if h.get("data_length"):
        data.update(json.loads(f.read(h["data_length"])))
    payload = f.read(h["payload_length"]) if h.get("payload_length") else b""
    return h["type"], data, payload

def call(port, events, until, raw=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(raw)
        for e in events:
            send(s, *e)
        f = s.makefile("rb")
        out = []
        while True:
            ev = read(f)
            if ev is None:
                return out
            out.append(ev)
            if ev[0] in until or ev[0] == "error":
                return out

stt, tts, text = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
info_stt = call(stt, [("describe",)], ("info",))[-1][1]
info_tts = call(tts, [("describe",)], ("info",))[-1][1]
spoken = call(tts, [("synthesize", {"text": text, "voice": {"name": "rms"}})], ("audio-stop",))
fmt = {k: spoken[0][1][k] for k in ("rate", "width", "channels")}
pcm = b"".join(p for t, _, p in spoken if t == "audio-chunk")
audio = [("transcribe", {"language": "en"}), ("audio-start", fmt)]
audio += [("audio-chunk", fmt, pcm[i:i + 2048]) for i in range(0, len(pcm), 2048)]
heard = call(stt, audio + [("audio-stop", {})], ("transcript",))
bad = call(stt, [], ("pong",), raw=b"GET / HTTP/1.1\r\n\r\n")
pong = call(stt, [("ping", {"text": "after"})], ("pong",))
print(json.dumps({
    "asr": [(p["name"], [(m["name"], m["languages"]) for m in p["models"]])
            for p in info_stt["asr"]],
    "tts_voices": sorted(v["name"] for p in info_tts["tts"] for v in p["voices"]),
    "first": spoken[0][0], "last": spoken[-1][0], "format": fmt, "audio_s":
        len(pcm) / (fmt["rate"] * fmt["width"]),
    "heard": heard[-1][0], "transcript": heard[-1][1],
    "bad": [bad[-1][0], bad[-1][1]], "pong": pong[-1][1]}))
'''


@pytest.fixture
def core(container):
    """The core profile running, both Wyoming ports answering, the client in place."""
    r = container.run(["unified-ctl", "profile", "switch", "core", "--json"], check=False,
                      timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    container.wait_until(["python3", "-c", "import socket\nfor p in "
                          f"({STT_PORT}, {TTS_PORT}):\n"
                          "    socket.create_connection(('127.0.0.1', p), 2).close()"],
                         timeout=60)
    container.write_file(CLIENT, CLIENT_PY)
    yield container
    container.run(["rm", "-f", CLIENT])


def test_a_wyoming_client_transcribes_and_synthesises(core):
    pid = core.unit_property("unified-agent@STTService.service", "MainPID")
    r = core.run(["python3", CLIENT, str(STT_PORT), str(TTS_PORT), TEXT], timeout=120)
    out = json.loads(r.stdout)
    assert out["asr"] == [["STTService", [["pocketsphinx-en-us", ["en"]]]]], out
    assert {"rms", "slt", "kal", "en-us"} <= set(out["tts_voices"]), out["tts_voices"]
    assert (out["first"], out["last"]) == ("audio-start", "audio-stop")
    assert out["format"] == {"rate": 16000, "width": 2, "channels": 1} and out["audio_s"] > 1
    assert out["heard"] == "transcript" and out["transcript"]["text"] == TEXT, out
    # a bad frame: an error event, then the same agent answers the next connection
    assert out["bad"][0] == "error" and out["bad"][1]["code"] == "bad-frame", out
    assert out["pong"] == {"text": "after"}
    health = json.loads(core.run(["curl", "-sf", "http://127.0.0.1:6800/health"]).stdout)
    assert health["wyoming"]["port"] == STT_PORT and health["wyoming"]["errors"] >= 1
    assert health["status"] == "healthy"
    assert core.unit_property("unified-agent@STTService.service", "MainPID") == pid
