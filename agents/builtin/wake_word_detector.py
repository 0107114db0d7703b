"""WakeWordDetector (6552/7552): wake phrase spotting with PocketSphinx; the code is in
speech/."""
from .speech.wake_agent import WakeWordDetector

AGENT = WakeWordDetector
