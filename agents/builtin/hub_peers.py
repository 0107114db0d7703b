"""JSON the hub reads from other agents: RequestCoordinator's circuit breakers and
ModelManagerSuite's LLM routing statistics.

Both live on the agents' AGENT ports (the only place those routes exist), and connecting to
an agent port of a dormant agent would start it. So a peer is asked only while systemd says
its service is active and its main process still exists; otherwise the last answer is kept
and marked with why it was not refreshed. A peer that does not offer the route (404: an
older agent, or the reference agent standing in for it) is "unavailable", not an error of
the hub.
"""
from __future__ import annotations

import time

from unified_core.poller import Poller, describe
from unified_core.units import process_running


class PeerPoller(Poller):
    def __init__(self, name: str, agent: str, path: str, view, units_source,
                 interval_s: float = 10.0, timeout_s: float = 1.0, **kw):
        self.name = name
        super().__init__(interval_s, **kw)
        self.agent = agent
        self.path = path
        self.view = view                # .snap.catalog / .snap.host
        self.units_source = units_source
        self.timeout_s = timeout_s
        self.data = None                # the peer's last JSON answer
        self.fetched_wall: float | None = None
        self.available: bool | None = None
        self.reason = "not asked yet"

    def url(self) -> str | None:
        snap = self.view.snap
        a = snap.catalog.agents.get(self.agent)
        if a is None:
            return None
        host = snap.host if ":" not in snap.host else f"[{snap.host}]"
        return f"http://{host}:{a.port}{self.path}"

    def can_ask(self) -> tuple[bool, str]:
        url = self.url()
        if url is None:
            return False, f"{self.agent} is not in the catalog"
        u = self.units_source().get(self.agent)
        if u is None or u.state != "active":
            return False, f"{self.agent} is {u.state if u else 'unknown'}; not asked " \
                          "(the hub never wakes an agent)"
        if not process_running(u):
            return False, f"{self.agent}'s process {u.pid} is gone; not asked"
        return True, url

    def collect(self) -> None:
        ok, what = self.can_ask()
        if not ok:
            self.reason = what
            return
        from unified_agents.client import AgentCallError, get_json

        try:
            data = get_json(what, timeout=self.timeout_s)
        except AgentCallError as e:
            if e.status == 404:
                self.available = False
                self.data = None
                self.reason = f"{self.agent} does not offer {self.path} (404)"
                return
            raise RuntimeError(f"GET {what}: {describe(e)}") from None
        self.data = data
        self.available = True
        self.fetched_wall = time.time()
        self.reason = "ok"

    def view_dict(self) -> dict:
        age = None if self.fetched_wall is None else round(time.time() - self.fetched_wall, 1)
        return {"source": self.agent, "path": self.path, "available": self.available,
                "reason": self.reason, "error": self.last_error or None, "age_s": age,
                "data": self.data}


def open_breakers(data) -> list[dict]:
    """Breakers not closed, from RequestCoordinator's /circuit_breakers answer."""
    if not isinstance(data, dict) or not isinstance(data.get("agents"), dict):
        return []
    out = []
    for name, b in sorted(data["agents"].items()):
        if isinstance(b, dict) and b.get("state") in ("open", "half_open"):
            out.append({"agent": name, "state": b.get("state"),
                        "failures": b.get("consecutive_failures", b.get("failures")),
                        "last_failure": b.get("last_failure")})
    return out


def routing_split(data) -> dict:
    """{backend: decisions} from ModelManagerSuite's /routing/stats, whatever its nesting:
    the first mapping of names to counts under a key that says backend/decision."""
    if not isinstance(data, dict):
        return {}
    for key in ("by_backend", "backends", "decisions", "split", "counts"):
        v = data.get(key)
        if isinstance(v, dict):
            flat = {}
            for k, n in v.items():
                if isinstance(n, (int, float)) and not isinstance(n, bool):
                    flat[str(k)] = n
                elif isinstance(n, dict):
                    for ck in ("decisions", "count", "total", "requests"):
                        if isinstance(n.get(ck), (int, float)):
                            flat[str(k)] = n[ck]
                            break
            if flat:
                return flat
    return {}
