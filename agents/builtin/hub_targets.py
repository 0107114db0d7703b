"""Prometheus file_sd targets: the health ports Prometheus should scrape (job unified_agents).

Which agents: every agent whose process runs (active, starting, stopping) plus every
essential agent of the selected profile even when it is down: an essential agent that
crashed must show as `up{job="unified_agents", required="true"} == 0` (the runbook's query
and the EssentialAgentDown rule), not vanish from Prometheus. Dormant optional agents are
left out: their health port is not bound, so they would only show as down. Scraping a
health port never starts an agent (only the agent port is socket-activated).

Labels: agent, required ("true"/"false"), group: facts of the agent that do not change with
the profile. Not the profile: a target label is part of every series' identity, so each
profile switch would end every agent's series and start new ones (broken rate()s, doubled
series counts); the hub exports the selected profile as unified_profile_info{profile} 1.

The file is replaced atomically (Prometheus re-reads it on change) and only when its content
changes. Default place: /var/lib/unified-prometheus/targets.json, a directory that
`unified-ctl monitoring setup` creates (owned by `unified`, world-readable: Prometheus runs
as `prometheus` with PrivateUsers=, so it reads as "other"); the hub's unit gets it writable
with ReadWritePaths=. When the directory does not exist (Prometheus not set up) nothing is
written and that is not an error.
"""
from __future__ import annotations

import json
import os

DEFAULT_PATH = "/var/lib/unified-prometheus/targets.json"
RUNNING = ("active", "starting", "stopping")


def target_groups(cat, members, units: dict, host: str) -> list[dict]:
    """The file_sd document: one group per agent (each has its own labels)."""
    members = set(members)
    h = f"[{host}]" if ":" in host else host
    out = []
    for a in cat.agents.values():
        u = units.get(a.name)
        running = u is not None and u.state in RUNNING
        if not (running or (a.required and a.name in members)):
            continue
        out.append({"targets": [f"{h}:{a.health_port}"],
                    "labels": {"agent": a.name, "required": "true" if a.required else "false",
                               "group": a.group}})
    return out


class TargetsWriter:
    def __init__(self, path: str = DEFAULT_PATH, log=None):
        self.path = path
        self.log = log
        self.last_text: str | None = None
        self.writes = 0
        self.targets = 0
        self.error = ""
        self.note = ""

    def write(self, groups: list[dict]) -> bool:
        """Write when changed. → True when the file was (re)written."""
        text = json.dumps(groups, indent=1, sort_keys=True) + "\n"
        self.targets = len(groups)
        if text == self.last_text:
            return False
        d = os.path.dirname(self.path) or "."
        if not os.path.isdir(d):
            self.note = (f"{d} does not exist: Prometheus is not set up here "
                         "(unified-ctl monitoring setup creates it)")
            self.error = ""
            return False
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o644)   # Prometheus reads it as "other" (PrivateUsers=yes)
            os.replace(tmp, self.path)
        except OSError as e:
            msg = f"cannot write {self.path}: {e.strerror or e}"
            if self.log and msg != self.error:
                self.log.warning("file_sd targets not written", path=self.path,
                                 error=e.strerror or str(e))
            self.error = msg
            return False
        self.last_text = text
        self.writes += 1
        self.error = self.note = ""
        return True

    def status(self) -> dict:
        return {"ok": not self.error, "path": self.path, "targets": self.targets,
                "writes": self.writes, "error": self.error or None, "note": self.note or None}
