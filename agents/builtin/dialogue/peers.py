"""Calling other agents by task type through RequestCoordinator, timed.

Every dialogue agent reaches the others the same way the CLI does: POST /task with a type to
the coordinator (DIALOGUE_COORDINATOR_URL, default http://127.0.0.1:7201), which routes by
the catalog's task_types. So the dialogue never hard-codes which agent owns a task, and a
profile without that agent answers a clear 409 instead of a hang.
"""
from __future__ import annotations

import time

from unified_agents import HTTPError, client

from .. import fields

DEFAULT_URL = "http://127.0.0.1:7201"


class Unavailable(Exception):
    """The task could not be answered by a real agent: unknown type, agent not in the
    profile, unreachable, an error answer, or only the reference agent serves it."""

    def __init__(self, ttype: str, why: str, status: int | None = None, agent: str | None = None):
        super().__init__(f"{ttype}: {why}")
        self.ttype, self.why, self.status, self.agent = ttype, why, status, agent


class Peers:
    def __init__(self, url: str, timeout: float):
        self.url = url.rstrip("/")
        self.client = client.Client(self.url, timeout=timeout)

    def task(self, ttype: str, body: dict, timings: dict | None = None, stage: str | None = None,
             timeout: float | None = None) -> tuple[dict, str]:
        """→ (result, agent). Unavailable when no real agent answered 2xx. The seconds it took
        go into timings[stage] (ms)."""
        t0 = time.perf_counter()
        try:
            out = self.client.post_json("/task", {"type": ttype, **body}, timeout=timeout)
        except client.AgentCallError as e:
            body_ = e.body if isinstance(e.body, dict) else {}
            why = body_.get("error") or str(e)
            raise Unavailable(ttype, why, e.status, body_.get("agent")) from None
        finally:
            if timings is not None:
                timings[stage or ttype] = round((time.perf_counter() - t0) * 1000, 2)
        if not isinstance(out, dict) or not isinstance(out.get("result"), dict):
            raise Unavailable(ttype, "the answer has no JSON object as result")
        result = out["result"]
        agent = out.get("agent") or "?"
        if result.get("implementation") == "reference":
            # the SDK's placeholder answer: never passed off as a real one
            raise Unavailable(ttype, f"{agent} runs the reference agent (no real "
                                     "implementation installed)", 501, agent)
        return result, agent


def pass_4xx(e: Unavailable) -> None:
    """Re-raise a caller's error (4xx from the peer, other than 'not available here') as ours:
    the peer already named the field and what is allowed."""
    if e.status is not None and 400 <= e.status < 500 and e.status not in (409,) \
            and "unknown task type" not in e.why:
        raise HTTPError(e.status, e.why)


def text_field(task: dict, name: str, max_chars: int, *, setting: str) -> str:
    return fields.text_field(task, name, max_chars, setting, "a sentence (a string)")
