"""An operator's Wyoming service as the engine of STTService (STT_ENGINE=wyoming://HOST:PORT)
or TTSService (TTS_ENGINE=wyoming://HOST:PORT): e.g. wyoming-faster-whisper or wyoming-piper,
or another unified-system's STTService/TTSService (docs/SPEECH.md, "Wyoming").

One connection per call, as Home Assistant does. Nothing falls back to a local engine: an
unreachable service is a 503 naming the address, a service that answers an error event a 502
with its text, one that stops answering a 504. /health shows the last contact.
"""
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from unified_agents import ConfigError, HTTPError

from . import wyoming as w

MAX_ANSWER_BYTES = 64 << 20  # audio of one answer: ~35 min of 16 kHz 16-bit mono


def parse_url(setting: str, url: str) -> tuple[str, int]:
    allowed = "allowed: wyoming://HOST:PORT (e.g. wyoming://127.0.0.1:10300)"
    try:
        u = urlsplit(url)
        host, port = u.hostname, u.port
    except ValueError:
        raise ConfigError(f"{setting}={url!r} is invalid; {allowed}") from None
    if u.scheme != "wyoming" or not host or not port or (u.path not in ("", "/")):
        raise ConfigError(f"{setting}={url!r} is invalid; {allowed}")
    return host, port


class WyomingClient:
    def __init__(self, setting: str, url: str, timeout_s: float):
        self.setting = setting
        self.url = url
        self.host, self.port = parse_url(setting, url)
        self.timeout_s = timeout_s
        self.connect_timeout_s = min(5.0, timeout_s)
        self.last_ok: float | None = None     # monotonic time of the last good exchange
        self.last_error: str | None = None
        self.last_try = 0.0

    def where(self) -> str:
        return f"the Wyoming service at {self.url} ({self.setting})"

    def exchange(self, events, until: tuple[str, ...],
                 timeout_s: float | None = None) -> list[w.Event]:
        """Send `events`, read events up to one of the types `until` (included)."""
        wait = timeout_s or self.timeout_s
        self.last_try = time.monotonic()
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout_s)
        except OSError as e:
            raise self._fail(503, f"{self.where()} is unreachable: "
                                  f"{e.strerror or e}") from None
        got: list[w.Event] = []
        size = 0
        try:
            sock.settimeout(wait)
            sock.sendall(b"".join(w.encode(e) for e in events))
            rfile = sock.makefile("rb")
            while True:
                event = w.read_event(rfile)
                if event is None:
                    raise self._fail(502, f"{self.where()} closed the connection without "
                                          f"answering ({' or '.join(until)})")
                if event.type == "error":
                    raise self._fail(502, f"{self.where()} answered an error: "
                                          f"{event.data.get('text') or event.data}")
                got.append(event)
                size += len(event.payload or b"")
                if size > MAX_ANSWER_BYTES:
                    raise self._fail(502, f"{self.where()} sent more than "
                                          f"{MAX_ANSWER_BYTES >> 20} MiB of payload; allowed: "
                                          "at most that")
                if event.type in until:
                    break
        except TimeoutError:
            raise self._fail(504, f"{self.where()} did not answer within {wait:g} s") \
                from None
        except w.FrameError as e:
            raise self._fail(502, f"{self.where()} sent a bad event: {e}") from None
        except OSError as e:
            raise self._fail(502, f"{self.where()} broke the connection: "
                                  f"{e.strerror or e}") from None
        finally:
            sock.close()
        self.last_ok, self.last_error = time.monotonic(), None
        return got

    def _fail(self, status: int, message: str) -> HTTPError:
        self.last_error = message
        return HTTPError(status, message)

    def describe(self) -> dict:
        # a describe is instant for a live service; /health must not hang on a dead one
        return self.exchange([w.Event("describe")], ("info",), self.connect_timeout_s)[-1].data

    def check(self) -> dict:
        """The /health check: the last contact; after a failure, one describe every 10 s
        so that the check turns ok once the operator's service is back."""
        if self.last_error and time.monotonic() - self.last_try >= 10:
            try:
                self.describe()
            except HTTPError:
                pass
        if self.last_error:
            return {"status": "degraded", "address": self.url, "error": self.last_error}
        return {"status": "ok", "address": self.url}


def _first(info: dict, domain: str) -> tuple[dict, dict]:
    """(program, first model or voice) the remote lists for `domain`, or empties."""
    programs = info.get(domain) or [{}]
    prog = programs[0] if isinstance(programs[0], dict) else {}
    models = prog.get("voices" if domain == "tts" else "models") or [{}]
    return prog, models[0] if isinstance(models[0], dict) else {}


class Remote:
    """What STTService/TTSService read of an engine (name, model, version), for a remote one."""

    name = "wyoming"

    def __init__(self, agent_name: str, setting: str, url: str, domain: str, timeout_s: float,
                 log):
        self.client = WyomingClient(setting, url, timeout_s)
        self.domain = domain
        self.program, self.model = "unknown", "unknown"
        self.version = "unknown"
        self.load_s: float | None = None
        t0 = time.perf_counter()
        try:   # learn the names for /health; an operator's service may come up later
            self.learn(self.client.describe())
            self.load_s = time.perf_counter() - t0
        except HTTPError as e:
            log.warning(f"{agent_name}: {e.message}; tasks answer 503 until it is reachable")

    def learn(self, info: dict) -> None:
        prog, model = _first(info, self.domain)
        self.program = str(prog.get("name") or "unknown")
        self.model = str(model.get("name") or "unknown")
        self.version = str(prog.get("version") or "unknown")

    @property
    def model_dir(self) -> str:  # STTService reports engine.model_dir as "model"
        return f"{self.program}/{self.model} at {self.client.url}"

    def check(self) -> dict:
        return self.client.check()


class RemoteSTT(Remote):
    def __init__(self, agent_name: str, url: str, timeout_s: float, log):
        super().__init__(agent_name, "STT_ENGINE", url, "asr", timeout_s, log)

    def transcribe(self, pcm16k, phrases: tuple | None = None) -> dict:
        """Same answer as stt.Pocketsphinx.transcribe, less what Wyoming does not carry
        (word times and confidences: "words" is empty and "confidence" None)."""
        if phrases:
            raise HTTPError(400, f'"phrases" need the local PocketSphinx engine; this agent '
                                 f"uses {self.client.where()}, which takes no phrase list")
        t0 = time.perf_counter()
        events = [w.Event("transcribe", {"language": "en"}), *w.chunks(pcm16k.tobytes(), 16000)]
        text = self.client.exchange(events, ("transcript",))[-1].data.get("text")
        if not isinstance(text, str):
            raise HTTPError(502, f"{self.client.where()} sent a transcript without text")
        return {"text": " ".join(text.split()), "confidence": None, "words": [],
                "decode_s": time.perf_counter() - t0, "hyp_score": None, "search": "remote"}


class RemoteTTS(Remote):
    def __init__(self, agent_name: str, url: str, timeout_s: float, log):
        super().__init__(agent_name, "TTS_ENGINE", url, "tts", timeout_s, log)

    def voices(self) -> list[dict]:
        """The remote's voices (a live describe: what it has now)."""
        info = self.client.describe()
        self.learn(info)
        return [v for p in info.get("tts") or [] if isinstance(p, dict)
                for v in p.get("voices") or [] if isinstance(v, dict)]

    def synthesize(self, text: str, voice: str | None) -> bytes:
        """A WAV of what the remote synthesised."""
        data: dict = {"text": text}
        if voice:
            data["voice"] = {"name": voice}
        events = self.client.exchange([w.Event("synthesize", data)], ("audio-stop",))
        # the format: audio-start's, or the first chunk's (audio-start is optional)
        fmt_src = [e for e in events if e.type in ("audio-start", "audio-chunk")]
        if not fmt_src:
            raise HTTPError(502, f"{self.client.where()} sent no audio")
        try:
            fmt = w.audio_format(fmt_src[0].data)
        except w.WyomingError as e:
            raise HTTPError(502, f"{self.client.where()} sent audio we cannot read: "
                                 f"{e.text}") from None
        pcm = b"".join(e.payload or b"" for e in events if e.type == "audio-chunk")
        return w.pcm_to_wav(pcm, *fmt)
