"""FeedbackHandler: the code is in dialogue/feedback.py (docs/DIALOGUE.md)."""
from .dialogue.feedback import FeedbackHandler

AGENT = FeedbackHandler
