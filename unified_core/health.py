"""Probe an agent's health port (never its agent port: that would wake a dormant agent)."""
from __future__ import annotations

import http.client
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    status: str  # healthy | degraded | unhealthy | unreachable | bad-response
    detail: dict | str


def probe(host: str, port: int, timeout: float = 1.0) -> HealthResult:
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
