"""Agents for the VRAM optimizer's tests (entry_point:models_test_agents:NAME)."""
from unified_agents import Agent, route


class CacheHolder(Agent):
    """An agent that opts in to cache release: POST /cache/release → bytes it let go."""

    cached = 300 << 20

    @route("POST", "/cache/release")
    def release(self, request):
        freed, self.cached = self.cached, 0
        return {"freed_bytes": freed}
