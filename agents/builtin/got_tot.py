"""GoTToTAgent (5646/6646): the code is in llm/tot.py (docs/LLM_AGENTS.md)."""
from .llm.tot import GoTToTAgent

AGENT = GoTToTAgent
