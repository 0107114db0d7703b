"""The built-in agents: one module per agent, named by the catalog's `run: {builtin: MODULE}`.

The speech agents and their engines (speech/) ship in a binary package of their own, so the
base install does not carry ~100 MB of speech models for machines that never speak
(docs/SPEECH.md, "Packages"). packaging/debian/rules moves exactly these modules there; a
catalog entry that names one while that package is not installed fails its start (exit 2)
naming the package (unified_agents.cli).
"""

VOICE_PACKAGE = "unified-system-voice"
VOICE_MODULES = (
    "audio_capture",
    "fused_audio_preprocessor",
    "streaming_interrupt",
    "streaming_speech_recognition",
    "streaming_tts",
    "stt_service",
    "tts_service",
    "wake_word_detector",
)
