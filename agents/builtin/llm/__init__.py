"""The generative agents (docs/LLM_AGENTS.md): ChainOfThoughtAgent, GoTToTAgent,
CognitiveModelAgent, CodeGenerator over ModelManagerSuite, and TinyLlamaServiceEnhanced, the
manager of a local OpenAI-compatible server process."""
