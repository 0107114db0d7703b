"""AdvancedCommandHandler: the code is in dialogue/commands.py (docs/DIALOGUE.md)."""
from .dialogue.commands import AdvancedCommandHandler

AGENT = AdvancedCommandHandler
