"""ChainOfThoughtAgent (5612/6612): the code is in llm/cot.py (docs/LLM_AGENTS.md)."""
from .llm.cot import ChainOfThoughtAgent

AGENT = ChainOfThoughtAgent
