"""Agents the coordination tests run as entry points (tests/unit only)."""
import os
import time

from unified_agents import Agent, HTTPError, current_request


class Flaky(Agent):
    """Fails every task while the file $FLAKY_SWITCH exists (500), answers otherwise.
    {"data": {"sleep": s}} sleeps first; {"data": {"bad": true}} is a client error (400).
    The answer shows the Idempotency-Key the task came with and when it ran."""

    def handle_task(self, task):
        data = task.get("data") or {}
        if isinstance(data, dict) and data.get("sleep"):
            time.sleep(float(data["sleep"]))
        if isinstance(data, dict) and data.get("bad"):
            raise HTTPError(400, "bad input (a client error, not the agent's failure)")
        switch = os.environ.get("FLAKY_SWITCH")
        if switch and os.path.exists(switch):
            raise RuntimeError("simulated failure")
        return {"served_by": self.name, "data": data, "pid": os.getpid(),
                "idempotency_key": current_request().header("Idempotency-Key"),
                "run_at": time.time()}
