"""TinyLlamaServiceEnhanced (5615/6615): the code is in llm/local_server.py
(docs/LLM_AGENTS.md)."""
from .llm.local_server import TinyLlamaServiceEnhanced

AGENT = TinyLlamaServiceEnhanced
