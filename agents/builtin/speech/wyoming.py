"""The Wyoming protocol (Home Assistant's and Rhasspy's voice services), our own implementation:
the wire format, a threaded server generic over "handlers", and the audio helpers they share.

Wire format (one event): a JSON object on one line (UTF-8, ends with b"\\n") holding "type",
optional "data", "data_length", "payload_length" (and "version"); then data_length bytes of
more JSON data, merged over the header's "data"; then payload_length bytes of binary payload
(raw PCM for audio-chunk). Everything a peer sends is bounded (MAX_HEADER_BYTES,
MAX_DATA_BYTES, MAX_PAYLOAD_BYTES) and checked; a bad frame is a FrameError.

The server (WyomingServer) runs in the agent process: one accept thread plus one thread per
connection (at most WYOMING_MAX_CONNECTIONS), blocking sockets with an idle timeout. Each agent
gives it handlers, one per Wyoming domain it serves (STTService "asr", TTSService "tts",
WakeWordDetector "wake"). Routing on a connection:
  describe                → info, built from every handler's programs()
  ping                    → pong
  a handler's `requests`  → that handler (it becomes the connection's audio owner)
  audio-start/-chunk/-stop → the audio owner, else the one handler with takes_audio
  anything else           → dropped (the protocol says servers ignore unknown events)
A handler raises WyomingError for what the client got wrong: the client gets an "error" event
{"text", "code"} and the connection closes; a bug in a handler is logged and answered the same
way ("internal error"); neither reaches the agent's HTTP side.

How a wake-word handler plugs in (WakeWordDetector):

    class WakeHandler(Handler):
        domain, requests, takes_audio = "wake", ("detect",), True
        def programs(self):
            return [artifact("WakeWordDetector", ..., models=[artifact("hey computer", ...,
                                                                     phrase="hey computer")])]
        def handle(self, session, event):
            st = session.state(self)             # this connection's dict for this handler
            if event.type == "detect": st["names"] = event.data.get("names")
            elif event.type == "audio-start": st["fmt"] = audio_format(event.data)
            elif event.type == "audio-chunk":
                rate, width, channels = audio_format(event.data)  # (no audio-start: allowed)
                ... feed event.payload (raw PCM) to the spotter; on a hit:
                session.send("detection", {"name": ..., "timestamp": ms})
            elif event.type == "audio-stop": session.send("not-detected") unless detected

    self.wyoming = start_server(self, [WakeHandler(...)])   # in on_start(); in on_stop():
    self.wyoming.close()                                     # (when it is not None)
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time

PROTOCOL_VERSION = "1.10.2"  # the PyPI wyoming release this implementation follows
MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 4 << 20  # one audio-chunk: 4 MiB = 2 min of 16 kHz mono 16-bit
AUDIO_EVENTS = ("audio-start", "audio-chunk", "audio-stop")
INFO_DOMAINS = ("asr", "tts", "handle", "intent", "wake", "mic", "snd")
WIDTHS = (2, 3, 4)  # signed little-endian PCM (Wyoming's width 1 is ambiguous: not taken)
MIN_RATE, MAX_RATE = 8000, 48000
# voice clients send mono (Home Assistant) or stereo; more channels would only multiply what
# one connection may hold: STT_MAX_AUDIO_S of 48 kHz stereo 32-bit, ~23 MB at 60 s, the same
# bound as the HTTP body of STTService
MAX_CHANNELS = 2


class FrameError(ValueError):
    """Bytes that are not a Wyoming event: the connection cannot go on."""


class WyomingError(Exception):
    """A request the server refuses: sent as an "error" event, then the connection closes."""

    def __init__(self, text: str, code: str = "bad-request"):
        super().__init__(text)
        self.text = text
        self.code = code


class Event:
    __slots__ = ("type", "data", "payload")

    def __init__(self, type: str, data: dict | None = None, payload: bytes | None = None):
        self.type = type
        self.data = data if data is not None else {}
        self.payload = payload

    def __repr__(self) -> str:
        return f"Event({self.type!r}, {len(self.payload or b'')} payload bytes)"


# ----------------------------------------------------------------- wire format
def encode(event: Event) -> bytes:
    header: dict = {"type": event.type, "version": PROTOCOL_VERSION}
    data = json.dumps(event.data, ensure_ascii=False).encode() if event.data else b""
    if data:
        header["data_length"] = len(data)
    if event.payload:
        header["payload_length"] = len(event.payload)
    return json.dumps(header, ensure_ascii=False).encode() + b"\n" + data + (event.payload or b"")


def _length(header: dict, key: str, limit: int) -> int:
    n = header.get(key)
    if n is None:
        return 0
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= limit:
        raise FrameError(f'"{key}"={n!r}; allowed: an integer 0-{limit}')
    return n


def _exactly(rfile, n: int, what: str) -> bytes:
    buf = rfile.read(n) if n else b""
    if len(buf) != n:
        raise FrameError(f"the connection ended inside the {what} ({len(buf)} of {n} bytes)")
    return buf


def read_event(rfile) -> Event | None:
    """The next event from a binary file object; None at a clean end of stream."""
    line = rfile.readline(MAX_HEADER_BYTES + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEADER_BYTES:
            raise FrameError(f"event header longer than {MAX_HEADER_BYTES} bytes; allowed: one "
                             "JSON line of at most that")
        raise FrameError("the connection ended inside an event header")
    try:
        header = json.loads(line)
    except ValueError as e:
        raise FrameError(f"event header is not JSON ({e}); allowed: one JSON object per "
                         "line") from None
    if not isinstance(header, dict):
        raise FrameError(f"event header is a JSON {type(header).__name__}; allowed: an object "
                         'with a "type"')
    etype = header.get("type")
    if not isinstance(etype, str) or not 1 <= len(etype) <= 64:
        raise FrameError(f'event "type"={etype!r}; allowed: a string of 1-64 characters')
    data = header.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrameError(f'"data" of {etype!r} is a JSON {type(data).__name__}; allowed: an '
                         "object")
    n_data = _length(header, "data_length", MAX_DATA_BYTES)
    n_payload = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    if n_data:
        try:
            more = json.loads(_exactly(rfile, n_data, "event data"))
        except ValueError as e:
            raise FrameError(f"event data of {etype!r} is not JSON ({e})") from None
        if not isinstance(more, dict):
            raise FrameError(f"event data of {etype!r} is not a JSON object")
        data.update(more)
    payload = _exactly(rfile, n_payload, "event payload") if n_payload else None
    return Event(etype, data, payload)


# ----------------------------------------------------------------- audio helpers
def _int(data: dict, key: str, allowed, what: str) -> int:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
        raise WyomingError(f'audio "{key}"={v!r}; allowed: {what}', "bad-audio")
    return v


def audio_format(data: dict) -> tuple[int, int, int]:
    """(rate, width, channels) of an audio-start/audio-chunk event, checked."""
    return (_int(data, "rate", range(MIN_RATE, MAX_RATE + 1), f"{MIN_RATE}-{MAX_RATE} Hz"),
            _int(data, "width", WIDTHS, "2, 3 or 4 bytes (signed little-endian PCM)"),
            _int(data, "channels", range(1, MAX_CHANNELS + 1), f"1-{MAX_CHANNELS}"))


def pcm_to_wav(pcm: bytes, rate: int, width: int, channels: int) -> bytes:
    """A RIFF WAVE file around raw PCM (what wav.read and the agents' task interface take)."""
    block = width * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + \
        struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


class AudioBuffer:
    """The audio of one audio-start … audio-stop stream, bounded by max_seconds."""

    def __init__(self, fmt: tuple[int, int, int], max_seconds: float, setting: str):
        self.fmt = fmt
        self.limit = int(max_seconds * fmt[0]) * fmt[1] * fmt[2]
        self.max_seconds = max_seconds
        self.setting = setting
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, event: Event) -> None:
        fmt = audio_format(event.data)
        if fmt != self.fmt:
            raise WyomingError(f"audio-chunk format {fmt} (rate, width, channels) differs "
                               f"from the stream's {self.fmt}; allowed: one format per stream",
                               "bad-audio")
        pcm = event.payload or b""
        if len(pcm) % (self.fmt[1] * self.fmt[2]):
            raise WyomingError(f"audio-chunk of {len(pcm)} bytes is not whole samples of "
                               f"{self.fmt[1]} bytes x {self.fmt[2]} channels", "bad-audio")
        self.size += len(pcm)
        if self.size > self.limit:
            raise WyomingError(f"audio is longer than {self.max_seconds:g} s; allowed: at most "
                               f"{self.max_seconds:g} s ({self.setting})", "too-long")
        self.parts.append(pcm)

    def wav(self) -> bytes:
        return pcm_to_wav(b"".join(self.parts), *self.fmt)


def chunks(pcm: bytes, rate: int, width: int = 2, channels: int = 1,
           samples: int = 1024):
    """audio-start, audio-chunk … (`samples` frames each), audio-stop events of `pcm`."""
    fmt = {"rate": rate, "width": width, "channels": channels}
    yield Event("audio-start", {**fmt, "timestamp": 0})
    step = samples * width * channels
    for i in range(0, len(pcm), step):
        yield Event("audio-chunk", {**fmt, "timestamp": i // (width * channels) * 1000 // rate},
                    pcm[i:i + step])
    yield Event("audio-stop", {"timestamp": len(pcm) // (width * channels) * 1000 // rate})


def artifact(name: str, description: str, version: str | None, *, by: str, url: str,
             **more) -> dict:
    """An info entry (program, model or voice): the fields every Wyoming artifact has."""
    return {"name": name, "attribution": {"name": by, "url": url}, "installed": True,
            "description": description, "version": version, **more}


# ----------------------------------------------------------------- handlers and sessions
class Handler:
    """One Wyoming domain an agent serves. One instance per agent, shared by connections
    (per-connection state: session.state(self)); handle() runs on the connection's thread."""

    domain = ""
    requests: tuple[str, ...] = ()
    takes_audio = False

    def programs(self) -> list[dict]:
        raise NotImplementedError

    def handle(self, session: Session, event: Event) -> None:
        raise NotImplementedError


class Session:
    """One client connection."""

    def __init__(self, sock: socket.socket, handlers: list[Handler]):
        self.sock = sock
        self.handlers = handlers
        self.audio_owner: Handler | None = None
        self._state: dict[int, dict] = {}

    def state(self, handler: Handler) -> dict:
        return self._state.setdefault(id(handler), {})

    def send(self, etype: str, data: dict | None = None, payload: bytes | None = None) -> None:
        self.sock.sendall(encode(Event(etype, data, payload)))

    def dispatch(self, event: Event) -> None:
        t = event.type
        if t == "describe":
            info: dict = {d: [] for d in INFO_DOMAINS}
            for h in self.handlers:
                info[h.domain] = info[h.domain] + h.programs()
            self.send("info", info)
            return
        if t == "ping":
            self.send("pong", {"text": event.data.get("text")})
            return
        for h in self.handlers:
            if t in h.requests:
                self.audio_owner = h
                h.handle(self, event)
                return
        if t in AUDIO_EVENTS:
            owner = self.audio_owner
            if owner is None:
                takers = [h for h in self.handlers if h.takes_audio]
                if len(takers) != 1:
                    raise WyomingError(f"{t} before a request; allowed first: "
                                       + ", ".join(r for h in self.handlers for r in h.requests))
                owner = takers[0]
            owner.handle(self, event)
        # other events: dropped, as the protocol asks of servers (e.g. select-program,
        # synthesize-start/-chunk/-stop, which come with a plain synthesize too)


class WyomingServer:
    def __init__(self, sock: socket.socket, handlers: list[Handler], log, *,
                 max_connections: int = 16, idle_s: float = 120.0):
        self.sock = sock
        self.handlers = handlers
        self.log = log
        self.max_connections = max_connections
        self.idle_s = idle_s
        self.port = sock.getsockname()[1]
        self.lock = threading.Lock()
        self.open = 0
        self.served = 0     # connections handled
        self.refused = 0    # connections turned away (busy)
        self.errors = 0     # error events sent
        self.closed = False
        self.thread = threading.Thread(target=self._accept, name="wyoming-accept", daemon=True)

    def start(self) -> WyomingServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self.sock.close()

    def stats(self) -> dict:
        return {"port": self.port, "domains": [h.domain for h in self.handlers],
                "connections": self.open, "served": self.served, "refused": self.refused,
                "errors": self.errors}

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                if self.closed:
                    return
                time.sleep(0.1)  # EMFILE and the like: do not spin
                continue
            with self.lock:
                full = self.open >= self.max_connections
                if not full:
                    self.open += 1
            if full:
                self._refuse(conn)
                continue
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True,
                             name=f"wyoming-{addr[1]}").start()

    def _refuse(self, conn: socket.socket) -> None:
        self.refused += 1
        try:
            conn.settimeout(1.0)
            conn.sendall(encode(Event("error", {
                "text": f"busy: {self.max_connections} Wyoming connections are open "
                        "(WYOMING_MAX_CONNECTIONS); try again", "code": "busy"})))
        except OSError:
            pass
        conn.close()

    def _serve(self, conn: socket.socket, addr) -> None:
        session = Session(conn, self.handlers)
        conn.settimeout(self.idle_s)
        rfile = conn.makefile("rb")
        try:
            while True:
                event = read_event(rfile)
                if event is None:
                    return
                session.dispatch(event)
        except (FrameError, WyomingError) as e:
            text, code = (e.text, e.code) if isinstance(e, WyomingError) else (str(e), "bad-frame")
            self._error(session, text, code, addr)
        except TimeoutError:
            self._error(session, f"no event for {self.idle_s:g} s (WYOMING_IDLE_S); closing",
                        "timeout", addr)
        except OSError:
            pass  # the client went away
        except Exception as e:  # a bug in a handler: the agent serves on
            self.log.exception(f"Wyoming connection from {addr[0]} failed", e)
            self._error(session, f"internal error: {type(e).__name__}", "internal", addr)
        finally:
            rfile.close()
            conn.close()
            with self.lock:
                self.open -= 1
                self.served += 1

    def _error(self, session: Session, text: str, code: str, addr) -> None:
        self.errors += 1
        self.log.info(f"Wyoming error to {addr[0]}: {text}", code=code)
        try:
            session.send("error", {"text": text, "code": code})
            _linger(session.sock)
        except OSError:
            pass


def _linger(sock: socket.socket) -> None:
    """Close after an error without losing it: closing a socket with unread input (the rest of
    a stream we refused) sends a reset, which may destroy the error event on its way. So: end
    our side, then read and drop what still comes for a moment (as the HTTP server does)."""
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(0.5)
    deadline, dropped = time.monotonic() + 2.0, 0
    while time.monotonic() < deadline and dropped < MAX_PAYLOAD_BYTES:
        data = sock.recv(65536)
        if not data:
            return
        dropped += len(data)


def start_server(agent, handlers: list[Handler]) -> WyomingServer | None:
    """The agent's Wyoming server on WYOMING_PORT (unset: none), bound to the agent's address
    (UNIFIED_BIND) unless WYOMING_BIND says otherwise. Call from on_start(): a port in use fails
the start with one line (exit 1, as for the agent's own ports)."""
    from unified_agents.runtime import StartupError

    env = agent.config.env
    port = env.integer("WYOMING_PORT", 0, 1024, 65535)
    if not port:
        return None
    host = env.string("WYOMING_BIND", agent.config.bind)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=fam, backlog=64)
    except OSError as e:
        raise StartupError(f"cannot listen on {host}:{port} (WYOMING_PORT): "
                           f"{e.strerror or e}") from None
    server = WyomingServer(sock, handlers, agent.log,
                           max_connections=env.integer("WYOMING_MAX_CONNECTIONS", 16, 1, 1024),
                           idle_s=env.number("WYOMING_IDLE_S", 120.0, 1.0, 86400.0)).start()
    agent.log.info("Wyoming server listening", port=port, bind=host,
                   domains=",".join(h.domain for h in handlers))
    if agent.config.idle_timeout_s > 0:
        # systemd's socket holds only the agent port: nothing starts the agent for a Wyoming
        # client, and the idle exit counts HTTP requests only
        agent.log.warning(f"WYOMING_PORT on an agent with an idle timeout "
                          f"({agent.config.idle_timeout_s:g} s): Wyoming clients neither start "
                          "it nor keep it running; serve Wyoming from an essential agent")
    return server


def handler_error(e) -> WyomingError:
    """An agent's HTTPError (the task interface's 4xx/5xx) as a Wyoming error event."""
    return WyomingError(e.message, {400: "bad-request", 413: "too-long"}.get(e.status,
                                                                          f"http-{e.status}"))

