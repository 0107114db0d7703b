"""unified_agents: the SDK every agent process runs on, plus the built-in agents."""

__version__ = "0.1.0"
