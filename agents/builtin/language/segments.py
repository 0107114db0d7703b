"""Sentences out of a stream of transcript segments (FixedStreamingTranslation,
StreamingLanguageAnalyzer): text arrives in pieces that may end mid-sentence; a sentence is
closed when its end mark (. ! ? … and the Spanish ¿¡ openers aside) is followed by a space
or ends a segment, since the next segment then starts a new one.

An unpunctuated transcript (an STT that writes no marks) would never close a sentence, so a
pending text longer than `max_pending` characters is cut at its last space, and `flush()`
at the end of the stream gives whatever is left.
"""
from __future__ import annotations

import re

_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u00bb)\]]*(?=\s|$)")


class SentenceBuffer:
    def __init__(self, max_pending: int):
        self.max_pending = max_pending
        self.pending = ""

    def add(self, segment: str) -> list[str]:
        """The sentences `segment` closes (in order); the rest waits in `pending`."""
        text = f"{self.pending} {segment.strip()}".strip() if self.pending else segment.strip()
        out, start = [], 0
        for m in _END.finditer(text):
            out.append(text[start:m.end()].strip())
            start = m.end()
        rest = text[start:].strip()
        while len(rest) > self.max_pending:
            cut = rest.rfind(" ", 0, self.max_pending + 1)
            cut = cut if cut > 0 else self.max_pending  # one word longer than the limit
            out.append(rest[:cut].strip())
            rest = rest[cut:].strip()
        self.pending = rest
        return [s for s in out if s]

    def flush(self) -> list[str]:
        rest, self.pending = self.pending.strip(), ""
        return [rest] if rest else []
