"""DynamicIdentityAgent: the code is in dialogue/identity.py (docs/DIALOGUE.md)."""
from .dialogue.identity import DynamicIdentityAgent

AGENT = DynamicIdentityAgent
