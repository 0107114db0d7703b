"""Definitions from WordNet 3.0's own database files (Debian wordnet-base,
/usr/share/wordnet), read directly: no NLTK, nothing loaded at start.

index.POS is sorted by lemma, one line per lemma ("serendipity n 1 1 @ 1 0 06387980"):
a binary search over byte offsets finds it in ~20 seeks. Its synset offsets are byte
offsets into data.POS, whose line ends with "| gloss". Inflected forms: WordNet's
exception lists (POS.exc: "mice mouse") and its detachment rules (morphy: "-ies" → "-y", …).
"""
from __future__ import annotations

import os

DEFAULT_DIR = "/usr/share/wordnet"
POS = (("noun", "noun"), ("verb", "verb"), ("adj", "adjective"), ("adv", "adverb"))
# WordNet's morphy detachment rules (wnintro(7WN), "morphy")
RULES: dict[str, list[tuple[str, str]]] = {"noun": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
                  ("shes", "sh"), ("men", "man"), ("ies", "y")],
         "verb": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
                  ("ing", "e"), ("ing", "")],
         "adj": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
         "adv": []}


def open_default(path: str) -> "WordNet | None":
    """The dictionary in `path`, or None when its files are not there (the agent says so)."""
    if all(os.path.exists(os.path.join(path, f"{k}.{p}")) for p, _ in POS
           for k in ("index", "data")):
        return WordNet(path)
    return None


class WordNet:
    def __init__(self, path: str):
        self.path = path
        self._exc: dict[str, dict[str, list[str]]] = {}

    def describe(self) -> dict:
        return {"engine": "WordNet 3.0 (wordnet-base)", "path": self.path}

    def _exceptions(self, pos: str) -> dict[str, list[str]]:
        exc = self._exc.get(pos)
        if exc is None:
            exc = {}
            try:
                with open(os.path.join(self.path, f"{pos}.exc"), encoding="utf-8") as f:
                    for line in f:
                        w = line.split()
                        if len(w) >= 2:
                            exc[w[0]] = w[1:]
            except OSError:
                pass
            self._exc[pos] = exc
        return exc

    def _lookup(self, pos: str, lemma: str) -> list[int]:
        """Synset offsets of `lemma` in index.POS (binary search on the sorted file)."""
        key = lemma.encode()
        with open(os.path.join(self.path, f"index.{pos}"), "rb") as f:
            f.seek(0, 2)
            lo, hi = 0, f.tell()
            while lo < hi:
                mid = (lo + hi) // 2
                f.seek(mid)
                if mid:
                    f.readline()          # to the start of the next whole line
                line = f.readline()
                if not line or line.split(b" ", 1)[0] >= key:
                    hi = mid
                else:
                    lo = mid + 1
            f.seek(lo)
            if lo:
                f.readline()
            for line in (f.readline(), f.readline()):
                if line.startswith(b"  "):   # the licence header
                    continue
                w = line.split()
                if w and w[0] == key:
                    n_ptr = int(w[3])
                    n_syn = int(w[2])
                    return [int(x) for x in w[4 + n_ptr + 2: 4 + n_ptr + 2 + n_syn]]
        return []

    def _gloss(self, pos: str, offset: int) -> str:
        with open(os.path.join(self.path, f"data.{pos}"), "rb") as f:
            f.seek(offset)
            line = f.readline().decode("utf-8", "replace")
        gloss = line.partition("| ")[2].strip()
        # the definition, without the example sentences that follow it ("; \"...\"")
        return gloss.split('; "')[0].strip()

    def _lemmas(self, pos: str, word: str) -> list[str]:
        out = [word]
        out += self._exceptions(pos).get(word, [])
        for suffix, repl in RULES[pos]:
            if word.endswith(suffix) and len(word) > len(suffix) + 1:
                out.append(word[: len(word) - len(suffix)] + repl)
        return list(dict.fromkeys(out))

    def define(self, word: str, limit: int = 5) -> list[tuple[str, str]]:
        """[(part of speech, gloss)], the most frequent sense of each part of speech first."""
        w = "_".join(word.lower().split())
        if not w or len(w) > 100:
            return []
        firsts, rest = [], []
        for pos, name in POS:
            for lemma in self._lemmas(pos, w):
                offsets = self._lookup(pos, lemma)
                if offsets:
                    glosses = [(name, self._gloss(pos, o)) for o in offsets]
                    firsts.append(glosses[0])
                    rest += glosses[1:]
                    break
        return (firsts + rest)[:limit]
