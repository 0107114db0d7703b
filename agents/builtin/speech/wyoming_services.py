"""The Wyoming handlers of STTService ("asr": transcribe) and TTSService ("tts": synthesize).

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
