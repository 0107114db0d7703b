"""STTService (5800/6800): speech to text with PocketSphinx; the code is in speech/."""
from .speech.stt_agent import STTService

AGENT = STTService
