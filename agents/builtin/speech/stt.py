"""Speech to text with CMU PocketSphinx, through Debian's python3-pocketsphinx binding and the
pocketsphinx-en-us model (acoustic model, CMU dictionary, trigram LM; docs/SPEECH.md says why
the Debian packages and not the PyPI 5.x wheel).

One decoder per process, loaded once; a decode holds a lock (a PocketSphinx decoder is not
re-entrant). Optional "phrases" switch one utterance to a JSGF grammar of exactly those
phrases (a closed command set, as Rhasspy does), then back to the language model.
"""
from __future__ import annotations

import math
import os
import re
import threading
import time

TYPE_CHECKING = False  # typing's constant without importing typing
if TYPE_CHECKING:
    from typing import Any

DEFAULT_MODEL_DIR = "/usr/share/pocketsphinx/model/en-us"
FRAME_RATE = 100  # PocketSphinx's default -frate: 100 feature frames per second
LM_SEARCH = "_default"
GRAMMAR_SEARCH = "phrases"
WORD = re.compile(r"[a-z][a-z']*")
_ALT = re.compile(r"\(\d+\)$")  # "read(2)": the second pronunciation of "read"


class PhraseError(ValueError):
    """A phrase the grammar cannot hold (400)."""


class Pocketsphinx:
    name = "pocketsphinx"

    def __init__(self, module, model_dir: str = DEFAULT_MODEL_DIR):
        """`module`: the imported pocketsphinx binding (checked by the caller)."""
        self.model_dir = model_dir
        self.hmm = os.path.join(model_dir, "en-us")
        self.lm = os.path.join(model_dir, "en-us.lm.bin")
        self.dict = os.path.join(model_dir, "cmudict-en-us.dict")
        self._module = module
        self._decoder: Any = None  # the binding's Decoder (untyped C extension)
        self._lock = threading.Lock()
        self._grammar: tuple | None = None
        self.load_s: float | None = None

    def files(self) -> list[str]:
        return [self.hmm, self.lm, self.dict]

    @property
    def version(self) -> str:
        from .. import deps

        return deps.installed_version("pocketsphinx")

    def load(self) -> float:
        """Build the decoder (~0.6 s here: the acoustic model and the 30 MB LM)."""
        t0 = time.perf_counter()
        cfg = self._module.Decoder.default_config()
        cfg.set_string("-hmm", self.hmm)
        cfg.set_string("-lm", self.lm)
        cfg.set_string("-dict", self.dict)
        cfg.set_string("-logfn", os.devnull)  # its INFO chatter would flood the journal
        self._decoder = self._module.Decoder(cfg)
        self.load_s = time.perf_counter() - t0
        return self.load_s

    def _grammar_for(self, phrases: tuple) -> str:
        unknown = sorted({w for p in phrases for w in p.split()
                          if self._decoder.lookup_word(w) is None})
        if unknown:
            raise PhraseError(f'"phrases" use words not in the pronunciation dictionary: '
                              f"{', '.join(unknown[:10])}; allowed: words of "
                              f"{os.path.basename(self.dict)}")
        body = " | ".join(phrases)
        return f"#JSGF V1.0;\ngrammar phrases;\npublic <phrase> = {body};\n"

    def transcribe(self, pcm16k, phrases: tuple | None = None) -> dict:
        """pcm16k: int16 mono samples at 16 kHz (numpy). Words with times and posteriors."""
        raw = pcm16k.tobytes()
        with self._lock:
            d = self._decoder
            if phrases:
                if phrases != self._grammar:
                    d.set_jsgf_string(GRAMMAR_SEARCH, self._grammar_for(phrases))
                    self._grammar = phrases
                d.set_search(GRAMMAR_SEARCH)
            try:
                t0 = time.perf_counter()
                d.start_utt()
                d.process_raw(raw, False, True)  # no search, full utterance: batch CMN
                d.end_utt()
                elapsed = time.perf_counter() - t0
                hyp = d.hyp()
                logmath = d.get_logmath()
                words = []
                for seg in d.seg():
                    w = _ALT.sub("", seg.word)
                    if w.startswith(("<", "[")) or w == "<sil>":  # silence, noise fillers
                        continue
                    words.append({"word": w, "start_s": round(seg.start_frame / FRAME_RATE, 2),
                                  "end_s": round((seg.end_frame + 1) / FRAME_RATE, 2),
                                  "confidence": round(min(1.0, logmath.exp(seg.prob)), 3)})
            finally:
                if phrases:
                    d.set_search(LM_SEARCH)
        text = " ".join(w["word"] for w in words)
        # the mean word posterior: 0 words (silence) has no confidence to speak of
        conf = sum(w["confidence"] for w in words) / len(words) if words else 0.0
        return {"text": text, "confidence": round(conf, 3), "words": words,
                "decode_s": elapsed, "hyp_score": hyp.best_score if hyp else None,
                "search": "phrases" if phrases else "lm"}


def check_phrases(value) -> tuple | None:
    """The request's "phrases": 1-1000 strings of lower-case words. PhraseError otherwise."""
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= 1000:
        raise PhraseError('"phrases" must be a list of 1-1000 strings')
    out = []
    for i, p in enumerate(value):
        if not isinstance(p, str):
            raise PhraseError(f'"phrases"[{i}] is {type(p).__name__}; allowed: a string')
        words = p.lower().split()
        if not words or len(p) > 200 or not all(WORD.fullmatch(w) for w in words):
            raise PhraseError(f'"phrases"[{i}]={p[:60]!r}; allowed: 1-200 characters of '
                              "words made of letters and apostrophes")
        out.append(" ".join(words))
    return tuple(dict.fromkeys(out))


def real_time_factor(seconds: float, audio_s: float) -> float:
    return round(seconds / audio_s, 4) if audio_s > 0 and math.isfinite(seconds) else 0.0
