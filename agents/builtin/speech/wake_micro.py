"""Wake word with microWakeWord (PyPI `pymicro-wakeword`: small streaming TFLite models that
ship inside the wheel: alexa, hey_jarvis, hey_mycroft, okay_nabu), the engine Home
Assistant's voice satellites run. Neither it nor `pymicro-features` is in Debian: the package
unified-system-wakeword vendors both wheels, unpacked, in VENDOR_DIR (WAKE_VENDOR_DIR); the
agent imports them from the Python path or from there.

Same interface as wake.KeyphraseSpotter (spot, stream, load, phrases, version, model_dir,
load_s), so WakeWordDetector and its Wyoming handler do not care which engine runs. The models are
streaming by nature: 10 ms feature frames, a probability every 30 ms, a detection when the
mean of the last `sliding_window_size` probabilities reaches the model's cutoff (its own
JSON, or WAKE_CUTOFF when set). The detection fires just after the phrase ends: `end_s` is
that moment, `at_s` where the speech before it began (the energy onset above the noise floor
in the 2 s before). The probability is averaged over a few frames, so a command said with no
pause may have begun up to ~0.2 s before `end_s`; finding the pause by energy was tried and
was no better (a stop consonant inside the phrase, the b of "nabu", and a voiceless "s" at
the command's start are as quiet as the pause).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

import numpy as np   # the agent checks it (python3-numpy) before it imports this module

VENDOR_DIR = "/usr/lib/unified-system/wakeword"
PACKAGE = "unified-system-wakeword"
PIP_HINT = "pip install --no-deps pymicro-wakeword==2.5.0 pymicro-features==2.0.2"
SAMPLE_RATE = 16000
LOOKBACK_S = 2.0          # where to look for the phrase's start before its detection
REFRACTORY_S = 1.0        # one detection per phrase: the probability stays high a while


def import_module(vendor_dir: str = VENDOR_DIR):
    """pymicro_wakeword, from the vendored directory when it is not importable already.
    ImportError when neither has it (the caller names the package)."""
    if os.path.isdir(vendor_dir) and vendor_dir not in sys.path:
        sys.path.append(vendor_dir)
    import pymicro_wakeword  # noqa: F401  (the import is the check)

    return pymicro_wakeword


def model_names(module) -> dict[str, str]:
    """{"hey jarvis": "hey_jarvis", ...}: the phrase of each model shipped in the wheel."""
    return {m.value.replace("_", " "): m.value for m in module.Model}


class MicroWakeWordSpotter:
    name = "microwakeword"

    def __init__(self, module, phrases: list[tuple[str, float | None]]):
        """phrases: (phrase, cutoff or None for the model's own), each a shipped model's
        phrase (model_names); checked by the caller."""
        self._module = module
        self.phrases = phrases
        self._names = model_names(module)
        self.model_dir = os.path.join(os.path.dirname(module.__file__), "models")
        self._models: list = []
        self._lock = threading.Lock()
        self.load_s: float | None = None

    @property
    def version(self) -> str:
        from .. import deps

        return "pymicro-wakeword " + deps.installed_version("pymicro-wakeword")

    def load(self) -> float:
        t0 = time.perf_counter()
        self._models = [self._new_model(p, cutoff) for p, cutoff in self.phrases]
        # from here on each phrase has its number: the model's own cutoff unless one was set
        self.phrases = [(p, float(m.probability_cutoff)) for p, m in self._models]
        self.load_s = time.perf_counter() - t0
        return self.load_s

    def _new_model(self, phrase: str, cutoff: float | None):
        m = self._module.MicroWakeWord.from_builtin(self._module.Model(self._names[phrase]))
        if cutoff is not None:
            m.probability_cutoff = cutoff
        return phrase, m

    def stream(self) -> "MicroStream":
        """A detector over audio as it arrives (Wyoming's detect): its own models' state."""
        return MicroStream(self._module, [self._new_model(p, c) for p, c in self.phrases])

    def spot(self, pcm16k) -> dict:
        """pcm16k: int16 mono samples at 16 kHz (numpy). Every detection, in time order:
        {"phrase", "at_s", "end_s", "score" (the windowed probability, 0-1)}."""
        t0 = time.perf_counter()
        with self._lock:
            s = MicroStream(self._module, self._models)
            try:
                found = s.feed(pcm16k) + s.flush()
            finally:
                s.close()   # resets the shared models for the next clip
        return {"detections": found, "decode_s": time.perf_counter() - t0}


class MicroStream:
    def __init__(self, module, models: list):
        self._models = models
        self._features = module.MicroWakeWordFeatures()
        # the last LOOKBACK_S as 10 ms pieces, joined only when a detection needs its onset
        self._recent: deque = deque(maxlen=int(LOOKBACK_S * 100))
        self._samples = 0
        self._last: dict[str, float] = {}    # phrase → end_s of its last detection

    @property
    def seconds(self) -> float:
        return self._samples / SAMPLE_RATE

    def feed(self, pcm16k) -> list[dict]:
        out = []
        # feature frames are 10 ms; feed in 10 ms pieces so a detection's time is exact
        step = SAMPLE_RATE // 100
        for i in range(0, len(pcm16k), step):
            piece = pcm16k[i:i + step]
            self._samples += len(piece)
            self._recent.append(piece)
            for feats in self._features.process_streaming(piece.tobytes()):
                for phrase, m in self._models:
                    p = m.process_streaming_prob(feats)
                    if p is None or p <= m.probability_cutoff:   # as the library decides
                        continue
                    now = self.seconds
                    if now - self._last.get(phrase, -10.0) < REFRACTORY_S:
                        continue
                    self._last[phrase] = now
                    out.append({"phrase": phrase, "at_s": self._onset(now),
                                "end_s": round(now, 2),
                                "score": round(float(p), 3)})
        return out

    def flush(self) -> list[dict]:
        return []    # streaming: every detection was reported as its frame arrived

    def _onset(self, now: float) -> float:
        recent = np.concatenate(self._recent)
        start = now - len(recent) / SAMPLE_RATE
        return round(max(0.0, start + speech_onset_s(recent)), 2)

    def close(self) -> None:
        for _, m in self._models:
            m.reset()
        self._features.reset()


def speech_onset_s(pcm) -> float:
    """Where the speech in `pcm` (the seconds before a detection) begins: the first of three
    10 ms frames in a row above the noise floor by a tenth of the way to the loudest frame.
    Relative to the floor, so steady noise (a fan, the evaluation's white noise) does not
    make every frame "speech", as a fraction of the peak alone would."""
    hop = SAMPLE_RATE // 100
    n = len(pcm) // hop
    if n < 3:
        return 0.0
    rms = np.sqrt(np.mean(np.asarray(pcm[:n * hop], np.float64).reshape(n, hop) ** 2, axis=1))
    floor, peak = float(np.percentile(rms, 10)), float(rms.max())
    loud = rms > floor + 0.1 * (peak - floor)
    run = loud[:-2] & loud[1:-1] & loud[2:]
    return float(np.argmax(run)) / 100 if run.any() else 0.0
