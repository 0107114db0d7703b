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


def agent_profiles(cat: Catalog, name: str) -> list[str]:
    """The profiles an agent belongs to, in catalog order."""
    return [p.name for p in cat.profiles.values() if name in p.agents]


def agent_rows(cat: Catalog, names: list[str], states: dict[str, str] | None) -> list[dict]:
    """`agent list`: one row per agent. states: {agent: state} (None: systemd not asked)."""
    return [{"name": n, "group": cat.agents[n].group, "required": cat.agents[n].required,
             "profiles": agent_profiles(cat, n), "port": cat.agents[n].port,
             "health_port": cat.agents[n].health_port,
             "state": None if states is None else states.get(n)} for n in names]


def agent_entry(cat: Catalog, name: str) -> dict:
    """An agent's catalog entry as the loader resolved it (drop-ins merged, defaults filled)."""
    from dataclasses import asdict

    a = cat.agents[name]
    d = asdict(a)
    d["environment"] = dict(a.environment)
    d["systemd"] = dict(a.systemd)
    d["run"] = {"kind": a.run.kind, "spec": a.run.spec, **{k: v for k, v in asdict(a.run).items() if k != "kind"}}
    d["needed_by"] = [n for n, o in cat.agents.items() if name in o.depends_on]
    d["profiles"] = {p.name: start_mode(cat, p, name) for p in cat.profiles.values() if name in p.agents}
    import json

    return json.loads(json.dumps(d))  # tuples as lists: one plain document for YAML and JSON


def profile_diff(cat: Catalog, a: str, b: str) -> dict:
    """What switching from profile `a` to `b` changes, read from the catalog alone (no systemd:
    `profile switch --dry-run` adds what runs now): agents added and removed (with how each
    starts), agents whose start changes (dormant ↔ started), autoload, start timeout, budget."""
    pa, pb = cat.profile(a), cat.profile(b)

    def res(p: Profile):
        return {"cpu_percent": p.resources.cpu_percent, "memory_mb": p.resources.memory_mb} if p.resources else None

    return {
        "from": a, "to": b, "catalog": cat.path,
        "added": [{"name": n, "start": start_mode(cat, pb, n)} for n in pb.agents if n not in pa.agents],
        "removed": [{"name": n, "start": start_mode(cat, pa, n)} for n in pa.agents if n not in pb.agents],
        "start_changed": [{"name": n, "from": start_mode(cat, pa, n), "to": start_mode(cat, pb, n)}
                          for n in pb.agents if n in pa.agents and start_mode(cat, pa, n) != start_mode(cat, pb, n)],
        "unchanged": sum(1 for n in pb.agents if n in pa.agents),
        "autoload": {"added": [n for n in pb.autoload if n not in pa.autoload],
                     "removed": [n for n in pa.autoload if n not in pb.autoload]},
        "start_timeout_s": {"from": pa.start_timeout_s, "to": pb.start_timeout_s},
        "resources": {"from": res(pa), "to": res(pb)},
    }


def merged_document(data: dict, overrides: dict[str, str], selected: str) -> dict:
    """The catalog document (drop-ins merged) with what the operator set outside it: the
    runbook variables in force (`unified-ctl overrides show`) and the profile chosen by
    `profile switch`, written where a catalog would say them (settings.*)."""
    import copy

    from unified_core.catalog import ENV_OVERRIDES

    doc = copy.deepcopy(data)
    doc["settings"] = settings = dict(doc.get("settings") or {})  # (`settings:` may be empty)
    for var, value in overrides.items():
        path, conv = ENV_OVERRIDES[var]
        at = settings
        for key in path[:-1]:
            inner = dict(at.get(key) or {})
            at[key] = inner
            at = inner
        at[path[-1]] = conv(value)
    settings["profile"] = selected
    return doc
