#!/usr/bin/python3
"""docs/CATALOG.md's key tables, from the catalog loader itself.

    python3 scripts/dev/catalog_doc.py           rewrite the tables in docs/CATALOG.md
    python3 scripts/dev/catalog_doc.py --check   exit 1 if docs/CATALOG.md is stale

The loader (unified_core/catalog.py) is code, not a schema: each section is read by
`_Validator.mapping(value, at, allowed, ..., required)` and each value by
`_Validator.field(d, key, at, converter, default)`. This script runs a recording subclass of
the validator over the shipped catalog and over EXERCISE (a small catalog naming every kind
of section), so the tables' keys, which of them are required, their defaults and what they
allow come from those calls: what is allowed is the converter's own "allowed: ..." text, as
`unified-ctl validate` prints it for a bad value. What a key means is written here (MEANING);
a key the loader accepts without a line in MEANING, or a line for a key it no longer accepts,
stops the script (and tests/unit/test_catalog_doc.py) with the key's name.
"""
from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generated  # noqa: E402  (scripts/dev/generated.py, beside this script)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "CATALOG.md")
CATALOG = os.path.join(ROOT, "etc", "unified", "unified.yaml")
BEGIN = "<!-- catalog-keys:begin (scripts/dev/catalog_doc.py writes this block) -->"
END = "<!-- catalog-keys:end -->"

# Sections in the order of the tables, with a heading each. NAME, VAR, [] stand for names.
SECTIONS = {
    "": "Top level",
    "settings": "settings",
    "settings.limits": "settings.limits",
    "settings.health": "settings.health",
    "settings.supervision": "settings.supervision",
    "settings.features": "settings.features",
    "lazy_loader": "lazy_loader",
    "agents.NAME": "agents.NAME",
    "agents.NAME.resources": "agents.NAME.resources",
    "agents.NAME.run": "agents.NAME.run",
    "agents.NAME.run.simulate": "agents.NAME.run.simulate",
    "agents.NAME.systemd": "agents.NAME.systemd (the allowlist)",
    "profiles.NAME": "profiles.NAME",
    "profiles.NAME.resources": "profiles.NAME.resources",
    "routing": "routing",
    "routing.rules[]": "routing.rules[] (each rule)",
    "routing.failover": "routing.failover",
    "models": "models",
    "models.declared.NAME": "models.declared.NAME",
}

# What the keys of a section allow when their lines do not say it (the loader checks them
# in a loop of its own, not through field()).
KIND = {"agents.NAME.systemd": "a string, number or list (joined with spaces); true/false "
                               "become yes/no; one line"}

# What each key means; for a key the loader reads without a converter (a list, a section),
# "type | meaning" gives its type too. `default:` text overrides a computed default.
MEANING: dict[str, str] = {
    ".version": "`1` | The catalog format.",
    ".settings": "mapping | Machine-wide settings (below).",
    ".lazy_loader": "mapping | How optional agents load and go idle (below).",
    ".routing": "mapping | Hybrid LLM routing, read by ModelManagerSuite (below).",
    ".models": "mapping | Declared models and the VRAM budget (below).",
    ".agents": "mapping NAME: agent | The agents, at least one; NAME is the systemd instance "
               "name (`unified-agent@NAME.service`): a letter, then letters, digits or `_`, at "
               "most 64 characters.",
    ".profiles": "mapping NAME: profile | The profiles, at least one; each becomes "
                 "`unified-profile-NAME.target`.",
    "settings.host": "Host name shown by `health`, the hub and reports.",
    "settings.bind_address": "Address of both ports of every agent; `0.0.0.0` exposes them.",
    "settings.log_level": "Log level of every agent. Override: `LOG_LEVEL`.",
    "settings.debug_mode": "Debug mode of every agent. Override: `DEBUG_MODE`.",
    "settings.profile": "The profile started at boot, until `unified-ctl profile switch` "
                        "selects another (kept in /etc/unified/selected-profile). Must be a "
                        "profile of the catalog. Override: `PROFILE`.",
    "settings.limits": "mapping | Limits of the whole fleet (the slice), unless the profile sets "
                       "its own `resources` (below).",
    "settings.health": "mapping | Health probes (below).",
    "settings.supervision": "mapping | systemd supervision of every agent (below).",
    "settings.features": "mapping | Features every agent reads (below).",
    "settings.other_listeners": "mapping NAME: port | Ports of other programs on this host "
                                "(Prometheus 9090, ...): no agent may take them.",
    "settings.limits.cpu_percent": "CPU of the whole machine for all agents together "
                                   "(the slice's CPUQuota=). Override: `CPU_PERCENT`.",
    "settings.limits.memory_mb": "Memory of all agents together (the slice's MemoryMax=). "
                                 "Override: `MEMORY_MB`.",
    "settings.limits.max_threads": "Worker threads per agent. Override: `MAX_THREADS`.",
    "settings.limits.vram_limit_mb": "VRAM the models may use. Override: `VRAM_LIMIT_MB`.",
    "settings.health.interval": "ServiceRegistry probes an agent's /health at most this often.",
    "settings.health.timeout": "How long a probe waits for the answer.",
    "settings.health.startup_timeout": "The lazy-load SLA: TimeoutStartSec= of every agent.",
    "settings.health.failure_threshold": "removed | Removed (nothing read it): naming it is an "
                                         "error that says to delete the line.",
    "settings.supervision.watchdog": "WatchdogSec=: a hung agent is killed and restarted.",
    "settings.supervision.restart_delay": "RestartSec=.",
    "settings.supervision.stop_timeout": "TimeoutStopSec=.",
    "settings.features.metrics": "Agents export Prometheus metrics. Override: `ENABLE_METRICS`.",
    "settings.features.tracing": "Request tracing. Override: `ENABLE_TRACING`.",
    "settings.features.data_optimizer": "The data optimizer. Override: "
                                        "`ENABLE_DATA_OPTIMIZER`.",
    "lazy_loader.load_timeout": "SLA of a lazy load: first connection to healthy.",
    "lazy_loader.idle_timeout": "Optional agents exit after being idle this long (scale to "
                                "zero); the default of each optional agent's `idle_timeout`.",
    "lazy_loader.slow_load_threshold": "A load slower than this raises SlowAgentLoading.",
    "lazy_loader.max_concurrent_loads": "Loads LazyLoader runs at once.",
    "agents.NAME.group": "Catalog group; profiles name groups.",
    "agents.NAME.port": "The agent's service port (systemd's socket). Unique among all ports "
                        "of the catalog.",
    "agents.NAME.health_port": "The agent's /health and /metrics port. Unique.",
    "agents.NAME.required": "`true`: essential, started with its profile and always running; "
                            "`false`: optional, only its socket listens and the first "
                            "connection starts it.",
    "agents.NAME.depends_on": "list of agent names | Agents it needs: started with it, ordered "
                              "before it, added to every profile that has it. An essential "
                              "agent may depend only on essential ones; no cycles.",
    "agents.NAME.autoload": "Optional agent started eagerly in every profile that has it.",
    "agents.NAME.idle_timeout": "default: lazy_loader.idle_timeout (optional), 0 (essential) | "
                                "Optional agent exits after being idle this long (0: never). "
                                "An essential agent allows only 0.",
    "agents.NAME.task_types": "list of names | Task types it serves (RequestCoordinator "
                              "routes by them); each task type served by one agent.",
    "agents.NAME.run": "`reference` or mapping | What runs (below); default `reference`, "
                       "the SDK's reference agent.",
    "agents.NAME.resources": "mapping | The agent's own limits (below).",
    "agents.NAME.environment": "mapping VAR: value | Environment of the agent: VAR upper-case "
                               "letters, digits and `_`, not starting with `UNIFIED_`, "
                               "`LISTEN_`, `NOTIFY_` or `WATCHDOG_` (set by unified-system and "
                               "systemd); a value is a string, number or boolean. "
                               "`WYOMING_PORT` is a port the agent listens on: checked like "
                               "`port`.",
    "agents.NAME.systemd": "mapping | Extra [Service] directives, from the allowlist (below).",
    "agents.NAME.description": "any string | One line: the unit's Description=.",
    "agents.NAME.resources.memory_mb": "MemoryMax= of the agent.",
    "agents.NAME.resources.cpu_percent": "Percent of the whole machine: CPUQuota= of the "
                                         "agent is this times the number of CPUs.",
    "agents.NAME.resources.vram_mb": "VRAM the agent needs (UNIFIED_VRAM_MB).",
    "agents.NAME.run.reference": "any value | The SDK's reference agent (as `run: reference`).",
    "agents.NAME.run.builtin": "module name | A module of agents/builtin/ "
                               "(`builtin: service_registry`).",
    "agents.NAME.run.entry_point": "`package.module:callable` | An Agent subclass or a function "
                                   "returning an agent instance, importable by "
                                   "/usr/bin/python3 (set PYTHONPATH in `environment`).",
    "agents.NAME.run.command": "list of strings, or one string split at spaces | A program that "
                               "is not a Python agent: argv, starting with an absolute path; "
                               "`{port}`, `{health_port}`, `{backend_port}` and `{name}` are "
                               "replaced. It takes systemd's socket, or binds its own port "
                               "(`backend_port`).",
    "agents.NAME.run.binds_own_port": "A `command` that cannot take a passed socket: "
                                      "systemd-socket-proxyd holds the agent port and forwards "
                                      "to `backend_port`. Implied by `backend_port`.",
    "agents.NAME.run.backend_port": "default: 0 (none) | The loopback port a `command` binds "
                                    "itself (behind the proxy). Unique like `port`.",
    "agents.NAME.run.simulate": "mapping | Simulated load of a reference agent (below); "
                                "only with `reference`.",
    "agents.NAME.run.simulate.load_ms": "Startup delay.",
    "agents.NAME.run.simulate.memory_mb": "Memory held while running.",
    "agents.NAME.run.simulate.vram_mb": "VRAM reported.",
    "agents.NAME.run.simulate.task_ms": "Time each task takes.",
    "agents.NAME.systemd.SupplementaryGroups": "e.g. `systemd-journal` (the hub reads the "
                                               "journal).",
    "agents.NAME.systemd.ReadWritePaths": "Paths the agent may write besides its state "
                                          "directory.",
    "agents.NAME.systemd.ReadOnlyPaths": "Paths made read-only.",
    "agents.NAME.systemd.DeviceAllow": "Devices it may open (a GPU: /dev/nvidia*).",
    "agents.NAME.systemd.PrivateDevices": "`no` to see /dev (with DeviceAllow=).",
    "agents.NAME.systemd.Nice": "CPU priority.",
    "agents.NAME.systemd.OOMScoreAdjust": "Preference of the OOM killer.",
    "agents.NAME.systemd.LimitNOFILE": "Open files.",
    "agents.NAME.systemd.TimeoutStartSec": "Start timeout of this agent (default: "
                                           "settings.health.startup_timeout).",
    "agents.NAME.systemd.TimeoutStopSec": "Stop timeout (default: "
                                          "settings.supervision.stop_timeout).",
    "agents.NAME.systemd.WatchdogSec": "Watchdog (default: settings.supervision.watchdog).",
    "agents.NAME.systemd.RestartSec": "Restart delay (default: "
                                      "settings.supervision.restart_delay).",
    "agents.NAME.systemd.LoadCredential": "A secret as a systemd credential (e.g. the cloud "
                                          "LLM key), not in the environment.",
    "agents.NAME.systemd.SetCredential": "A credential given inline.",
    "agents.NAME.systemd.ProtectProc": "`default` to see the other agents' processes (each "
                                       "agent has its own user namespace).",
    "profiles.NAME.description": "any string | One line: the target's Description=.",
    "profiles.NAME.extends": "profile name | Start from that profile's agents and autoload "
                             "(no cycles).",
    "profiles.NAME.groups": "list of group names | Every agent of these groups.",
    "profiles.NAME.agents": "list of agent names | These agents.",
    "profiles.NAME.all": "Every agent of the catalog.",
    "profiles.NAME.autoload": "list of agent names | Optional agents of the profile started "
                              "eagerly (with the parent's).",
    "profiles.NAME.resources": "mapping | Limits of the fleet in this profile (below); default "
                               "settings.limits.",
    "profiles.NAME.start_timeout": "How long `profile switch` waits for the profile's agents "
                                   "to be healthy.",
    "profiles.NAME.resources.cpu_percent": "The slice's CPUQuota= in this profile.",
    "profiles.NAME.resources.memory_mb": "The slice's MemoryMax= in this profile.",
    "routing.complexity_threshold": "Tasks above this complexity go to the cloud backend.",
    "routing.rules": "list of rules | Per task type: complexity and backend (below).",
    "routing.failover": "mapping | What to do when a backend is unavailable (below).",
    "routing.rules[].tasks": "task type, or a list of them | The task types of the rule.",
    "routing.rules[].complexity": "Their complexity.",
    "routing.rules[].backend": "Where they go.",
    "routing.failover.cloud_unreachable": "The cloud cannot be reached.",
    "routing.failover.vram_exhausted": "No VRAM left for the local model.",
    "models.vram_budget_percentage": "With a GPU, this part of its memory (capped by "
                                     "settings.limits.vram_limit_mb) is the models' budget.",
    "models.idle_timeout": "A loaded model unused this long is unloaded.",
    "models.declared": "mapping NAME: model | The models ModelManagerSuite may load (below).",
    "models.declared.NAME.backend": "How it is served.",
    "models.declared.NAME.vram_mb": "VRAM it takes.",
    "models.declared.NAME.endpoint": "URL of an `openai` backend (`http://127.0.0.1:8080/v1`).",
    "models.declared.NAME.path": "File of an `inprocess` model.",
    "models.declared.NAME.role": "Which routing choice it serves.",
}

# A small catalog naming every kind of section the loader reads, so that every field()
# call happens (sections absent from the shipped catalog: run.simulate, command agents, ...).
EXERCISE: dict[str, Any] = {
    "version": 1,
    "settings": {"profile": "p", "other_listeners": {"prometheus": 9090}},
    "routing": {"rules": [{"tasks": ["chat"], "complexity": 0.5, "backend": "local"}]},
    "models": {"declared": {"m": {"backend": "openai", "vram_mb": 1}}},
    "agents": {
        "A": {"group": "g", "port": 7001, "health_port": 8001, "required": True,
              "run": {"reference": True, "simulate": {}}, "resources": {}, "systemd": {}},
        "B": {"group": "g", "port": 7002, "health_port": 8002, "required": False,
              "run": {"command": ["/bin/true"], "backend_port": 7003}},
    },
    "profiles": {"p": {"all": True, "resources": {"cpu_percent": 50, "memory_mb": 512}}},
}


def _pattern(at: tuple) -> str:
    """("agents", "TutorAgent", "run") -> "agents.NAME.run"; list indexes -> "[]"."""
    parts: list[str] = []
    for i, p in enumerate(at):
        if isinstance(p, int):
            parts[-1] += "[]"
            continue
        named = (i == 1 and at[0] in ("agents", "profiles")) or \
            (i == 2 and at[:2] in (("models", "declared"), ("settings", "other_listeners")))
        parts.append("NAME" if named else str(p))
    return ".".join(parts)


class _Bad:
    """A value every converter refuses, so that it says what it allows."""

    def __str__(self) -> str:
        return "<bad>"


def _allowed(conv) -> str:
    if conv is str:
        return "any string"
    try:
        conv(_Bad())
    except ValueError as e:
        return str(e).split("; allowed: ", 1)[-1]
    return "any value"


def _default(value: Any, conv) -> str:
    from unified_core import types as t

    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if conv is t.duration:
        return f"{value:g}s"
    return str(value)


def record() -> tuple[dict[str, dict], dict[str, tuple]]:
    """Run the loader over the shipped catalog and EXERCISE. → (sections: pattern ->
    {allowed, required}, fields: "pattern.key" -> (converter, default))."""
    sys.path.insert(0, ROOT)
    from unified_core import catalog
    from unified_core.catalog import load_merged

    sections: dict[str, dict] = {}
    fields: dict[str, tuple] = {}

    class Recorder(catalog._Validator):
        def mapping(self, value, at, allowed, what, required=()):
            sections.setdefault(_pattern(at), {"allowed": tuple(allowed), "required": set()})[
                "required"].update(required)
            return super().mapping(value, at, allowed, what, required)

        def field(self, d, key, at, conv, default):
            fields.setdefault(f"{_pattern(at)}.{key}" if at else f".{key}", (conv, default))
            return super().field(d, key, at, conv, default)

    data, marks, sources = load_merged(CATALOG, dropins=False)
    for doc, m in ((data, marks), (EXERCISE, {})):
        v = Recorder(CATALOG, m)
        v.catalog(doc, tuple(sources), {})
        if v.problems:
            raise SystemExit("catalog_doc: the loader refused a catalog:\n" +
                             "\n".join(map(str, v.problems)))
    return sections, fields


def tables() -> str:
    """The Markdown block: one table per section."""
    sections, fields = record()
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"catalog_doc: the loader reads sections {unknown} that SECTIONS lacks")
    keys = {f"{s}.{k}" if s else f".{k}" for s, v in sections.items() for k in v["allowed"]}
    keys |= {k for k in fields if not k.startswith("settings.other_listeners.")}
    missing = sorted(keys - set(MEANING))
    extra = sorted(set(MEANING) - keys)
    if missing or extra:
        raise SystemExit("catalog_doc: MEANING is out of step with the loader: "
                         f"undocumented keys {missing}, documented keys it does not accept {extra}")
    out: list[str] = []
    for sec, title in SECTIONS.items():
        info = sections[sec]
        out += [f"### {title}", "", "| key | allowed | default | meaning |", "| --- | --- | --- | --- |"]
        for k in info["allowed"]:
            full = f"{sec}.{k}" if sec else f".{k}"
            text = MEANING[full]
            head, _, meaning = text.rpartition(" | ")
            conv, default = fields.get(full, (None, None))
            if head.startswith("default: "):
                dflt, allowed = head[len("default: "):], _allowed(conv)
            elif conv is not None:
                allowed, dflt = head or _allowed(conv), _default(default, conv)
            else:
                allowed, dflt = head or KIND[sec], "—"
            if k in info["required"]:
                dflt = "required"
            out.append(f"| `{k}` | {_cell(allowed)} | {_cell(dflt)} | {_cell(meaning)} |")
        out.append("")
    out += overrides_table()
    return "\n".join(out)


def overrides_table() -> list[str]:
    """The runbook's environment variables that a launch turns into overrides."""
    from unified_core.catalog import ENV_OVERRIDES

    out = ["### Overrides (environment of a launch)", "",
           "| variable | setting | allowed |", "| --- | --- | --- |",
           "| `PROFILE` | `settings.profile` | a profile of the catalog |"]
    for var, (path, conv) in ENV_OVERRIDES.items():
        out.append(f"| `{var}` | `settings.{'.'.join(path)}` | {_cell(_allowed(conv))} |")
    return out + [""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(doc: str, block: str) -> str:
    return generated.splice(doc, block, BEGIN, END, DOC)


def main(argv: list[str]) -> int:
    with open(DOC) as f:
        current = f.read()
    ok = generated.update(DOC, render(current, tables()), "--check" in argv,
                          "python3 scripts/dev/catalog_doc.py")
    return 0 if ok or "--check" not in argv else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
