"""Probe an agent's health port (never its agent port: that would wake a dormant agent).

http.client is imported by the first probe, not with this module: it is ~28 ms (its email
parser) of the start of every agent that reads the catalog, and most of them never probe.
"""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    status: str  # healthy | degraded | unhealthy | unreachable | bad-response
    detail: dict | str


def probe(host: str, port: int, timeout: float = 1.0) -> HealthResult:
    import http.client

    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health", headers={"User-Agent": "unified-ctl"})
        resp = conn.getresponse()
        body = resp.read(65536)
    except (OSError, http.client.HTTPException) as e:
        return HealthResult(False, "unreachable", str(e) or type(e).__name__)
    finally:
        conn.close()
    try:
        data = json.loads(body)
        status = str(data.get("status", "unknown"))
    except (ValueError, AttributeError):
        return HealthResult(False, "bad-response", body[:200].decode("utf-8", "replace"))
    return HealthResult(resp.status == 200 and status in ("healthy", "degraded"), status, data)
