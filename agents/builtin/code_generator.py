"""CodeGenerator (5650/6650): the code is in llm/codegen.py (docs/LLM_AGENTS.md)."""
from .llm.codegen import CodeGenerator

AGENT = CodeGenerator
