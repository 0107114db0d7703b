"""An agent that raises its own request body limit in on_start (test_sdk_body_limit.py)."""
from unified_agents import Agent


class BigBodies(Agent):
    def on_start(self):
        self.max_body_bytes = self.config.env.integer("BIG_BODY_BYTES", 4 << 20, 1)

    def handle_task(self, task):
        return {"bytes": len(task.get("data", ""))}
