"""FusedAudioPreprocessor (6551/7551): 16 kHz mono, normalised, speech segments; the code is in
speech/."""
from .speech.prep_agent import FusedAudioPreprocessor

AGENT = FusedAudioPreprocessor
