"""Wake word spotting with PocketSphinx's keyphrase search ("kws"), through Debian's
python3-pocketsphinx binding and the pocketsphinx-en-us acoustic model: the Debian-only path
(the PyPI microWakeWord models are not in Debian).

A keyphrase search needs no language model: each phrase is a chain of phone HMMs compared,
frame by frame, against a loop of all phones; a phrase is spotted where its path beats the
phone loop by more than the phrase's threshold (a likelihood ratio, e.g. 1e-20: smaller
thresholds spot more, and more falsely). The decoder gets a dictionary of only the phrases'
words (cut out of the CMU dictionary) instead of the whole 134,000-word one: it loads in a
fraction of the time and memory, and a phrase word the CMU dictionary lacks is found here,
at start, instead of being spelled by the decoder's letter-to-sound guesses.

One decoder per process, loaded once; a decode holds a lock (a decoder is not re-entrant).
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import threading
import time

from .stt import FRAME_RATE, Pocketsphinx

TYPE_CHECKING = False  # typing's constant without importing typing
if TYPE_CHECKING:
    from typing import Any

# Chosen by measurement on the development voices (espeak-ng only; docs/SPEECH.md,
# "WakeWordDetector"): bench/bench_wake.py --tune.
DEFAULT_PHRASES = "okay computer"
DEFAULT_THRESHOLD = 1e-30
MIN_THRESHOLD, MAX_THRESHOLD = 1e-80, 1.0
MAX_PHRASES = 20
_WORD = re.compile(r"[a-z][a-z']*")
PHRASES_ALLOWED = ("comma-separated phrases of 1-6 lower-case dictionary words, each "
                   f"optionally '=THRESHOLD' ({MIN_THRESHOLD:g}-{MAX_THRESHOLD:g}), at most "
                   f"{MAX_PHRASES}, e.g. 'hey computer=1e-20,okay computer'")


class PhrasesError(ValueError):
    """A bad WAKE_PHRASES value: the message is the part after "is invalid: "."""


def parse_phrases(value: str, default_threshold: float) -> list[tuple[str, float]]:
    """'hey computer=1e-20, okay computer' → [("hey computer", 1e-20), ("okay computer",
    default)]. PhrasesError naming the entry and what is allowed."""
    out: dict[str, float] = {}
    entries = [e.strip() for e in value.split(",")]
    if not any(entries):
        raise PhrasesError(f"no phrase; allowed: {PHRASES_ALLOWED}")
    for i, entry in enumerate(entries, 1):
        phrase, sep, thr = entry.partition("=")
        words = phrase.lower().split()
        if not 1 <= len(words) <= 6 or not all(_WORD.fullmatch(w) for w in words):
            raise PhrasesError(f"entry {i} {entry!r} is not a phrase; allowed: "
                               f"{PHRASES_ALLOWED}")
        threshold = default_threshold
        if sep:
            try:
                threshold = float(thr)
            except ValueError:
                threshold = math.nan
            if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:  # (NaN fails too)
                raise PhrasesError(f"entry {i} {entry!r} has threshold {thr.strip()!r}; "
                                   f"allowed: a number {MIN_THRESHOLD:g}-{MAX_THRESHOLD:g}")
        out[" ".join(words)] = threshold
    if len(out) > MAX_PHRASES:
        raise PhrasesError(f"{len(out)} phrases; allowed: at most {MAX_PHRASES}")
    return list(out.items())


def dictionary_lines(dict_path: str, words: set[str]) -> tuple[list[str], list[str]]:
    """The CMU dictionary's lines for `words` (every pronunciation: "read", "read(2)"), and
    the words it does not have."""
    found: list[str] = []
    seen: set[str] = set()
    with open(dict_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            head = line.split(None, 1)[0] if line.strip() else ""
            base = head.split("(", 1)[0]
            if base in words:
                found.append(line.rstrip("\n"))
                seen.add(base)
    return found, sorted(words - seen)


class UnknownWords(ValueError):
    def __init__(self, words: list[str], dict_path: str):
        super().__init__(f"{', '.join(words)} not in the pronunciation dictionary {dict_path}")
        self.words = words


class KeyphraseSpotter:
    name = "pocketsphinx-kws"

    def __init__(self, module, phrases: list[tuple[str, float]], model_dir: str):
        """`module`: the imported pocketsphinx binding (checked by the caller)."""
        self._ps = Pocketsphinx(module, model_dir)  # its paths and version (no LM loaded)
        self.model_dir = model_dir
        self.phrases = phrases
        self._module = module
        self._decoder: Any = None  # the binding's Decoder (untyped C extension)
        self._lock = threading.Lock()
        self.load_s: float | None = None

    def files(self) -> list[str]:
        return [self._ps.hmm, self._ps.dict]

    @property
    def version(self) -> str:
        return self._ps.version

    def load(self) -> float:
        """Build the decoder. UnknownWords when a phrase word is not in the dictionary."""
        t0 = time.perf_counter()
        self._decoder = self._build()
        self.load_s = time.perf_counter() - t0
        return self.load_s

    def stream(self) -> KeyphraseStream:
        """A spotter over audio as it arrives (Wyoming's detect)."""
        return KeyphraseStream(self)

    def _build(self):
        words = {w for p, _ in self.phrases for w in p.split()}
        lines, unknown = dictionary_lines(self._ps.dict, words)
        if unknown:
            raise UnknownWords(unknown, self._ps.dict)
        # the decoder reads both files while it is built; they are gone right after
        with tempfile.TemporaryDirectory(prefix="wake-") as tmp:
            dict_file = os.path.join(tmp, "wake.dict")
            kws_file = os.path.join(tmp, "wake.kws")
            with open(dict_file, "w") as f:
                f.write("\n".join(lines) + "\n")
            with open(kws_file, "w") as f:  # PocketSphinx's keyphrase list: "phrase /1e-20/"
                f.write("".join(f"{p} /{t:g}/\n" for p, t in self.phrases))
            cfg = self._module.Decoder.default_config()
            cfg.set_string("-hmm", self._ps.hmm)
            cfg.set_string("-dict", dict_file)
            cfg.set_string("-kws", kws_file)
            cfg.set_string("-logfn", os.devnull)  # its INFO chatter would flood the journal
            # frames the voice activity detector calls silence would be dropped before the
            # search, and every time after them would come out early by their length
            cfg.set_boolean("-remove_silence", False)
            return self._module.Decoder(cfg)

    def spot(self, pcm16k) -> dict:
        """pcm16k: int16 mono samples at 16 kHz (numpy). Every detection, in time order:
        {"phrase", "at_s" (start), "end_s", "score" (the decoder's detection score, log10,
        at most 0: closer to 0 is surer; not the likelihood ratio the threshold is compared
        with, which the binding does not expose)}."""
        raw = pcm16k.tobytes()
        with self._lock:
            d = self._decoder
            t0 = time.perf_counter()
            d.start_utt()
            d.process_raw(raw, False, True)  # the whole clip at once: batch CMN
            d.end_utt()
            elapsed = time.perf_counter() - t0
            # scores are logarithms in the decoder's base (1.0001): its exp() of 10000
            # units gives that base's log10 without underflowing for tiny ratios
            unit = math.log10(d.get_logmath().exp(10000)) / 10000
            found = [{"phrase": seg.word.strip(), "at_s": round(seg.start_frame / FRAME_RATE, 2),
                      "end_s": round((seg.end_frame + 1) / FRAME_RATE, 2),
                      "score": round(seg.prob * unit, 2)}
                     for seg in d.seg()]
        return {"detections": merge(found), "decode_s": elapsed}


class KeyphraseStream:
    """Detection over a stream fed chunk by chunk (Wyoming's detect): every HOP_S of audio,
    the last WINDOW_S are decoded as a clip (spot()), and a detection is reported once, when
    it lies whole inside the window. The decoder's live normalisation (a decoder fed chunk by
    chunk) spotted none of the development phrases that the clip decode finds, measured:
    it adapts from the first frames, which are the room's silence. Cost: each second of
    audio is decoded WINDOW_S / HOP_S times (~0.3 of a core at the measured 0.05 s a
    second of audio); a detection is reported at most HOP_S after the phrase ended."""

    WINDOW_S = 3.0
    HOP_S = 0.5

    def __init__(self, spotter: KeyphraseSpotter):
        import numpy as np

        self._np = np
        self._spotter = spotter
        self._buf = np.zeros(0, "<i2")
        self._samples = 0    # fed so far (16 kHz)
        self._checked = 0    # samples fed at the last decode
        self._reported = -1.0  # end (s) of the last detection reported

    @property
    def seconds(self) -> float:
        return self._samples / 16000

    def feed(self, pcm16k) -> list[dict]:
        """int16 mono 16 kHz samples → the detections they completed (usually none)."""
        window = int(self.WINDOW_S * 16000)
        self._buf = self._np.concatenate([self._buf, pcm16k])[-window:]
        self._samples += len(pcm16k)
        if self._samples - self._checked < self.HOP_S * 16000:
            return []
        return self._decode(final=False)

    def flush(self) -> list[dict]:
        """At the end of the stream: what the audio since the last decode completed."""
        return self._decode(final=True) if self._samples > self._checked else []

    def _decode(self, final: bool) -> list[dict]:
        self._checked = self._samples
        length = len(self._buf) / 16000
        offset = self.seconds - length
        out = []
        for d in self._spotter.spot(self._buf)["detections"]:
            # cut by the window's end: it will be whole in the next one (unless the stream ends)
            if not final and d["end_s"] > length - 0.1:
                continue
            at, end = round(offset + d["at_s"], 2), round(offset + d["end_s"], 2)
            if at < self._reported:  # reported from an earlier window
                continue
            out.append(dict(d, at_s=at, end_s=end))
            self._reported = end
        return out

    def close(self) -> None:
        self._buf = self._np.zeros(0, "<i2")


def merge(detections: list[dict]) -> list[dict]:
    """One detection per spoken phrase: detections that overlap in time keep the best score.
    The search can fire on consecutive frames of one utterance, and one phrase can hold
    another's sound ("okay computer" ends like "hey computer": both fire, 0.2 s apart)."""
    out: list[dict] = []
    for d in sorted(detections, key=lambda d: d["at_s"]):
        if out and d["at_s"] < out[-1]["end_s"]:
            if d["score"] > out[-1]["score"]:
                out[-1] = dict(d)
            continue
        out.append(dict(d))
    return out
