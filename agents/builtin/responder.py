"""Responder: the code is in dialogue/responder.py (docs/DIALOGUE.md)."""
from .dialogue.responder import Responder

AGENT = Responder
