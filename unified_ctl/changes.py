"""What a catalog change leaves stale in the running fleet, and why: the one answer to "who
must restart" for `apply`, `config rollback|promote|abort` and a staged rollout's start.

systemd reads a changed unit at daemon-reload but a running process keeps the environment,
limits and command it started with, and a listening socket keeps its old port ("Socket unit
configuration has changed while unit has been running"). So the units rendered before and
after are compared, agent by agent (`apply`: the generator's output on disk around its
reload; the others: the pure renderer on both catalogs, `between`); and for the built-in
agents that read parts of the catalog only when they start (the models and routing of
ModelManagerSuite, the VRAM budgets of VRAMOptimizerAgent) the catalog sections as well.
The other built-ins follow catalog edits by themselves (FleetView watches the file).
"""
from __future__ import annotations

import json
import os

from unified_core import paths
from unified_core.model import Catalog

SETTINGS = "unified-agent@.service.d"
PORTS_CHANGED = "its ports changed"  # the socket must be re-bound, not only the process restarted
PREFIXES = ("unified-agent@", "unified-backend@")
# builtin module -> what of the catalog it reads only at start (a function of the catalog)
READ_AT_START = {
    "model_manager": ("models and routing", lambda c: (c.routing, c.models)),
    "vram_optimizer": ("which agents use VRAM and ModelManagerSuite's address", lambda c: (
        sorted(a.name for a in c.agents.values() if a.resources.vram_mb > 0),
        c.settings.bind_address,
        c.agents["ModelManagerSuite"].port if "ModelManagerSuite" in c.agents else None)),
}


def _what_systemd_reads(data: bytes) -> bytes:
    """Comments (the header names the catalog's files) and blank lines change nothing."""
    return b"\n".join(ln for ln in data.splitlines()
                      if ln.strip() and not ln.lstrip().startswith((b"#", b";")))


def snapshot(root: str | None = None) -> dict[str, bytes]:
    """Relative path -> content of our files in the generator's output."""
    root = root or paths.generator_dir()
    out: dict[str, bytes] = {}
    try:
        tops = [t for t in os.listdir(root) if t.startswith(PREFIXES)]
    except OSError:
        return out
    for top in tops:
        full = os.path.join(root, top)
        if os.path.isdir(full) and not os.path.islink(full):
            for name in os.listdir(full):
                try:
                    with open(os.path.join(full, name), "rb") as f:
                        out[f"{top}/{name}"] = _what_systemd_reads(f.read())
                except OSError:
                    pass
    return out


def rendered(cat: Catalog, ncpu: int | None = None) -> dict[str, bytes]:
    """What snapshot() would read after the generator rendered `cat` (the generator's own
    inputs: the selected profile, the CPU count, whether the token file exists)."""
    from unified_core.profiles import current_profile
    from .generator import token_for_render
    from .render import render

    files = render(cat, current_profile(cat), ncpu or os.cpu_count() or 1, token_for_render())
    return {rel: _what_systemd_reads(text.encode()) for rel, text in files.items()
            if isinstance(text, str) and "/" in rel and rel.startswith(PREFIXES)}


def between(old: Catalog, new: Catalog, ncpu: int | None = None) -> dict[str, str]:
    """stale() for two catalogs, rendering both (rollback, promote, abort, a trial's start)."""
    return stale(rendered(old, ncpu), rendered(new, ncpu), old, new)


def _agent_of(rel: str) -> str | None:
    top = rel.split("/", 1)[0]
    for prefix in PREFIXES:
        if top.startswith(prefix) and top != SETTINGS:
            return top[len(prefix):].split(".", 1)[0]
    return None


def stale(before: dict, after: dict, old: Catalog | None, new: Catalog) -> dict[str, str]:
    """{agent: why it needs a restart} for every agent of `new` whose setup changed."""
    out: dict[str, str] = {}
    socket_changed = set()
    for rel in sorted(set(before) | set(after)):
        if before.get(rel) == after.get(rel):
            continue
        agent = _agent_of(rel)
        if rel.startswith(SETTINGS + "/"):
            for name in new.agents:
                out.setdefault(name, "the global settings changed")
        elif agent is not None and agent in new.agents:
            if ".socket.d/" in rel:
                socket_changed.add(agent)
            out[agent] = PORTS_CHANGED if agent in socket_changed else "its unit changed"
    if old is not None:
        for a in new.agents.values():
            spec = READ_AT_START.get(a.run.value) if a.run.kind == "builtin" else None
            if spec and spec[1](old) != spec[1](new):
                out.setdefault(a.name, f"it reads {spec[0]} only at start")
    return out


# ------------------------------------------------------------ kept across applies
# An agent left stale by one apply stays stale for the next (`apply`, then `apply
# --restart`) until its process (or, for a port, its socket) has started after the change.
def pending_file() -> str:
    return os.path.join(paths.run_dir(), "stale-agents.json")


def load_pending() -> dict[str, dict]:
    try:
        with open(pending_file()) as f:
            data = json.load(f)
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_pending(pending: dict[str, dict]) -> None:
    path = pending_file()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(pending, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass  # not root: the list is shown now, just not remembered


def still_stale(pending: dict[str, dict], cat: Catalog, props: dict) -> dict[str, dict]:
    """The entries whose agent runs a process (or listens on a socket, for a port change)
    that started before the change. props: systemctl show of their services and sockets
    with ActiveState and ActiveEnterTimestampMonotonic (µs, the clock of time.monotonic)."""
    out = {}
    for name, rec in pending.items():
        a = cat.agents.get(name)
        if a is None:
            continue
        since = float(rec.get("since", 0))
        ports = rec.get("why") == PORTS_CHANGED
        for unit, states in ((a.service, ("active", "activating", "reloading")),
                             (a.socket if ports else None, ("active",))):
            p = props.get(unit, {}) if unit else {}
            entered = int(p.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
            if p.get("ActiveState") in states and entered < since:
                out[name] = rec
                break
    return out
