"""One conversation turn, for `unified-ctl ask` (the CLI only renders what this returns).

The turn is a `respond` task sent to RequestCoordinator, which routes it to Responder; the
Responder runs NLU → (confirmation) → command / knowledge / chitchat / LLM and answers with
the tier, the reply and per-stage timings (docs/DIALOGUE.md). The coordinator's address is
the catalog's (RequestCoordinator's port on settings.bind_address)."""
from __future__ import annotations

import json
import time

from unified_core.errors import UnifiedError

COORDINATOR = "RequestCoordinator"


class AskFailed(UnifiedError):
    """The turn got no answer; the message names the stage and the agent's own words."""


def coordinator_url(cat) -> tuple[str, int]:
    from unified_core.fleetview import connect_host

    a = cat.agents.get(COORDINATOR)
    if a is None:
        raise AskFailed(f"the catalog has no {COORDINATOR}: nothing routes a conversation turn")
    return connect_host(cat.settings.bind_address), a.port


def read_wav_b64(path: str) -> str:
    """A WAV file for a spoken turn, base64 (the agents check the audio itself)."""
    import base64

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AskFailed(f"{path}: cannot read: {e.strerror}") from None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AskFailed(f"{path}: not a WAV file (no RIFF/WAVE header); allowed: a .wav file")
    return base64.b64encode(data).decode()


def write_wav(path: str, b64: str) -> int:
    import base64

    data = base64.b64decode(b64)
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise AskFailed(f"{path}: cannot write the reply audio: {e.strerror}") from None
    return len(data)


def ask(cat, text: str | None, session: str | None = None, timeout: float = 60.0,
        audio_b64: str | None = None, reply_audio: bool = False, wake: bool = False) -> dict:
    """→ the Responder's answer plus "client_ms" (the whole round trip seen from here).
    A spoken turn: audio_b64 (a WAV) instead of text, wake: answered only after a wake
    phrase; reply_audio: the reply as a WAV too."""
    import http.client

    host, port = coordinator_url(cat)
    body: dict = {"type": "respond"}
    if audio_b64 is not None:
        body["audio_wav_b64"] = audio_b64
        if wake:
            body["wake"] = True
    else:
        body["text"] = text
    if reply_audio:
        body["reply_audio"] = True
    if session is not None:
        body["session"] = session
    data = json.dumps(body).encode()
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/task", data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as e:
        raise AskFailed(f"{COORDINATOR} at {host}:{port} did not answer: {e}") from None
    finally:
        conn.close()
    ms = round((time.perf_counter() - t0) * 1000, 2)
    try:
        out = json.loads(raw)
    except ValueError:
        raise AskFailed(f"{COORDINATOR} answered {resp.status} with no JSON: "
                        f"{raw[:200].decode('utf-8', 'replace')}") from None
    if resp.status >= 400 or not isinstance(out, dict) or "result" not in out:
        msg = out.get("error") if isinstance(out, dict) else None
        who = (out.get("agent") if isinstance(out, dict) else None) or \
            resp.getheader("X-Routed-To") or COORDINATOR
        raise AskFailed(f"{who} answered {resp.status}: "
                        + (msg if isinstance(msg, str) else repr(raw[:200])))
    result = out["result"]
    result["client_ms"] = ms
    return result
