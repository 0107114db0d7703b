"""Speech engines and agents (STTService, TTSService), kept in one subpackage so that the
speech part can ship as its own binary package later (docs/SPEECH.md).

Nothing here imports an engine at import time: the agents check their engines in on_start()
and a missing one is a ConfigError naming the package to install (exit 2, no restart loop).
"""
