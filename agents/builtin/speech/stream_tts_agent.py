"""StreamingTTSAgent: speech sentence by sentence, and played out loud (docs/SPEECH.md,
"Streaming").

    POST /task {"type": "streaming_tts", "text", "voice"?, "rate"?, "pitch"?, "play"?}
      → {"stream_id", "playback_id" (null unless played), "chunks": N, "first_audio_s",
         "chunk": {"index": 0, "text", "audio_wav_b64", "sample_rate", "audio_s", "synth_s",
                   "last"}}
    POST /task {"type": "streaming_tts_chunk", "stream_id", "index", "wait_s"?: 10}
      → {"index", "text", "audio_wav_b64", ..., "last"} once piece `index` is synthesised
    POST /task {"type": "stop_playback", "playback_id"}
      → {"playback_id", "stopped", "state", "played_s", "stop_s"}
    POST /task {"type": "playback_status", "playback_id"} → {"playback_id", "state", ...}
    POST /task {"type": "playback_heard", "playback_id", "seconds"}
      → {"playback_id", "sample_rate", "audio_b64": <16-bit mono PCM: what sounded over the
         last `seconds`, silence where nothing did>} (StreamingInterruptHandler's echo reference)

The text is split into sentences (sentences.py); the first is synthesised before the answer
(so a bad voice or rate is a 400 at once, and the answer carries the first audio), the rest
on a thread of the stream while the first already plays. Each piece is a TTSService task run
in this process (the TTSService class is this agent's base: same engines, voices, checks and
settings, TTS_ENGINE, TTS_VOICE, TTS_MAX_CHARS, TTS_TIMEOUT_S).

"play" (default: true unless STREAM_TTS_SINK=none) plays the pieces as they come, on
STREAM_TTS_SINK: `alsa` (aplay -D STREAM_TTS_ALSA_DEVICE, default "default") or `file`
(a WAV per playback in STREAM_TTS_FILE_DIR). Every playback has an id; stop_playback stops
exactly that one (barge-in: StreamingInterruptHandler calls it).
"""
from __future__ import annotations

import base64
import os
import threading
import time

from unified_agents import ConfigError, HTTPError

from .. import deps
from . import sentences
from .playback import AlsaSink, FileSink, Playback, SinkFailed
from ..sessions import SessionTable
from .tts_agent import TTSService

SINKS = ("alsa", "file", "none")
HEARD_MAX_S = 10.0  # playback_heard: as long as a microphone chunk may be (interrupt_agent)


class Stream:
    """The pieces of one text, synthesised in order; readers wait for the one they want."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.chunks: list[dict] = []
        self.error: HTTPError | None = None
        self.cond = threading.Condition()
        self.playback: Playback | None = None

    @property
    def busy(self) -> bool:
        """Still synthesising or playing: no idle expiry (sessions.py)."""
        done = self.error is not None or len(self.chunks) == len(self.texts)
        return not done or (self.playback is not None and not self.playback.finished)

    finished = property(lambda self: not self.busy)

    def add(self, chunk: dict) -> None:
        with self.cond:
            self.chunks.append(chunk)
            self.cond.notify_all()

    def fail(self, e: HTTPError) -> None:
        with self.cond:
            self.error = e
            self.cond.notify_all()

    def wait(self, index: int, timeout: float) -> dict:
        with self.cond:
            self.cond.wait_for(lambda: len(self.chunks) > index or self.error is not None,
                               timeout)
            if len(self.chunks) > index:
                return self.chunks[index]
            if self.error is not None:
                raise HTTPError(self.error.status, f"piece {index} was not synthesised: "
                                                   f"{self.error.message}")
        raise HTTPError(504, f"piece {index} is not synthesised after {timeout:g} s "
                             '("wait_s"); ask again')


class StreamingTTSAgent(TTSService):
    version = "1.0.0"
    task_types: tuple | None = ("streaming_tts", "streaming_tts_chunk", "stop_playback",
                                "playback_status", "playback_heard")

    def on_start(self) -> None:
        super().on_start()  # the engines (TTSService's settings and checks)
        env = self.config.env
        self.sink = env.string("STREAM_TTS_SINK", "alsa")
        if self.sink not in SINKS:
            raise ConfigError(f"STREAM_TTS_SINK={self.sink!r} is invalid; allowed: "
                              f"{', '.join(SINKS)}")
        self.alsa_device = env.string("STREAM_TTS_ALSA_DEVICE", "default")
        self.aplay = (deps.need_binary(self.name, "aplay", "alsa-utils")
                      if self.sink == "alsa" else "")
        self.file_dir = env.string("STREAM_TTS_FILE_DIR", os.path.join(
            self.config.state_directory or "/var/lib/unified", "playback"))
        if self.sink == "file":
            try:
                os.makedirs(self.file_dir, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"STREAM_TTS_FILE_DIR={self.file_dir!r}: {e.strerror}; "
                                  "allowed: a directory this agent may write") from None
        n = env.integer("STREAM_TTS_MAX_STREAMS", 8, 1, 256)
        idle = env.number("STREAM_TTS_IDLE_S", 60.0, 1.0, 86400.0)
        self.streams = SessionTable("stream", n, idle, 3600.0, close=self._drop,
                                    setting="STREAM_TTS_MAX_STREAMS")
        self.playbacks = SessionTable("playback", n, idle, 3600.0, close=self._drop_playback,
                                      setting="STREAM_TTS_MAX_STREAMS")

    @staticmethod
    def _drop(stream: Stream) -> None:
        if stream.playback is not None:
            stream.playback.stop()

    @staticmethod
    def _drop_playback(playback) -> None:
        if isinstance(playback, Playback):  # (not the stream that holds its place at first)
            playback.stop()

    def on_stop(self) -> None:
        for _, p in self.playbacks.items():
            p.stop()

    def handle_task(self, task: dict):
        kind = task.get("type")
        if kind == "streaming_tts_chunk":
            stream = self.streams.get(task.get("stream_id"), "stream_id")
            index = task.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or \
                    not 0 <= index < len(stream.texts):
                raise HTTPError(400, f'"index"={index!r}; allowed: 0-{len(stream.texts) - 1} '
                                     f"(the stream has {len(stream.texts)} pieces)")
            wait_s = task.get("wait_s", 10)
            if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or \
                    not 0 <= wait_s <= 60:
                raise HTTPError(400, f'"wait_s"={wait_s!r}; allowed: a number 0-60 (seconds)')
            return stream.wait(index, float(wait_s))
        if kind in ("stop_playback", "playback_status", "playback_heard"):
            playback = self.playbacks.get(task.get("playback_id"), "playback_id")
            if kind == "playback_heard":
                return self._heard(playback, task.get("seconds"))
            return playback.stop() if kind == "stop_playback" else playback.status()
        return self._start(task)

    @staticmethod
    def _heard(playback: Playback, seconds) -> dict:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
                not 0 < seconds <= HEARD_MAX_S:
            raise HTTPError(400, f'"seconds"={seconds!r}; allowed: a number over 0, at most '
                                 f"{HEARD_MAX_S:g}")
        return {"playback_id": playback.id, "sample_rate": playback.rate,
                "audio_b64": base64.b64encode(playback.heard(float(seconds))).decode()}

    def _piece(self, task: dict, index: int, text: str, last: bool) -> dict:
        """One piece through TTSService's own task (its checks, engines and voice choice)."""
        out = TTSService.handle_task(self, {**task, "type": "tts", "text": text})
        return {"index": index, "text": text, "audio_wav_b64": out["audio_wav_b64"],
                "sample_rate": out["sample_rate"], "engine": out["engine"],
                "voice": out["voice"], "audio_s": out["audio_s"], "synth_s": out["synth_s"],
                "last": last}

    def _start(self, task: dict) -> dict:
        t0 = time.perf_counter()
        text = task.get("text")
        if not isinstance(text, str) or not text.strip():
            raise HTTPError(400, '"text" is missing, empty or not a string; allowed: 1-'
                                 f"{self.max_chars} characters")
        if len(text) > self.max_chars:
            raise HTTPError(413, f'"text" has {len(text)} characters; allowed: at most '
                                 f"{self.max_chars} (TTS_MAX_CHARS)")
        play = task.get("play", self.sink != "none")
        if not isinstance(play, bool):
            raise HTTPError(400, f'"play"={play!r}; allowed: true or false')
        if play and self.sink == "none":
            raise HTTPError(400, '"play" is true but this agent has no sink '
                                 "(STREAM_TTS_SINK=none); allowed: false")
        texts = sentences.split(" ".join(text.split()))
        opts = {k: task[k] for k in ("voice", "rate", "pitch") if k in task}
        first = self._piece(opts, 0, texts[0], len(texts) == 1)
        stream = Stream(texts)
        stream.add(first)
        stream_id = self.streams.add(stream)
        playback_id = None
        if play:
            # the id first (a 429 before any sink opens): it names the sink's file
            playback_id = self.playbacks.add(stream)
            try:
                stream.playback = self._play(playback_id, first)
            except HTTPError:
                self.playbacks.pop(playback_id)
                stream.fail(HTTPError(502, "no playback"))
                raise
            self.playbacks.replace(playback_id, stream.playback)
        first_audio_s = time.perf_counter() - t0
        if len(texts) > 1:
            threading.Thread(target=self._rest, args=(stream, opts), daemon=True,
                             name=f"stream-{stream_id}").start()
        elif stream.playback is not None:
            stream.playback.end()
        return {"stream_id": stream_id, "playback_id": playback_id, "chunks": len(texts),
                "first_audio_s": round(first_audio_s, 4), "chunk": first}

    def _play(self, playback_id: str, first: dict) -> Playback:
        rate = first["sample_rate"]
        try:
            sink = (AlsaSink(self.aplay, self.alsa_device, playback_id, rate)
                    if self.sink == "alsa" else FileSink(self.file_dir, playback_id, rate))
        except OSError as e:
            raise HTTPError(502, f"cannot open the {self.sink} sink: {e}") from None
        playback = Playback(playback_id, sink, rate)
        playback.feed(_pcm(first))
        return playback

    def _rest(self, stream: Stream, opts: dict) -> None:
        try:
            for i in range(1, len(stream.texts)):
                if stream.playback is not None and stream.playback.state == "stopped":
                    break  # nobody will hear the rest: stop synthesising it
                chunk = self._piece(opts, i, stream.texts[i], i == len(stream.texts) - 1)
                stream.add(chunk)
                if stream.playback is not None:
                    stream.playback.feed(_pcm(chunk))
        except HTTPError as e:
            stream.fail(e)
        except (SinkFailed, OSError) as e:  # (not expected: the synthesiser's errors are HTTP)
            stream.fail(HTTPError(502, str(e)))
        finally:
            if stream.playback is not None:
                stream.playback.end()
            if stream.playback is not None and stream.playback.state == "stopped" and \
                    len(stream.chunks) < len(stream.texts):
                stream.fail(HTTPError(409, f"playback {stream.playback.id} was stopped"))

    def health_info(self) -> dict:
        info = super().health_info()
        info.update(sink=self.sink, alsa_device=self.alsa_device if self.sink == "alsa" else None,
                    streams=len(self.streams), playbacks=len(self.playbacks))
        return info


def _pcm(chunk: dict) -> bytes:
    """The samples of a piece's WAV (TTSService writes plain mono 16-bit: after the header)."""
    return base64.b64decode(chunk["audio_wav_b64"])[44:]
