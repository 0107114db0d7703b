"""StreamingSpeechRecognition: partial and final transcripts while the audio arrives
(docs/SPEECH.md, "Streaming").

    POST /task {"type": "streaming_stt", "session"?: id, "audio_chunk_b64"?: "<base64 of raw
                signed 16-bit little-endian mono PCM at 16 kHz>", "final"?: false}
      → {"session", "final": false, "partial", "in_speech", "audio_s", "chunk_s", "decode_s"}
      → (with "final": true) {"session", "final": true, "text", "words", "confidence",
                              "audio_s", "rtf", "engine", "model"}

No "session" opens one (a decoder of the pool is its own until "final" or expiry); every
later chunk names it. A session API over /task, not a streamed HTTP response: it works the
same through RequestCoordinator (which forwards whole bodies), each chunk's answer is the
partial hypothesis after that chunk, and a client that stops sending is bounded by the
session limits (sessions.py): STREAM_STT_MAX_SESSIONS open at once (429 + Retry-After),
STREAM_STT_IDLE_S without a chunk or STREAM_STT_MAX_AGE_S since opening (then 404 "expired"),
STREAM_STT_MAX_AUDIO_S of audio (413, the session closed) and STREAM_STT_MAX_CHUNK_S per chunk.

A session may have steady noise reduced before the decoder hears it, as STTService does, but
tracked as the audio arrives (denoise.StreamingWiener): STREAM_STT_DENOISE=wiener, or "denoise"
on the chunk that opens the session (a later chunk may repeat that choice, not change it); the
final answer then gives the noise level it estimated ("noise_dbfs"). Off by default: on the
evaluation set it took 4-12 points off the WER in 10 dB noise but moved clean speech by -2 to
+7 points, depending on the utterance before, so it is for rooms known to be noisy
(docs/SPEECH.md, "While the audio arrives").

The partials come from decoding as the audio arrives; the final answer, by default, from a
second pass over the whole utterance by STTService (STREAM_STT_FINAL=whole, or "final_pass"
on the opening chunk: "whole" or "live"; STREAM_STT_WHOLE_URL, else STTService's address from
the registry or catalog): the live pass normalises the cepstrum with the means of earlier
utterances and is much less accurate (docs/SPEECH.md, "Two passes"). The second pass costs
its decode after the last chunk (~0.2 s a second of audio here) and the session's audio in
memory (32 kB a second); "live" answers at once with the live pass's words. When STTService
cannot answer, the final answer is the live pass's, and says so ("final_pass": "live",
"whole_error").
"""
from __future__ import annotations

import base64
import io
import threading
import time
import wave

from unified_agents import Agent, HTTPError
from unified_agents.client import AgentCallError, Client

from .. import deps
from . import pcm
from ..sessions import SessionTable
from .stream_stt import SAMPLE_RATE, StreamDecoder
from .stt import DEFAULT_MODEL_DIR, real_time_factor
from .stt_agent import DENOISE, denoise_option

FINAL_PASS = ("whole", "live")


class Session:
    def __init__(self, decoder: StreamDecoder, options: dict):
        self.decoder = decoder
        self.options = options  # "denoise", "final_pass": chosen by the opening chunk
        # the audio as it came, for STTService's pass at the end (32 kB a second, bounded by
        # STREAM_STT_MAX_AUDIO_S); it goes with the session when it closes or expires
        self.audio = bytearray() if options["final_pass"] == "whole" else None
        self.lock = threading.Lock()  # one chunk at a time: chunks are ordered
        self.closed = False  # its decoder went back to the pool (a late chunk is a 404)


class StreamingSpeechRecognition(Agent):
    version = "1.0.0"
    task_types = ("streaming_stt",)

    def on_start(self) -> None:
        env = self.config.env
        n = env.integer("STREAM_STT_MAX_SESSIONS", 2, 1, 64)
        self.max_audio_s = env.number("STREAM_STT_MAX_AUDIO_S", 60.0, 1.0, 3600.0)
        max_chunk_s = env.number("STREAM_STT_MAX_CHUNK_S", 10.0, 0.01, 600.0)
        self.max_chunk_bytes = int(max_chunk_s * SAMPLE_RATE * 2)
        self.max_body_bytes = self.max_chunk_bytes * 4 // 3 + 65536  # base64 + the JSON
        model_dir = env.string("STT_MODEL_DIR", DEFAULT_MODEL_DIR)
        self.denoise = env.choice("STREAM_STT_DENOISE", DENOISE, "none")
        self.final_pass = env.choice("STREAM_STT_FINAL", FINAL_PASS, "whole")
        self.whole_url = env.string("STREAM_STT_WHOLE_URL", "") or None  # None: STTService's
        self._whole_client: Client | None = None
        self.denoiser = deps.Lazy(f"{__package__}.denoise")  # numpy: at the first session
        self._module = deps.need_module(self.name, "pocketsphinx", "python3-pocketsphinx",
                                        "the PocketSphinx speech recogniser")
        self.model_dir = model_dir
        self.max_sessions = n
        # One decoder at start, the others when sessions overlap: each is ~0.4 s of CPU and
        # ~80 MB, and a profile's agents start together on 2 CPUs (BENCHMARKS.md). The
        # session that finds none free waits for one load, once.
        self.pool: list[StreamDecoder] = []
        self._free: list[StreamDecoder] = []
        self._growing = 0  # decoders being loaded for sessions that found none free
        self._pool_lock = threading.Lock()
        first = self._load_decoder()
        self.load_s = first.load_s or 0.0
        self._free.append(first)
        self.sessions = SessionTable(
            "session", n, env.number("STREAM_STT_IDLE_S", 10.0, 0.1, 3600.0),
            env.number("STREAM_STT_MAX_AGE_S", 300.0, 1.0, 86400.0), close=self._release,
            setting="STREAM_STT_MAX_SESSIONS")
        self.log.info("recogniser loaded", engine="pocketsphinx", model=model_dir,
                      load_s=round(self.load_s, 3), max_sessions=n)

    def _load_decoder(self) -> StreamDecoder:
        d = StreamDecoder(self._module, self.model_dir)
        for f in d.files():
            deps.need_file(self.name, f, "pocketsphinx-en-us", "STT_MODEL_DIR")
        d.load()
        with self._pool_lock:
            self.pool.append(d)
        return d

    def _release(self, session: Session) -> None:
        """A session left the table: its decoder goes back to the pool once no chunk of it
        is being decoded (an expiry by age may come while one is)."""
        with session.lock:
            session.closed = True
            self._give_back(session.decoder)

    def _give_back(self, decoder: StreamDecoder) -> None:
        with self._pool_lock:
            self._free.append(decoder)

    def _options(self, task: dict) -> dict:
        final_pass = task.get("final_pass", self.final_pass)
        if final_pass not in FINAL_PASS:
            raise HTTPError(400, f'"final_pass"={final_pass!r}; allowed: {", ".join(FINAL_PASS)}')
        return {"denoise": denoise_option(task, self.denoise), "final_pass": final_pass}

    def _open(self, options: dict) -> tuple[str, Session]:
        self.sessions.purge()  # expired sessions give their decoders back first
        with self._pool_lock:
            decoder = self._free.pop() if self._free else None
            grow = decoder is None and len(self.pool) + self._growing < self.max_sessions
            self._growing += grow
        if grow:
            try:
                decoder = self._load_decoder()
            finally:
                with self._pool_lock:
                    self._growing -= 1
        if decoder is None:  # every decoder belongs to a live session
            self.sessions.refuse()
        assert decoder is not None
        session = Session(decoder, options)
        decoder.begin(self.denoiser.StreamingWiener() if options["denoise"] == "wiener" else None)
        try:
            return self.sessions.add(session), session
        except HTTPError:
            self._give_back(decoder)
            raise

    def handle_task(self, task: dict):
        final = task.get("final", False)
        if not isinstance(final, bool):
            raise HTTPError(400, f'"final"={final!r}; allowed: true or false')
        raw = pcm.chunk(task, self.max_chunk_bytes, "STREAM_STT_MAX_CHUNK_S")
        options = self._options(task)
        sid = task.get("session")
        if sid is None:
            sid, session = self._open(options)
        else:
            session = self.sessions.get(sid)
            for key, value in options.items():
                if key in task and value != session.options[key]:
                    raise HTTPError(400, f'"{key}"={value!r}, but session "{sid}" was opened '
                                         f'with "{session.options[key]}"; allowed: the '
                                         "session's choice (it is made by the chunk that opens "
                                         "the session)")
        if not session.lock.acquire(blocking=False):
            raise HTTPError(409, f'session "{sid}" is decoding another chunk; allowed: one '
                                 "chunk at a time, in order (wait for the answer)")
        try:
            if session.closed:
                raise HTTPError(404, f'session "{sid}" was closed while this chunk waited')
            d = session.decoder
            if (d.samples + len(raw) // 2) / SAMPLE_RATE > self.max_audio_s:
                self._close(sid, session)
                raise HTTPError(413, f'session "{sid}" would hold more than '
                                     f"{self.max_audio_s:g} s of audio (STREAM_STT_MAX_AUDIO_S);"
                                     " it is closed: send \"final\" before that")
            if session.audio is not None:
                session.audio += raw
            out = d.feed(raw)
            audio_s = d.samples / SAMPLE_RATE
            if not final:
                return {"session": sid, "final": False, "partial": out["partial"],
                        "in_speech": bool(out["in_speech"]), "audio_s": round(audio_s, 3),
                        "chunk_s": round(len(raw) / 2 / SAMPLE_RATE, 3),
                        "decode_s": round(d.decode_s, 4)}
            result = d.finish()
            options, decode_s = dict(session.options), d.decode_s
            # the decoder goes back to the pool now (another session may take it while
            # STTService decodes this one): nothing of it is read after this line
            self._close(sid, session)
            if session.audio:
                result, options["final_pass"] = self._whole(bytes(session.audio), result)
                session.audio = None
            return {"session": sid, "final": True, **result, "audio_s": round(audio_s, 3),
                    "decode_s": round(decode_s, 4),
                    "rtf": real_time_factor(decode_s, audio_s), **options,
                    "engine": "pocketsphinx", "model": self.model_dir}
        finally:
            session.lock.release()

    def _whole(self, audio: bytes, live: dict) -> tuple[dict, str]:
        """STTService's answer for the whole utterance, with the live pass's text beside it;
        the live result itself (and why) when STTService cannot answer."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(audio)
        # STTService's own settings decide (its STT_DENOISE: the batch filter, which does
        # better than the streaming one, "Noise")
        body = {"type": "stt", "audio_wav_b64": base64.b64encode(buf.getvalue()).decode()}
        t0 = time.perf_counter()
        try:
            if self._whole_client is None:
                url = self.whole_url
                if url is None:
                    from unified_agents.registry_client import RegistryClient

                    url = RegistryClient(timeout=2.0, catalog=self.config.catalog).url("STTService")
                self._whole_client = Client(url, timeout=60.0)
            out = self._whole_client.post_json("/task", body)
            r = out.get("result", out)
            whole = {"text": r["text"], "words": r["words"], "confidence": r["confidence"],
                     "whole_s": round(time.perf_counter() - t0, 4)}
        except (AgentCallError, LookupError, KeyError, TypeError, AttributeError) as e:
            self.log.warning("second pass failed; the final answer is the live pass's",
                             error=str(e))
            return {**live, "whole_error": str(e)[:300]}, "live"
        extra = {"noise_dbfs": live["noise_dbfs"]} if "noise_dbfs" in live else {}
        return {**whole, "live_text": live["text"], **extra}, "whole"

    def _close(self, sid: str, session: Session) -> None:
        """(with session.lock held) out of the table, the decoder back to the pool."""
        if self.sessions.pop(sid) is not None:
            session.closed = True
            self._give_back(session.decoder)

    def health_checks(self) -> dict:
        return {"engine": all(d.load_s is not None for d in self.pool)}

    def health_info(self) -> dict:
        return {"engine": "pocketsphinx", "model": self.model_dir,
                "engine_version": self.pool[0].version, "model_load_s": round(self.load_s, 3),
                "denoise": self.denoise, "final_pass": self.final_pass,
                "whole_via": self.whole_url or "STTService (ServiceRegistry, else the catalog)",
                "sessions": {"open": len(self.sessions), "max": self.max_sessions,
                             "decoders_loaded": len(self.pool),
                             "expired": self.sessions.expired},
                "chunk_format": pcm.FORMAT}
