"""StreamingInterruptHandler (5576/6576): barge-in, stops the playback the user talks over;
the code is in speech/."""
from .speech.interrupt_agent import StreamingInterruptHandler

AGENT = StreamingInterruptHandler
