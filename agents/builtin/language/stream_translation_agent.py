"""FixedStreamingTranslation: Apertium over a stream of transcript segments, a sentence at a
time (docs/LANGUAGE.md, "Streaming translation").

    POST /task {"type": "streaming_translation", "source": "en", "target": "es",
                "text": "Good morning. The train"}                       (opens a session)
      → {"session", "final": false, "pair": "eng-spa", "engine": "apertium",
         "sentences": [{"source_text": "Good morning.", "text": "Buenos días."}],
         "pending": "The train"}
    POST /task {"type": "streaming_translation", "session": id, "text": "leaves at nine.",
                "final"?: true}
      → the sentences this segment closed, translated; with "final" also the pending rest,
        and the session is closed.

The pair is fixed when the session opens (hence the name) and checked then: an uninstalled
pair is a 400 before any text is taken. A session API over /task like StreamingSpeech-
Recognition's (it works the same through RequestCoordinator); the session limits are
sessions.py's: STREAM_TRANSLATION_MAX_SESSIONS open at once (429 + Retry-After),
STREAM_TRANSLATION_IDLE_S without a segment or STREAM_TRANSLATION_MAX_AGE_S since opening
(then 404 "expired"). A segment is at most TRANSLATION_MAX_CHARS (413); a pending sentence
longer than STREAM_TRANSLATION_MAX_PENDING characters is translated cut at a space (a
transcript without punctuation still flows).
"""
from __future__ import annotations

import threading

from unified_agents import HTTPError

from ..sessions import SessionTable
from .apertium import TranslationFailed
from .segments import SentenceBuffer
from .translation_agent import ApertiumAgent, lang_field, text_field


class Stream:
    def __init__(self, pair, max_pending: int):
        self.pair = pair
        self.buffer = SentenceBuffer(max_pending)
        self.lock = threading.Lock()  # segments are ordered: one at a time
        self.sentences = 0


class FixedStreamingTranslation(ApertiumAgent):
    version = "1.0.0"
    task_types = ("streaming_translation",)

    def on_start(self) -> None:
        self.load_apertium()
        env = self.config.env
        self.max_pending = env.integer("STREAM_TRANSLATION_MAX_PENDING", 400, 20, 100_000)
        self.sessions = SessionTable(
            "session", env.integer("STREAM_TRANSLATION_MAX_SESSIONS", 16, 1, 1024),
            env.number("STREAM_TRANSLATION_IDLE_S", 60.0, 0.1, 86400.0),
            env.number("STREAM_TRANSLATION_MAX_AGE_S", 3600.0, 1.0, 86400.0),
            setting="STREAM_TRANSLATION_MAX_SESSIONS")

    def handle_task(self, task: dict):
        final = task.get("final", False)
        if not isinstance(final, bool):
            raise HTTPError(400, f'"final"={final!r}; allowed: true or false')
        text = task.get("text", "")
        if text != "":  # a closing call may bring no text
            text = text_field(task, self.max_chars, "TRANSLATION_MAX_CHARS")
        sid = task.get("session")
        if sid is None:
            if not text and not final:
                raise HTTPError(400, '"text" is missing or empty; allowed: the first segment '
                                     "(a string)")
            source, target = lang_field(task, "source"), lang_field(task, "target")
            pair = self.translate_pair(source, target)
            stream = Stream(pair, self.max_pending)
            sid = self.sessions.add(stream)
        else:
            stream = self.sessions.get(sid)
        if not stream.lock.acquire(blocking=False):
            raise HTTPError(409, f'session "{sid}" is translating another segment; allowed: '
                                 "one segment at a time, in order (wait for the answer)")
        try:
            closed = stream.buffer.add(text) if text else []
            if final:
                closed += stream.buffer.flush()
                self.sessions.pop(sid)
            out = [self._one(stream, s) for s in closed]
            stream.sentences += len(out)
            return {"session": sid, "final": final, "engine": "apertium",
                    "pair": stream.pair.mode, "sentences": out,
                    "pending": stream.buffer.pending, "translated": stream.sentences}
        finally:
            stream.lock.release()

    def translate_pair(self, source: str, target: str):
        try:
            return self.engine.find(source, target)
        except TranslationFailed as e:
            raise HTTPError(e.status, e.message) from None

    def _one(self, stream: Stream, sentence: str) -> dict:
        try:
            r = self.engine.translate(stream.pair, sentence, self.timeout_s)
        except TranslationFailed as e:
            raise HTTPError(e.status, e.message) from None
        return {"source_text": sentence, "text": r["text"], "unknown_words": r["unknown_words"]}

    def health_info(self) -> dict:
        return {**super().health_info(), "max_pending": self.max_pending,
                "sessions": {"open": len(self.sessions), "max": self.sessions.max_count,
                             "expired": self.sessions.expired}}
