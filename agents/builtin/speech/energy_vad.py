"""An energy voice activity detector for barge-in, over 10 ms frames of 16 kHz int16 audio,
fed chunk by chunk as the microphone delivers them (vad.py, FusedAudioPreprocessor's
sub-band detector, works on a whole recording: its noise floor is a percentile over a 6 s
window around each frame, which a live stream has not heard yet).

A frame is speech when its level is above both an absolute threshold (`threshold_dbfs`) and
the running noise floor plus `margin_db`. The floor is the quietest frame of the first 200 ms
(CALIBRATION_FRAMES: no speech is detected in them; the user rarely talks over the first
words of a reply), then follows quieter frames down at once and creeps up slowly
(FLOOR_RISE_DB per frame), so steady background noise does not count as speech. Speech is detected after `min_speech_ms` of speech frames in one run,
gaps of up to HANGOVER_FRAMES frames allowed (the pauses inside a word).

Energy, not a trained model: Debian bookworm packages no webrtcvad/silero, and the old
PocketSphinx decoder's get_in_speech() needs a decoder (the model's memory, 0.6 s to load)
per watched playback. What energy cannot do is tell the assistant's own voice, heard back
through the microphone (echo), from the user's: docs/SPEECH.md measures how often that
fires a false barge-in at several echo levels.
"""
from __future__ import annotations

import numpy as np

RATE = 16000
FRAME = RATE // 100  # 10 ms
FLOOR_RISE_DB = 0.02  # per frame: 2 dB/s
HANGOVER_FRAMES = 5
CALIBRATION_FRAMES = 20  # 200 ms


class EnergyVAD:
    def __init__(self, threshold_dbfs: float = -40.0, margin_db: float = 10.0,
                 min_speech_ms: int = 150):
        self.threshold = threshold_dbfs
        self.margin = margin_db
        self.min_frames = max(1, min_speech_ms // 10)
        self.floor = float("inf")  # the quietest frame of the first CALIBRATION_FRAMES
        self._calibrating = CALIBRATION_FRAMES
        self.frames = 0  # frames seen
        self._tail = np.zeros(0, np.int16)
        self._run_start: int | None = None  # first frame of the current run of speech
        self._run_speech = 0  # speech frames in it
        self._gap = 0
        self.onset_frame: int | None = None  # where detected speech began
        self.detected_frame: int | None = None

    def feed(self, pcm) -> bool:
        """Take the next samples (int16); True once speech has been detected."""
        x = np.concatenate([self._tail, np.asarray(pcm, np.int16)])
        n = len(x) // FRAME
        self._tail = x[n * FRAME:]
        if n == 0 or self.detected_frame is not None:
            self.frames += n
            return self.detected_frame is not None
        f = x[:n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
        levels = 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)
        for level in levels:
            self._frame(float(level))
            self.frames += 1
            if self.detected_frame is not None:
                break
        return self.detected_frame is not None

    def _frame(self, level: float) -> None:
        if self._calibrating:
            self._calibrating -= 1
            self.floor = min(self.floor, level)
            return
        speech = level > max(self.threshold, self.floor + self.margin)
        self.floor = level if level < self.floor else self.floor + FLOOR_RISE_DB
        if speech:
            if self._run_start is None:
                self._run_start, self._run_speech = self.frames, 0
            self._run_speech += 1
            self._gap = 0
            if self._run_speech >= self.min_frames:
                self.onset_frame, self.detected_frame = self._run_start, self.frames + 1
        elif self._run_start is not None:
            self._gap += 1
            if self._gap > HANGOVER_FRAMES:
                self._run_start = None
