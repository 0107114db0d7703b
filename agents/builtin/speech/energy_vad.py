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
per watched playback.

Echo: energy alone cannot tell the assistant's own voice, heard back through the microphone,
from the user's (docs/SPEECH.md measures how often that fires a false barge-in). Given the
audio the speaker played over the same samples (the "reference", as an echo canceller's
far-end input), a frame is speech only if it is also `echo_margin_db` above the echo that
reference can explain: the loudest reference frame of the last `echo_tail_ms` (the device's
delay and the room's reverberation) plus the echo path's gain. The gain (microphone level
minus reference level, dB) is learnt on the first ECHO_LEARN_FRAMES frames of loud reference
(no detection in them: the same assumption as the calibration, the user rarely talks over
the first words) and then follows the peaks of what non-speech frames show (ECHO_RISE_DB up,
ECHO_DECAY_DB down per frame). This is a double-talk detector in the manner of Geigel's, with
a learnt gain instead of a fixed one: it subtracts nothing from the audio, so it is not an
echo canceller.
"""
from __future__ import annotations

from collections import deque

import numpy as np

RATE = 16000
FRAME = RATE // 100  # 10 ms
FLOOR_RISE_DB = 0.02  # per frame: 2 dB/s
HANGOVER_FRAMES = 5
CALIBRATION_FRAMES = 20  # 200 ms
ECHO_LEARN_FRAMES = 50  # 500 ms of loud reference: longer than a device's delay
ECHO_LOUD_DB = 15.0  # a reference frame within this of the loudest heard so far is "loud"
ECHO_SILENT_DBFS = -70.0  # below this the reference plays nothing
ECHO_RISE_DB = 0.1  # per frame (10 dB/s): a louder echo path is caught up with quickly
ECHO_DECAY_DB = 0.005  # per frame (0.5 dB/s): a frame's gain is a lower bound, so fall slowly


class EnergyVAD:
    def __init__(self, threshold_dbfs: float = -40.0, margin_db: float = 10.0,
                 min_speech_ms: int = 150, echo_margin_db: float = 3.0,
                 echo_tail_ms: int = 600):
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
        self.echo_margin = echo_margin_db
        self.referenced: bool | None = None  # None until the first chunk says
        self.echo_gain: float | None = None  # dB: the echo's level minus the reference's
        self._echo_learn = ECHO_LEARN_FRAMES
        self._ref_levels: deque = deque(maxlen=max(1, echo_tail_ms // 10))
        self._ref_peak = ECHO_SILENT_DBFS
        self._ref_tail = np.zeros(0, np.int16)

    def feed(self, pcm, reference=None) -> bool:
        """Take the next samples (int16); True once speech has been detected. `reference`:
        what the speaker played over the same samples (as many), on every chunk or on none
        (ValueError otherwise)."""
        pcm = np.asarray(pcm, np.int16)
        if self.referenced is None:
            self.referenced = reference is not None
        if self.referenced != (reference is not None):
            raise ValueError("a reference on every chunk of a playback or on none")
        if reference is not None and len(reference) != len(pcm):
            raise ValueError(f"a reference of {len(reference)} samples for {len(pcm)}: "
                             "allowed: as many as the microphone's")
        x = np.concatenate([self._tail, pcm])
        n = len(x) // FRAME
        self._tail = x[n * FRAME:]
        refs: list = [None] * n
        if reference is not None:
            r = np.concatenate([self._ref_tail, np.asarray(reference, np.int16)])
            self._ref_tail = r[n * FRAME:]
            refs = list(_levels(r[:n * FRAME], n)) if n else []
        if n == 0 or self.detected_frame is not None:
            self.frames += n
            return self.detected_frame is not None
        for level, ref in zip(_levels(x[:n * FRAME], n), refs):
            self._frame(float(level), ref)
            self.frames += 1
            if self.detected_frame is not None:
                break
        return self.detected_frame is not None

    def _echo(self, level: float, ref) -> tuple[float | None, float | None, bool]:
        """(the echo the reference explains in this frame (dBFS) or None, the gain this frame
        shows or None, whether it is still being learnt)."""
        if ref is None:
            return None, None, False
        self._ref_levels.append(ref)
        self._ref_peak = max(self._ref_peak, ref)
        top = max(self._ref_levels)
        loud = top > ECHO_SILENT_DBFS and top >= self._ref_peak - ECHO_LOUD_DB
        seen = level - top if loud else None
        if seen is not None and self._echo_learn:
            self._echo_learn -= 1
            self.echo_gain = seen if self.echo_gain is None else max(self.echo_gain, seen)
            return None, None, True
        if self.echo_gain is None or top <= ECHO_SILENT_DBFS:
            return None, seen, False
        return top + self.echo_gain, seen, False

    def _frame(self, level: float, ref=None) -> None:
        echo, seen, learning = self._echo(level, ref)
        if self._calibrating:
            self._calibrating -= 1
            self.floor = min(self.floor, level)
            return
        speech = level > max(self.threshold, self.floor + self.margin) and not learning and (
            echo is None or level > echo + self.echo_margin)
        self.floor = level if level < self.floor else self.floor + FLOOR_RISE_DB
        if seen is not None and not speech and self.echo_gain is not None:
            # seen = this frame's level minus the loudest reference of the tail: never more
            # than the path's gain, often less (a pause heard while the tail still holds a
            # loud frame), so the estimate follows the peaks: up fast, down slowly
            self.echo_gain = (min(seen, self.echo_gain + ECHO_RISE_DB) if seen > self.echo_gain
                              else self.echo_gain - ECHO_DECAY_DB)
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


def _levels(x, n: int):
    """dBFS of each 10 ms frame."""
    f = x.astype(np.float64).reshape(n, FRAME) / 32768.0
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)
