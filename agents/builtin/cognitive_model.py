"""CognitiveModelAgent (5641/6641): the code is in llm/cognitive.py (docs/LLM_AGENTS.md)."""
from .llm.cognitive import CognitiveModelAgent

AGENT = CognitiveModelAgent
