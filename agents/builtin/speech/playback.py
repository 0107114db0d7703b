"""Playing synthesised speech: to an ALSA device through `aplay` (alsa-utils) or to a WAV file
(the file sink), sentence by sentence as it is synthesised, stoppable at once.

A Playback feeds its sink in 20 ms blocks paced at real time (at most LEAD_S ahead of the
clock), like a sound card draining its buffer: whatever has not been fed when stop() comes is
never played, so a stop cuts the speech within a block plus the sink's own buffer (aplay runs
with a 100 ms buffer; the file sink has none). Pacing here, not only in the device, makes the
ALSA `file` plugin (whose slave, `null`, drains at once) and the file sink show the cut the
way a loudspeaker would: the file ends where the listener stopped hearing.

A Playback also keeps the last HEARD_KEEP_S of what it played, with when each sample sounded
(by its pacing clock, CLOCK_MONOTONIC), so that heard() can say what the loudspeaker was
playing over the last moments: the reference StreamingInterruptHandler discounts as echo.

An ALSA device string may hold `{playback_id}`, replaced by the playback's id: with the
`file` plugin (`file:FILE=/var/lib/unified/tts-{playback_id}.raw,FORMAT=raw`) each playback
writes its own file, which is how the tests observe the real ALSA path without a sound card.
"""
from __future__ import annotations

import os
import struct
import subprocess
import threading
import time

BLOCK_S = 0.02
LEAD_S = 0.06
APLAY_BUFFER_US = 100_000
HEARD_KEEP_S = 30.0


class SinkFailed(RuntimeError):
    pass


class AlsaSink:
    kind = "alsa"

    def __init__(self, aplay: str, device: str, playback_id: str, rate: int):
        self.device = device.replace("{playback_id}", playback_id)
        self.argv = [aplay, "-q", "-D", self.device, "-t", "raw", "-f", "S16_LE", "-c", "1",
                     "-r", str(rate), "-B", str(APLAY_BUFFER_US)]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def write(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise SinkFailed(self._error()) from None

    def _error(self) -> str:
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
        lines = err.strip().splitlines()
        return (f"aplay -D {self.device} exited with {self.proc.returncode}: "
                f"{lines[-1] if lines else 'no message'}")

    def close(self) -> None:
        """Let aplay play out its buffer and exit."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if rc != 0:
            raise SinkFailed(self._error())

    def abort(self) -> None:
        """Stop now: aplay killed, its buffer dropped."""
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


class FileSink:
    """A mono 16-bit WAV growing as it plays; its header sizes are fixed at the end."""

    kind = "file"

    def __init__(self, directory: str, playback_id: str, rate: int):
        self.path = os.path.join(directory, f"{playback_id}.wav")
        self.f = open(self.path, "wb")
        self.f.write(_wav_header(rate, 0))
        self.rate, self.n = rate, 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.f.flush()
        self.n += len(data)

    def close(self) -> None:
        if self.f.closed:  # (stop() right after the end: closed once)
            return
        self.f.seek(0)
        self.f.write(_wav_header(self.rate, self.n))
        self.f.close()

    abort = close


def _wav_header(rate: int, n: int) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", n))


class Playback:
    """One utterance played: feed() PCM as it is synthesised, end() when there is no more,
    stop() to cut it. States: playing → finished | stopped | failed."""

    def __init__(self, playback_id: str, sink, rate: int):
        self.id, self.sink, self.rate = playback_id, sink, rate
        self.state = "playing"
        self.error: str | None = None
        self.fed = 0  # bytes written to the sink
        self.started = time.monotonic()
        self.ended_at: float | None = None
        self._pending = bytearray()
        # what was fed, for heard(): its last HEARD_KEEP_S, and where the pacing clock
        # (re)started: sample s sounds at t + (s - first) / rate of the last (t, first) before it
        self._kept = bytearray()
        self._kept_from = 0  # sample index of _kept's first sample
        self._clock: list[tuple[float, int]] = []
        self._more = True
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"playback-{playback_id}",
                                        daemon=True)
        self._thread.start()

    @property
    def finished(self) -> bool:
        return self.state != "playing"

    busy = property(lambda self: self.state == "playing")  # sessions.py: no idle expiry

    @property
    def played_s(self) -> float:
        return round(self.fed / 2 / self.rate, 3)

    def feed(self, pcm: bytes) -> None:
        with self._cond:
            self._pending += pcm
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self._more = False
            self._cond.notify()

    def _next_block(self, size: int) -> bytes | None:
        with self._cond:
            while not self._pending and self._more and not self._stop.is_set():
                self._cond.wait()
            if self._stop.is_set() or not self._pending:
                return None
            block = bytes(self._pending[:size])
            del self._pending[:size]
            return block

    def _run(self) -> None:
        size = int(self.rate * BLOCK_S) * 2
        t0 = None
        try:
            while True:
                block = self._next_block(size)
                if block is None:
                    break
                now = time.monotonic()
                if t0 is None or now > t0 + self.fed / 2 / self.rate:  # start or underrun
                    t0 = now - self.fed / 2 / self.rate
                    with self._cond:
                        self._clock.append((now, self.fed // 2))
                ahead = t0 + self.fed / 2 / self.rate - now - LEAD_S
                if ahead > 0 and self._stop.wait(ahead):
                    break
                self.sink.write(block)
                with self._cond:
                    self.fed += len(block)
                    self._keep(block)
            if not self._stop.is_set():
                self.sink.close()
                self._set("finished")
        except (SinkFailed, OSError, ValueError) as e:
            if not self._stop.is_set():  # (a write cut by stop() is no failure)
                self.error = str(e)
                self._set("failed")

    def _keep(self, block: bytes) -> None:
        self._kept += block
        extra = len(self._kept) // 2 - int(HEARD_KEEP_S * self.rate)
        if extra > 0:
            del self._kept[:2 * extra]
            self._kept_from += extra

    def heard(self, seconds: float) -> bytes:
        """The samples (16-bit mono at self.rate) that sounded over the last `seconds`, by
        the pacing clock: silence where nothing played (before the start, after the end or
        the stop, in an underrun, or older than HEARD_KEEP_S)."""
        now = time.monotonic()
        n = max(0, round(seconds * self.rate))
        out = bytearray(2 * n)
        with self._cond:
            until = self.ended_at if self.state == "stopped" and self.ended_at else now
            for i, (t, first) in enumerate(self._clock):
                end = self._clock[i + 1][1] if i + 1 < len(self._clock) else self.fed // 2
                s0 = first + round((now - t) * self.rate) - n  # the sample out[0] would be
                lo = max(s0, first, self._kept_from)
                hi = min(s0 + n, end, first + round((until - t) * self.rate))
                if hi > lo:
                    k = 2 * (lo - self._kept_from)
                    out[2 * (lo - s0):2 * (hi - s0)] = self._kept[k:k + 2 * (hi - lo)]
        return bytes(out)

    def _set(self, state: str) -> None:
        with self._cond:
            if self.state == "playing":
                self.state = state
                self.ended_at = time.monotonic()

    def stop(self) -> dict:
        """Cut the playback now. What it says: was it still playing, how much was heard."""
        t0 = time.perf_counter()
        was = self.state
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if was == "playing":
            # the feeder sees the stop between two blocks (it waits on that event); a write
            # blocked in a full pipe is freed by killing aplay
            self._thread.join(0.5)
            self.sink.abort()
            self._thread.join(5)
            self._set("stopped")
        return {"playback_id": self.id, "stopped": was == "playing", "state": self.state,
                "played_s": self.played_s, "stop_s": round(time.perf_counter() - t0, 4)}

    def status(self) -> dict:
        return {"playback_id": self.id, "state": self.state, "played_s": self.played_s,
                "sink": self.sink.kind, "error": self.error,
                "target": getattr(self.sink, "device", None) or getattr(self.sink, "path", None)}
