"""Plain data views of the catalog for the CLI's tables and --json output."""
from __future__ import annotations

from unified_core.model import Catalog, Profile


def profile_rows(cat: Catalog, selected: str) -> list[dict]:
    rows = []
    for p in cat.profiles.values():
        ess = [a for a in p.agents if cat.agents[a].required]
        rows.append({
            "name": p.name, "selected": p.name == selected, "description": p.description,
            "agents": len(p.agents), "essential": len(ess), "optional": len(p.agents) - len(ess),
            "autoload": list(p.autoload),
            "resources": ({"cpu_percent": p.resources.cpu_percent, "memory_mb": p.resources.memory_mb}
                          if p.resources else None),
            "target": p.target,
        })
    return rows


def start_mode(cat: Catalog, p: Profile, name: str) -> str:
    """How the profile starts an agent: its service now, or only its socket (dormant)."""
    a = cat.agents[name]
    if a.required:
        return "service"
    return "service (autoload)" if name in p.autoload else "socket (dormant)"


def profile_detail(cat: Catalog, p: Profile) -> dict:
    via = set(p.via_dependency)
    needed_by: dict[str, list[str]] = {}
    for n in p.agents:
        for d in cat.agents[n].depends_on:
            needed_by.setdefault(d, []).append(n)
    agents = []
    for n in p.agents:
        a = cat.agents[n]
        why = ("dependency of " + ", ".join(needed_by.get(n, []))) if n in via else f"group {a.group}"
        agents.append({
            "name": n, "group": a.group, "required": a.required, "port": a.port,
            "health_port": a.health_port, "start": start_mode(cat, p, n),
            "via_dependency": n in via, "why": why, "depends_on": list(a.depends_on),
        })
    return {
        "name": p.name, "description": p.description, "target": p.target, "count": len(p.agents),
        "agents": agents, "via_dependency": list(p.via_dependency), "autoload": list(p.autoload),
        "resources": ({"cpu_percent": p.resources.cpu_percent, "memory_mb": p.resources.memory_mb}
                      if p.resources else None),
        "start_timeout_s": p.start_timeout_s,
    }
