"""Finding other agents through ServiceRegistry (GET /agents, GET /agents/NAME).

    from unified_agents.registry_client import RegistryClient

    reg = RegistryClient()                      # $SERVICE_REGISTRY_URL or http://127.0.0.1:7200
    reg.url("SystemDigitalTwin")                # 'http://127.0.0.1:7220'  (agent port)
    reg.url("SystemDigitalTwin", health=True)   # 'http://127.0.0.1:8220'  (health port)
    reg.agent("TutorAgent")["state"]            # 'dormant' | 'active' | 'failed' | ...
    reg.for_task("vision")                      # agents declaring a task type, profile's first
    reg.agents(state="active")                  # filtered directory

Addresses are static for a catalog, so url() caches them (`ttl`, default 60 s); states are
never cached here (the registry caches its systemd reads itself). If the registry cannot be
reached, url() falls back to the catalog file ($UNIFIED_CATALOG): an agent starting before
the registry still finds its peers. Unknown names raise UnknownAgent (a LookupError) with
the registry's suggestions; other failures raise client.AgentCallError.

Calling an agent's URL connects to its agent port, which activates it if it is dormant:
use `health=True` URLs for probes.
"""
from __future__ import annotations

import os
import threading
import time

from .client import AgentCallError, Client

DEFAULT_URL = "http://127.0.0.1:7200"


class UnknownAgent(LookupError):
    def __init__(self, name: str, did_you_mean=()):
        self.name = name
        self.did_you_mean = list(did_you_mean or ())
        hint = f"; did you mean {', '.join(self.did_you_mean)}?" if self.did_you_mean else ""
        super().__init__(f"unknown agent {name!r}{hint}")


class RegistryClient:
    def __init__(self, url: str | None = None, *, timeout: float = 2.0, ttl: float = 60.0,
                 catalog: str | None = None):
        self.base = (url or os.environ.get("SERVICE_REGISTRY_URL") or DEFAULT_URL).rstrip("/")
        self.http = Client(self.base, timeout=timeout)
        self.ttl = ttl
        self.catalog = catalog or os.environ.get("UNIFIED_CATALOG") or \
            "/etc/unified/unified.yaml"
        self._lock = threading.Lock()
        self._addr: dict = {}  # name -> (expires, agent_url, health_url)

    # ------------------------------------------------------------ directory
    def agent(self, name: str, *, health: bool = True) -> dict:
        """The registry's entry for NAME (state, ports, health, since ...)."""
        from urllib.parse import quote

        path = f"/agents/{quote(name, safe='')}" + ("" if health else "?health=false")
        try:
            e = self.http.get_json(path)
        except AgentCallError as err:
            if err.status == 404:
                body = err.body if isinstance(err.body, dict) else {}
                raise UnknownAgent(name, body.get("did_you_mean")) from None
            raise
        self._remember(e)
        return e

    def agents(self, **filters) -> list[dict]:
        """GET /agents with filters (state=, group=, profile=, task_type=, required=,
        in_profile=, health=)."""
        from urllib.parse import urlencode

        q = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items()
             if v is not None}
        rows = self.http.get_json("/agents" + (("?" + urlencode(q)) if q else ""))["agents"]
        for e in rows:
            self._remember(e)
        return rows

    def for_task(self, task_type: str) -> list[dict]:
        """Agents declaring `task_type`: those of the current profile first."""
        rows = self.agents(task_type=task_type, health=False)
        return sorted(rows, key=lambda e: not e.get("in_profile"))

    def url(self, name: str, *, health: bool = False) -> str:
        """http://host:port of NAME's agent port (or health port), cached."""
        now = time.monotonic()
        hit = self._addr.get(name)
        if hit is None or hit[0] < now:
            try:
                self.agent(name, health=False)
            except AgentCallError:
                self._from_catalog(name)
            hit = self._addr[name]
        return hit[2] if health else hit[1]

    # ------------------------------------------------------------ internals
    def _remember(self, e: dict) -> None:
        if "url" in e and "health_url" in e:
            health = e["health_url"].rsplit("/health", 1)[0]
            with self._lock:
                self._addr[e["name"]] = (time.monotonic() + self.ttl, e["url"], health)

    def _from_catalog(self, name: str) -> None:
        """The registry is unreachable: ports come from the catalog file itself."""
        from unified_core.catalog import load_catalog
        from unified_core.fleetview import connect_host

        cat = load_catalog(self.catalog, env={})
        a = cat.agents.get(name)
        if a is None:
            import difflib

            raise UnknownAgent(name, difflib.get_close_matches(name, list(cat.agents), n=3))
        host = connect_host(cat.settings.bind_address)
        hp = f"[{host}]" if ":" in host else host
        with self._lock:
            # a short life: ask the registry again soon
            self._addr[name] = (time.monotonic() + min(self.ttl, 5.0), f"http://{hp}:{a.port}",
                                f"http://{hp}:{a.health_port}")

    def close(self) -> None:
        self.http.close()
