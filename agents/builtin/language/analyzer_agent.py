"""StreamingLanguageAnalyzer: the language and the sentiment of a transcript while it streams
(docs/LANGUAGE.md, "StreamingLanguageAnalyzer").

    POST /task {"type": "language_analysis", "text": "<a transcript segment>",
                "session"?: id, "final"?: false}
      → {"session", "final", "segment": {"language", "probability", "languages",
                                         "sentiment"},
         "overall": {"language", "probability", "languages", "sentiment", "segments",
                     "chars"}}

No "session" opens one; later segments name it; "final": true closes it (one call with
"final": true analyses one text). "segment" is this segment alone; "overall" the transcript so
far (its last LANGUAGE_WINDOW_CHARS characters for the language, which gets surer with more
text; for sentiment the mean "compound" of the segments scored). "sentiment" is null with a
"sentiment_note" when no lexicon is configured (SENTIMENT_LEXICON) or the language is not
English (VADER's lexicon is English).

Settings: SENTIMENT_LEXICON (unset), LANGUAGE_MAX_CHARS (5000 a segment: 413 beyond),
LANGUAGE_WINDOW_CHARS (2000), LANGUAGE_MAX_SESSIONS (64), LANGUAGE_IDLE_S (120),
LANGUAGE_MAX_AGE_S (3600). python3-langdetect missing is a failed start, exit 2, naming it.
"""
from __future__ import annotations

import threading

from unified_agents import Agent, HTTPError

from ..sessions import SessionTable
from .analysis import LanguageId, Sentiment, label
from .translation_agent import text_field

NO_LEXICON = ("no sentiment: SENTIMENT_LEXICON is unset (no Debian package ships a sentiment "
              "lexicon; docs/LANGUAGE.md)")


class Transcript:
    def __init__(self):
        self.text = ""
        self.segments = 0
        self.scores: list[float] = []
        self.lock = threading.Lock()


class StreamingLanguageAnalyzer(Agent):
    version = "1.0.0"
    task_types = ("language_analysis",)
    sentiment: Sentiment | None = None

    def on_start(self) -> None:
        env = self.config.env
        self.max_chars = env.integer("LANGUAGE_MAX_CHARS", 5000, 1, 1_000_000)
        self.window = env.integer("LANGUAGE_WINDOW_CHARS", 2000, 20, 1_000_000)
        self.langid = LanguageId(self.name)
        lexicon = env.string("SENTIMENT_LEXICON", "")
        if lexicon:
            self.sentiment = Sentiment(self.name, lexicon)
        self.sessions = SessionTable(
            "session", env.integer("LANGUAGE_MAX_SESSIONS", 64, 1, 4096),
            env.number("LANGUAGE_IDLE_S", 120.0, 0.1, 86400.0),
            env.number("LANGUAGE_MAX_AGE_S", 3600.0, 1.0, 86400.0),
            setting="LANGUAGE_MAX_SESSIONS")

    def handle_task(self, task: dict):
        final = task.get("final", False)
        if not isinstance(final, bool):
            raise HTTPError(400, f'"final"={final!r}; allowed: true or false')
        text = text_field(task, self.max_chars, "LANGUAGE_MAX_CHARS")
        sid = task.get("session")
        t = Transcript() if sid is None else self.sessions.get(sid)
        if sid is None:
            sid = self.sessions.add(t)
        with t.lock:
            segment = self.langid.identify(text)
            segment.update(self._sentiment(text, segment["language"], t))
            t.text = (t.text + " " + text.strip())[-self.window:]
            t.segments += 1
            overall = self.langid.identify(t.text)
            if self.sentiment is None:
                overall.update(sentiment=None, sentiment_note=NO_LEXICON)
            elif t.scores:
                mean = sum(t.scores) / len(t.scores)
                overall["sentiment"] = {"label": label(mean), "compound": round(mean, 4),
                                        "segments_scored": len(t.scores)}
            else:
                overall.update(sentiment=None, sentiment_note="no English segment scored yet")
            overall.update(segments=t.segments, chars=len(t.text))
        if final:
            self.sessions.pop(sid)
        return {"session": sid, "final": final, "segment": segment, "overall": overall}

    def _sentiment(self, text: str, lang: str | None, t: Transcript) -> dict:
        if self.sentiment is None:
            return {"sentiment": None, "sentiment_note": NO_LEXICON}
        if lang != "en":
            return {"sentiment": None, "sentiment_note": f"language {lang}: the VADER "
                    "lexicon is English"}
        s = self.sentiment.score(text)
        t.scores.append(s["compound"])
        return {"sentiment": s}

    def health_checks(self) -> dict:
        return {"language_id": bool(self.langid.languages)}

    def health_info(self) -> dict:
        sent = ({"engine": "vader", "engine_version": self.sentiment.version,
                 "lexicon": self.sentiment.lexicon, "words": self.sentiment.words}
                if self.sentiment else {"engine": None, "note": NO_LEXICON})
        return {"engine": "langdetect", "engine_version": self.langid.version,
                "languages": self.langid.languages, "sentiment": sent,
                "max_chars": self.max_chars,
                "sessions": {"open": len(self.sessions), "max": self.sessions.max_count,
                             "expired": self.sessions.expired}}
