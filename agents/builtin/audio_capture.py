"""AudioCapture (6550/7550): audio from an ALSA device, a WAV file or an HTTP WAV stream; the
code is in speech/."""
from .speech.capture_agent import AudioCapture

AGENT = AudioCapture
