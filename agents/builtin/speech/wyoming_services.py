"""The Wyoming handlers of STTService ("asr": transcribe), TTSService ("tts": synthesize) and
WakeWordDetector ("wake": detect).

Both go through the same code as POST /task (the agent's recognise()/synthesize_pcm()), so a
Wyoming request gets the same checks, limits and engine as a task, and a task's 4xx becomes an
"error" event with the same text.
"""
from __future__ import annotations

from unified_agents import HTTPError

from . import wyoming as w

PROJECT = "unified-system"
# attribution of the programs (us): the installed documentation, as the units' Documentation=
URL = "file:/usr/share/doc/unified-system/README.md"
CHUNK_SAMPLES = 1024  # audio-chunk size of synthesised audio (as wyoming-piper sends)


class AsrHandler(w.Handler):
    """transcribe + audio-start/-chunk…/-stop → transcript."""

    domain, requests, takes_audio = "asr", ("transcribe",), True

    def __init__(self, agent):
        self.agent = agent

    def programs(self) -> list[dict]:
        a = self.agent
        return [w.artifact(a.name, f"{a.name} of {PROJECT} ({a.engine.name})", a.version,
                           by=PROJECT, url=URL, models=a.wyoming_models(),
                           supports_transcript_streaming=False, requires_external_vad=True)]

    def handle(self, session: w.Session, event: w.Event) -> None:
        st = session.state(self)
        t = event.type
        if t == "transcribe":
            lang = event.data.get("language")
            if lang is not None and (not isinstance(lang, str)
                                     or lang.lower().replace("_", "-").split("-")[0] != "en"):
                raise w.WyomingError(f"language {lang!r} is not served; allowed: en",
                                     "bad-language")
            st.clear()
            st["transcribe"] = True
        elif t == "audio-start":
            st["audio"] = w.AudioBuffer(w.audio_format(event.data), self.agent.max_audio_s,
                                        "STT_MAX_AUDIO_S")
        elif t == "audio-chunk":
            if "audio" not in st:  # no audio-start: the first chunk says the format
                st["audio"] = w.AudioBuffer(w.audio_format(event.data),
                                            self.agent.max_audio_s, "STT_MAX_AUDIO_S")
            st["audio"].add(event)
        elif t == "audio-stop":
            buf = st.pop("audio", None)
            st.clear()
            if buf is None:
                raise w.WyomingError("audio-stop without audio; allowed: audio-start, "
                                     "audio-chunk…, audio-stop", "bad-audio")
            try:
                out = self.agent.recognise(buf.wav())
            except HTTPError as e:
                raise w.handler_error(e) from None
            session.send("transcript", {"text": out["text"], "language": "en"})


class TtsHandler(w.Handler):
    """synthesize → audio-start, audio-chunk…, audio-stop (16-bit mono at the voice's rate)."""

    domain, requests = "tts", ("synthesize",)

    def __init__(self, agent):
        self.agent = agent

    def programs(self) -> list[dict]:
        a = self.agent
        try:
            voices = a.wyoming_voices()
        except HTTPError as e:  # a remote engine that is away
            raise w.handler_error(e) from None
        return [w.artifact(a.name, f"{a.name} of {PROJECT}", a.version, by=PROJECT, url=URL,
                           voices=voices, supports_synthesize_streaming=False)]

    def handle(self, session: w.Session, event: w.Event) -> None:
        text = event.data.get("text")
        voice = event.data.get("voice") or {}
        if not isinstance(voice, dict):
            raise w.WyomingError(f'"voice"={voice!r}; allowed: an object with "name" or '
                                 '"language"')
        name, lang = voice.get("name"), voice.get("language")
        try:
            if name is None and lang is not None:
                name = self.agent.voice_for_language(lang)
            pcm, rate = self.agent.synthesize_pcm(text, name)
        except HTTPError as e:
            raise w.handler_error(e) from None
        for ev in w.chunks(pcm, rate, samples=CHUNK_SAMPLES):
            session.send(ev.type, ev.data, ev.payload)


class WakeHandler(w.Handler):
    """detect + audio-start/-chunk…/-stop → "detection" as soon as a phrase has been heard
    (Home Assistant streams a satellite's microphone here and waits for it), "not-detected"
    at audio-stop when none was. Live: each stream has a decoder of its own
    (KeyphraseStream: the last seconds decoded every half second)."""

    domain, requests, takes_audio = "wake", ("detect",), True

    def __init__(self, agent):
        self.agent = agent

    def names(self) -> list[str]:
        return [p for p, _ in self.agent.engine.phrases]

    def programs(self) -> list[dict]:
        a = self.agent
        models = [w.artifact(p, f"the phrase '{p}' (threshold {t:g})", a.engine.version,
                             by=PROJECT, url=URL, languages=["en"], phrase=p)
                  for p, t in a.engine.phrases]
        return [w.artifact(a.name, f"{a.name} of {PROJECT} ({a.engine.name})", a.version,
                           by=PROJECT, url=URL, models=models)]

    def handle(self, session: w.Session, event: w.Event) -> None:
        st = session.state(self)
        t = event.type
        if t == "detect":
            names = event.data.get("names")
            if names is not None:
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    raise w.WyomingError(f'"names"={names!r}; allowed: a list of wake word '
                                         "names, or null for all")
                unknown = [n for n in names if n not in self.names()]
                if unknown:
                    raise w.WyomingError(f"wake word(s) {', '.join(map(repr, unknown))} are not "
                                         f"served; allowed: {', '.join(self.names())} "
                                         "(WAKE_PHRASES)", "bad-name")
            self._close(st)
            st["names"] = names
        elif t == "audio-start":
            self._close(st)
            self._open(st, w.audio_format(event.data))
        elif t == "audio-chunk":
            fmt = w.audio_format(event.data)
            if "stream" not in st:  # no audio-start: the first chunk says the format
                self._open(st, fmt)
            elif fmt != st["fmt"]:
                raise w.WyomingError(f"audio-chunk format {fmt} (rate, width, channels) differs "
                                     f"from the stream's {st['fmt']}; allowed: one format per "
                                     "stream", "bad-audio")
            self._feed(session, st, event.payload or b"")
        elif t == "audio-stop":
            if "stream" not in st:
                raise w.WyomingError("audio-stop without audio; allowed: audio-start, "
                                     "audio-chunk…, audio-stop", "bad-audio")
            self._report(session, st, st["stream"].flush())
            detected = st.get("detected", False)
            self._close(st)
            if not detected:
                session.send("not-detected", {})

    def _open(self, st: dict, fmt: tuple[int, int, int]) -> None:
        st["fmt"], st["stream"], st["detected"] = fmt, self.agent.engine.stream(), False

    def _close(self, st: dict) -> None:
        stream = st.pop("stream", None)
        if stream is not None:
            stream.close()

    def _feed(self, session: w.Session, st: dict, pcm: bytes) -> None:
        rate, width, channels = st["fmt"]
        if len(pcm) % (width * channels):
            raise w.WyomingError(f"audio-chunk of {len(pcm)} bytes is not whole samples of "
                                 f"{width} bytes x {channels} channels", "bad-audio")
        if not pcm:
            return
        wav = self.agent.wav
        # Home Assistant sends 16 kHz 16-bit mono: taken as is; anything else is converted
        # chunk by chunk (each chunk resampled on its own: fine for detection)
        if (rate, width, channels) == (16000, 2, 1):
            import numpy as np

            x = np.frombuffer(pcm, "<i2")
        else:
            x = wav.to_mono16k(wav.read(w.pcm_to_wav(pcm, rate, width, channels), 3600.0))[0]
        self._report(session, st, st["stream"].feed(x))

    def _report(self, session: w.Session, st: dict, found: list[dict]) -> None:
        names = st.get("names")
        for d in found:
            if names is None or d["phrase"] in names:
                st["detected"] = True
                self.agent.log.info("wake word detected (Wyoming)", phrase=d["phrase"],
                                    at_s=d["at_s"])
                session.send("detection", {"name": d["phrase"],
                                           "timestamp": int(round(d["at_s"] * 1000))})
