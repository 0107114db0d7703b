"""The dialogue agents (docs/DIALOGUE.md): AdvancedCommandHandler (commands.py),
IntentionValidatorAgent (validator.py) and Responder (responder.py), and what they share:
calling other agents by task type through RequestCoordinator (peers.py)."""
