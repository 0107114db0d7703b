"""TTSService (5801/6801): text to speech with flite or espeak-ng; the code is in speech/."""
from .speech.tts_agent import TTSService

AGENT = TTSService
