"""Agents the guard tests run (UNIFIED_RUN=entry_point:sdk_guard_agents:Vault)."""
import threading

from unified_agents import Agent, HTTPError, client, route


class Vault(Agent):
    """A counter that only trusted callers may reset; a relay that calls another agent's
    mutating route on behalf of its own caller (the confused-deputy case)."""

    def on_start(self):
        self.lock = threading.Lock()
        self.count = 0

    @route("POST", "/bump")
    def bump(self, request):
        with self.lock:
            self.count += 1
            return {"count": self.count}

    @route("GET", "/count", listener="both")
    def get_count(self, request):
        return {"count": self.count}

    @route("POST", "/reset", mutating=True, listener="both")
    def reset(self, request):
        with self.lock:
            self.count = 0
        return {"count": 0}

    @route("DELETE", "/things/{name}", mutating=True)
    def delete(self, request):
        return {"deleted": request.params["name"]}

    def handle_task(self, task):
        if task.get("data") == "reset":
            self.authorize()
            return self.reset(None)
        return {"count": self.count}

    def release_caches(self):
        return 1

    @route("POST", "/relay")
    def relay(self, request):
        """POST {"url": ...}: call that URL (another agent's mutating route)."""
        url = request.json().get("url")
        try:
            return {"status": 200, "body": client.post_json(url, {}, timeout=5)}
        except client.AgentCallError as e:
            if e.status is None:
                raise HTTPError(502, str(e)) from None
            return {"status": e.status, "body": e.body}
