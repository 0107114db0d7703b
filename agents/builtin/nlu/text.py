"""Tokens of a sentence (or of a template's words): lower case, contractions spelled out,
punctuation dropped, each token remembering which word of the original it came from (a free
text slot gives back the words as they were written)."""
from __future__ import annotations

import re

CONTRACTIONS = {
    "what's": "what is", "whats": "what is", "it's": "it is", "that's": "that is",
    "who's": "who is", "where's": "where is", "how's": "how is", "there's": "there is",
    "i'm": "i am", "im": "i am", "i'd": "i would", "i've": "i have", "you're": "you are",
    "don't": "do not", "dont": "do not", "doesn't": "does not", "can't": "can not",
    "cannot": "can not", "won't": "will not", "let's": "let us", "todays": "today's",
    "ya": "you",
}
_WORD = re.compile(r"\d{1,2}:\d{2}|\d{4}-\d{2}-\d{2}|\d+(?:\.\d+)?|[^\W\d_]+(?:'[^\W\d_]+)*|"
                   r"\d+(?:st|nd|rd|th)\b|\S", re.UNICODE)
_UNIT_SUFFIX = re.compile(r"^(\d+)(am|pm|h|min|mins|s|st|nd|rd|th)$")


class Tokens:
    """norm: normalised tokens; src: the index in `words` each came from; words: the input
    split on white space, as written (trailing punctuation stripped)."""

    __slots__ = ("norm", "src", "words")

    def __init__(self, norm: list[str], src: list[int], words: list[str]):
        self.norm = norm
        self.src = src
        self.words = words

    def original(self, i: int, j: int) -> str:
        """The words as written that tokens i..j-1 came from."""
        return " ".join(self.words[self.src[i]:self.src[j - 1] + 1]).strip(" \t.,;:!?\"")


def tokenize(text: str) -> Tokens:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    words = text.split()
    norm: list[str] = []
    src: list[int] = []
    for wi, w in enumerate(words):
        lw = w.lower()
        for m in _WORD.finditer(lw):
            t = m.group(0).strip("'")
            if not t or not (t[0].isalnum()):
                continue
            u = _UNIT_SUFFIX.match(t)
            parts = [u.group(1), u.group(2)] if u and u.group(2) in ("am", "pm") else \
                CONTRACTIONS.get(t, t).split()
            for p in parts:
                norm.append(p)
                src.append(wi)
    return Tokens(norm, src, [w.strip(".,;:!?\"") for w in words])


def norm_words(text: str) -> list[str]:
    return tokenize(text).norm
