"""IntentionValidatorAgent: the code is in dialogue/validator.py (docs/DIALOGUE.md)."""
from .dialogue.validator import IntentionValidatorAgent

AGENT = IntentionValidatorAgent
