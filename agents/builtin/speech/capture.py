"""Where AudioCapture's audio comes from (AUDIO_SOURCE; docs/SPEECH.md, "AudioCapture"):

    alsa:DEVICE        an ALSA capture device (`default`, `plughw:1,0`, a PCM defined in
                       /etc/asound.conf), recorded by `arecord` (alsa-utils) run as a program
    file:/PATH.wav     a WAV file: each capture is its first N seconds
    http://HOST/PATH   a WAV stream over HTTP (what `arecord -t wav | ...`, ffmpeg or an
                       Icecast-style server sends): each capture connects, reads the header and
                       N seconds of samples, and hangs up

arecord runs as a child process rather than through a binding (Debian has no
python3-alsaaudio for bookworm's Python; python3-pyaudio drags in PortAudio and JACK): a
stuck device is a process to kill, not a thread to lose. The WAV stream is one HTTP GET
with the format in its header, rather than raw PCM on a TCP port, whose rate, width and
channels would have to be configured on both ends and silently misread when they differ.
"""
from __future__ import annotations

import struct
import subprocess
import time

MAX_HEADER = 65536
KINDS = ("alsa:DEVICE", "file:/PATH.wav", "http://HOST[:PORT]/PATH")


class CaptureError(Exception):
    """A capture that failed for a reason of the source (HTTP status and one line)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_source(spec: str) -> tuple[str, str]:
    """'alsa:default' → ('alsa', 'default'); ValueError naming the allowed forms."""
    kind, sep, rest = spec.partition(":")
    if spec.startswith(("http://", "https://")):
        return "http", spec
    if sep and kind in ("alsa", "file") and rest and "\n" not in rest:
        if kind == "file" and not rest.startswith("/"):
            raise ValueError(f"{spec!r}: a file source needs an absolute path")
        return kind, rest
    raise ValueError(f"{spec!r} is not a source; allowed: {', '.join(KINDS)}")


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _read(f, n: int, deadline: _Deadline) -> bytes:
    """Up to n bytes (fewer only at the end of the stream or the deadline)."""
    out = bytearray()
    read = getattr(f, "read1", f.read)  # what is there now: a live stream must not block
    while len(out) < n and deadline.left() > 0:
        chunk = read(min(n - len(out), 65536))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def read_wav_stream(f, seconds: float, deadline: _Deadline, what: str) -> bytes:
    """A WAV file of the stream's header and its next `seconds` of samples; the data size in
    the header is set to what was read (a stream's header says 0 or 4 GiB)."""
    head = bytearray(_read(f, 12, deadline))
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise CaptureError(502, f"{what} is not a WAV stream (it starts with "
                                f"{bytes(head[:12])!r}); allowed: a RIFF WAVE stream")
    block = rate = 0
    while True:
        ch = _read(f, 8, deadline)
        head += ch
        if len(ch) < 8 or len(head) > MAX_HEADER:
            raise CaptureError(502, f"{what}: the WAV header ends after {len(head)} bytes "
                                    "without a 'data' chunk")
        cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
        if cid == b"data":
            break
        if size > MAX_HEADER:
            raise CaptureError(502, f"{what}: WAV header chunk {cid!r} of {size} bytes; "
                                    f"allowed: a header under {MAX_HEADER} bytes")
        body = _read(f, size + (size & 1), deadline)
        head += body
        if cid == b"fmt " and len(body) >= 16:
            _, _, rate, _, block, _ = struct.unpack_from("<HHIIHH", body)
    if not block or not rate:
        raise CaptureError(502, f"{what}: the WAV stream has no usable 'fmt ' chunk")
    data = _read(f, int(seconds * rate) * block, deadline)
    struct.pack_into("<I", head, len(head) - 4, len(data))
    return bytes(head) + data


class Alsa:
    kind = "alsa"

    def __init__(self, device: str, arecord: str, rate: int, channels: int):
        self.device, self.arecord, self.rate, self.channels = device, arecord, rate, channels
        self.version = _first_line([arecord, "--version"])

    def capture(self, seconds: float, slack_s: float) -> bytes:
        frames = max(1, round(seconds * self.rate))
        cmd = [self.arecord, "-q", "-D", self.device, "-f", "S16_LE", "-r", str(self.rate),
               "-c", str(self.channels), "-t", "wav", "-s", str(frames), "-"]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=seconds + slack_s)
        except subprocess.TimeoutExpired:
            raise CaptureError(504, f"arecord -D {self.device} gave no {seconds:g} s of audio "
                                    f"within {seconds + slack_s:g} s (AUDIO_TIMEOUT_S)") from None
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            raise CaptureError(503, f"arecord -D {self.device} failed (exit {p.returncode}): "
                                    f"{err[-1] if err else 'no message'}")
        return p.stdout


class File:
    kind = "file"
    version = None

    def __init__(self, path: str):
        self.path = path

    def capture(self, seconds: float, slack_s: float) -> bytes:
        try:
            with open(self.path, "rb") as f:
                return read_wav_stream(f, seconds, _Deadline(seconds + slack_s), self.path)
        except OSError as e:
            raise CaptureError(503, f"file source {self.path}: {e.strerror}") from None


class Http:
    kind = "http"
    version = None

    def __init__(self, url: str):
        self.url = url

    def capture(self, seconds: float, slack_s: float) -> bytes:
        import urllib.error
        import urllib.request

        deadline = _Deadline(seconds + slack_s)
        try:
            with urllib.request.urlopen(self.url, timeout=slack_s) as r:
                return read_wav_stream(r, seconds, deadline, self.url)
        except urllib.error.HTTPError as e:
            raise CaptureError(503, f"network source {self.url}: HTTP {e.code} {e.reason}") \
                from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise CaptureError(503, f"network source {self.url}: {reason}") from None


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"
