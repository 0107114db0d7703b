"""Splitting text into the pieces StreamingTTSAgent synthesises one after the other.

Sentences first (., !, ? or ; followed by a space); then a long sentence at a clause break
(comma, colon, dash) so that no piece holds more than `max_words` words where a break exists.
The first sentence is what the listener waits for, so it is cut shortest: at most
`first_words` words at a clause break, or else before a word that starts a phrase ("with",
"and", "from", ...; the synthesiser's time grows with the words: docs/SPEECH.md has the time
to first audio). Later sentences with no break are left whole: cutting mid-phrase puts a
pause where a listener hears none, and only the first piece is waited for.
"""
from __future__ import annotations

import re

_SENTENCE = re.compile(r"(?<=[.!?;])\s+")
_CLAUSE = re.compile(r"(?<=[,:])\s+|\s+(?=[-\u2013\u2014]\s)")


# words a phrase starts with: the first piece may be cut before one where no comma is
_PHRASE_START = frozenset("and but or with without from to for that which who because when "
                          "while after before until if so than as at in on of".split())


def split(text: str, max_words: int = 25, first_words: int = 10) -> list[str]:
    pieces: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        if sentence:
            pieces.extend(_clauses(sentence, first_words if not pieces else max_words))
    if pieces and len(pieces[0].split()) > first_words:
        pieces[:1] = _phrase_cut(pieces[0], first_words)
    return pieces


def _phrase_cut(piece: str, limit: int) -> list[str]:
    """The first piece cut before the last phrase-starting word that leaves 4-`limit` words in
    front, or left whole when there is none."""
    words = piece.split()
    cut = next((i for i in range(min(limit, len(words) - 2), 3, -1)
                if words[i].lower() in _PHRASE_START), None)
    return [piece] if cut is None else [" ".join(words[:cut]), " ".join(words[cut:])]


def _clauses(sentence: str, limit: int) -> list[str]:
    if len(sentence.split()) <= limit:
        return [sentence]
    out: list[str] = []
    cur = ""
    for part in _CLAUSE.split(sentence):
        if cur and len((cur + " " + part).split()) > limit:
            out.append(cur)
            cur = part
        else:
            cur = f"{cur} {part}" if cur else part
    if cur:
        out.append(cur)
    return out
