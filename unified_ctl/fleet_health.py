"""Fleet health for `unified-ctl health` and `status`: the ObservabilityHub's summary when
the hub runs, else the same shape from systemd and the cgroups directly.

(Wiring Prometheus and Alertmanager to the fleet is another job: monitoring.py.)
"""
from __future__ import annotations

import time

HUB = "ObservabilityHub"


def hub_summary(cat, all_agents: bool = False, timeout: float = 3.0) -> dict | None:
    """The hub's /health/summary when the hub runs, else None. Its health port (which never
    activates anything) is asked first: only a running hub is asked on its agent port, so
    this never starts a stopped hub."""
    import http.client
    import json

    from unified_core.health import probe

    hub = cat.agents.get(HUB)
    if hub is None:
        return None
    bind = cat.settings.bind_address
    if probe(bind, hub.health_port, min(timeout, 1.0)).status in ("unreachable", "bad-response"):
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)
    conn = http.client.HTTPConnection(host, hub.port, timeout=timeout)
    try:
        conn.request("GET", "/health/summary" + ("?all=1" if all_agents else ""),
                     headers={"User-Agent": "unified-ctl"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return None
        data = json.loads(body)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if not isinstance(data, dict) or "agents" not in data:
        return None
    data["source"] = "hub"
    return data


def systemd_summary(cat, sd, all_agents: bool = False) -> dict:
    """The same shape as the hub's summary, from systemd and the cgroups directly (the hub
    is not running): no journal (last errors), no GPU, no breakers, no alert history (the
    conditions that hold now are listed as pending, except those without a `for:`)."""
    from unified_core.alerts import AlertState, conditions, health_score, overall
    from unified_core.units import ResourceCollector, read_units

    from unified_core.profiles import current_profile

    profile = current_profile(cat)
    members = set(cat.profiles[profile].agents)
    units = read_units(cat, sd)
    rc = ResourceCollector(lambda: units, 1.0)
    rc.collect()
    alerts = AlertState().evaluate(conditions(cat, members, units, rc.samples, None, None))
    score = health_score(cat, members, units, alerts)
    rows = []
    now = time.time()
    for name, a in cat.agents.items():
        u = units[name]
        if not (all_agents or name in members or u.running):
            continue
        s = rc.samples.get(name)
        rows.append({"name": name, "group": a.group, "required": a.required,
                     "in_profile": name in members, "state": u.state, "pid": u.pid,
                     "restarts": u.restarts, "result": u.result,
                     "memory_bytes": s.memory_bytes if s else None,
                     "memory_limit_bytes": a.resources.memory_mb << 20,
                     "cpu_seconds": s.cpu_seconds if s else None, "cpu_percent": None,
                     "vram_bytes": None, "startup_s": u.startup_s,
                     "uptime_s": round(now - u.start_wall, 1)
                     if u.running and u.start_wall else None,
                     "last_error": None})
    counts: dict = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    essential = [r for r in rows if r["required"] and r["in_profile"]]
    return {
        "source": "systemd", "status": overall(score, alerts, []), "health_score": score,
        "profile": profile, "host": cat.settings.host, "counts": counts,
        "essential": {"total": len(essential),
                      "up": sum(1 for r in essential if r["state"] == "active"),
                      "down": [r["name"] for r in essential if r["state"] != "active"]},
        "alerts": [{"name": x["name"], "severity": x["severity"], "state": x["state"],
                    "labels": x["labels"], "summary": x["summary"], "action": x["action"]}
                   for x in alerts],
        "note": "the ObservabilityHub is not running: systemd's view only (no journal, GPU, "
                "breakers or alert history)",
        "agents": rows,
    }


def fleet_health(cat, sd, all_agents: bool = False) -> dict:
    return hub_summary(cat, all_agents) or systemd_summary(cat, sd, all_agents)
