"""StreamingTTSAgent (5562/6562): speech sentence by sentence, played on ALSA or a file;
the code is in speech/."""
from .speech.stream_tts_agent import StreamingTTSAgent

AGENT = StreamingTTSAgent
