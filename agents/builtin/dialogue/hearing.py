"""The spoken half of a turn: preprocess → wake word (when asked for) → speech to text.

Each stage is a task through RequestCoordinator, like the tiers:
  preprocess  `audio_preprocessing` (FusedAudioPreprocessor): 16 kHz mono, normalised, and
              where the speech is. No speech → a 422 at once (STT is not asked about
              silence). The audio STT gets is cut to the speech, with PAD_S either side:
              silence before and after costs STT time and adds nothing to the words.
              Missing or failing: "skipped" names why, and STT gets the WAV as it came (it
              converts any WAV itself), so a turn does not depend on an optional stage.
  wake        `wake_word` (WakeWordDetector), only with "wake": true (a microphone that
              is always on): no wake phrase → a 422 saying so; heard → the audio after the
              phrase is the command. Asked for and unavailable → a 502: skipping it would
              answer what was never addressed to the assistant.
  stt         `stt` (STTService): the words.
"""
from __future__ import annotations

import base64
import io
import wave

from unified_agents import HTTPError

from .peers import Peers, Unavailable, pass_4xx

PAD_S = 0.25


def cut(wav_b64: str, start_s: float, end_s: float | None) -> str:
    """The WAV's frames from start_s to end_s (None: to the end), as a WAV in base64. Any PCM
    WAV the stdlib reads; ValueError for one it does not (e.g. float samples)."""
    try:
        with wave.open(io.BytesIO(base64.b64decode(wav_b64)), "rb") as r:
            params, rate, n = r.getparams(), r.getframerate(), r.getnframes()
            a = max(0, min(n, int(start_s * rate)))
            b = n if end_s is None else max(a, min(n, int(end_s * rate)))
            r.setpos(a)
            frames = r.readframes(b - a)
    except (wave.Error, EOFError, ValueError) as e:
        raise ValueError(f"not a PCM WAV the cut can read: {e}") from None
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def hear(peers: Peers, wav_b64: str, wake: bool, timings: dict, skipped: list) -> dict:
    """→ {"transcript", "speech_s", "wake": {...} | None, "stt": the STT answer}."""
    audio, segments, speech_s = wav_b64, None, None
    try:
        p, _ = peers.task("audio_preprocessing", {"audio_wav_b64": wav_b64}, timings,
                          "preprocess")
        audio, segments, speech_s = p["audio_wav_b64"], p.get("speech_segments") or [], \
            p.get("speech_s")
    except Unavailable as e:
        pass_4xx(e)    # the audio itself is bad: the preprocessor said what is wrong
        skipped.append({"tier": "preprocess", "why": f"audio passed on as it came: {e.why}"})
    if segments == []:
        raise HTTPError(422, "no speech in the audio (FusedAudioPreprocessor found no speech "
                             "segment)", transcript="")
    start_s = max(0.0, segments[0][0] - PAD_S) if segments else 0.0
    end_s = segments[-1][1] + PAD_S if segments else None
    heard_wake = None
    if wake:
        try:
            w, _ = peers.task("wake_word", {"audio_wav_b64": audio}, timings, "wake")
        except Unavailable as e:
            pass_4xx(e)
            raise HTTPError(502, f"a wake word was asked for and cannot be checked: {e.why}") \
                from None
        heard_wake = {k: w.get(k) for k in ("detected", "phrase", "at_s", "end_s", "score")}
        if not w.get("detected"):
            raise HTTPError(422, "no wake word in the audio: the turn was not addressed to the "
                                 "assistant", wake=heard_wake, transcript="")
        start_s = max(start_s, float(w.get("end_s") or 0.0))
    if start_s > 0 or end_s is not None:
        try:
            audio = cut(audio, start_s, end_s)
        except ValueError as e:   # only the raw WAV can be unreadable here (float samples)
            skipped.append({"tier": "preprocess", "why": f"audio not cut to the speech: {e}"})
    try:
        stt, _ = peers.task("stt", {"audio_wav_b64": audio}, timings, "stt")
    except Unavailable as e:
        pass_4xx(e)
        raise HTTPError(502, f"no transcript: speech to text failed: {e.why}") from None
    transcript = str(stt.get("text") or "").strip()
    if not transcript:
        raise HTTPError(422, "no words were recognised in the audio"
                        + (f" ({'; '.join(stt['warnings'])})" if stt.get("warnings") else ""),
                        transcript="", wake=heard_wake)
    return {"transcript": transcript, "speech_s": speech_s, "wake": heard_wake, "stt": stt}
