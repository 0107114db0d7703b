"""StreamingSpeechRecognition (6553/7553): partial and final transcripts while audio arrives,
with PocketSphinx; the code is in speech/."""
from .speech.stream_stt_agent import StreamingSpeechRecognition

AGENT = StreamingSpeechRecognition
