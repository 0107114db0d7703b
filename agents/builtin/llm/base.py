"""What the generative agents share: the gateway, reading a task's fields, /health facts."""
from __future__ import annotations

from unified_agents import Agent, HTTPError

from .gateway import Gateway, Ledger


def field(task: dict, name: str, default=None):
    """A task field, at the top level or inside "data" (RequestCoordinator passes either)."""
    if name in task:
        return task[name]
    data = task.get("data")
    if isinstance(data, dict):
        return data.get(name, default)
    return default


def integer(task: dict, name: str, default: int, lo: int, hi: int) -> int:
    v = field(task, name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise HTTPError(400, f'"{name}"={v!r} is invalid; allowed: an integer {lo}..{hi}')
    return v


def number(task: dict, name: str, default: float, lo: float, hi: float) -> float:
    v = field(task, name, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise HTTPError(400, f'"{name}"={v!r} is invalid; allowed: a number {lo}..{hi}')
    return float(v)


class LLMAgent(Agent):
    version = "1.0.0"
    strategy = ""          # one line for /health

    def on_start(self) -> None:
        self.gateway = Gateway.from_catalog(self)
        self.max_chars = self.config.env.integer("LLM_MAX_PROMPT_CHARS", 8000, 1, 1_000_000)
        self.max_tokens = self.config.env.integer("LLM_MAX_TOKENS", 512, 1, 32768)
        self.served = 0

    def text(self, task: dict, *names: str) -> str:
        """The task's text: the first of `names` present, or "data" when it is a string."""
        v = next((field(task, n) for n in names if field(task, n) is not None), None)
        if v is None and isinstance(task.get("data"), str):
            v = task["data"]
        if not isinstance(v, str) or not v.strip():
            raise HTTPError(400, f'"{names[0]}" is missing or empty; allowed: the text to '
                                 "work on")
        if len(v) > self.max_chars:
            raise HTTPError(413, f'"{names[0]}" has {len(v)} characters; allowed: at most '
                                 f"{self.max_chars} (LLM_MAX_PROMPT_CHARS)")
        return v.strip()

    def ledger(self) -> Ledger:
        return Ledger()

    def health_info(self) -> dict:
        return {"engine": "model-manager", "strategy": self.strategy, "served": self.served,
                **self.gateway.describe()}
