"""Load, merge and validate the catalog (/etc/unified/unified.yaml + conf.d/*.yaml).

Every problem is collected (not just the first) and located by file, line and field; the
message names the bad value and what is allowed. The runbook's environment variables
override the file only where a caller passes them (env=): a launch validates them this way
(runtime.py); everything else reads the file alone, whatever the shell holds.
"""
from __future__ import annotations

import difflib
import os
from typing import Any, Callable, Mapping

from . import catalog_cache, known_ports
from . import model as m
from . import types as t
from .errors import CatalogInvalid, Problem
from .types import _show  # a bad value as the error messages show it (one definition)
from .yamlsrc import Path, dotted, dropin_paths, load_file, merge

DEFAULT_PATH = "/etc/unified/unified.yaml"
SUPPORTED_VERSIONS = (1,)

# Runbook environment variables → (settings path, converter).
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "LOG_LEVEL": (("log_level",), t.log_level),
    "DEBUG_MODE": (("debug_mode",), t.boolean),
    "CPU_PERCENT": (("limits", "cpu_percent"), t.percent),
    "MEMORY_MB": (("limits", "memory_mb"), t.positive_int),
    "MAX_THREADS": (("limits", "max_threads"), lambda v: t.integer(v, 1, 1024)),
    "VRAM_LIMIT_MB": (("limits", "vram_limit_mb"), t.non_negative_int),
    "ENABLE_METRICS": (("features", "metrics"), t.boolean),
    "ENABLE_TRACING": (("features", "tracing"), t.boolean),
    "ENABLE_DATA_OPTIMIZER": (("features", "data_optimizer"), t.boolean),
}


def catalog_path(explicit: str | None = None) -> str:
    """FILE argument, else the installed catalog. ($CONFIG is `profile switch`'s alone: the
    staged rollout, rollout.py.)"""
    from . import paths

    return explicit or paths.catalog_file()


def load_catalog(path: str | None = None, env: Mapping[str, str] | None = None,
                 dropins: bool = True, store_cache: bool = False) -> m.Catalog:
    """Load and validate; raise CatalogInvalid listing every problem. env: runbook variables
    overriding settings (none by default: the caller's environment is not read).
    store_cache: keep the parsed document for the agents' starts (the generator's load:
    catalog_cache.py); only a document that validated is kept."""
    env = {} if env is None else env
    path = catalog_path(path)
    key, cached, (data, marks, sources) = _document(path, dropins)
    blob = catalog_cache.pack(key, data, marks, sources) \
        if store_cache and not cached and key is not None else None
    v = _Validator(path, marks)
    catalog = v.catalog(data, tuple(sources), env)
    if v.problems:
        raise CatalogInvalid(v.problems)
    if blob is not None:
        catalog_cache.write(blob)
    return catalog


def load_merged(path: str | None = None, dropins: bool = True) -> tuple[Any, dict, list[str]]:
    """The catalog document as the loader validates it: the file with its drop-ins
    (conf.d/*.yaml, name order) merged in, before validation. Returns (data, marks: where
    each value came from, the files read); CatalogInvalid when a file cannot be read or parsed.
    `unified-ctl config show` prints it."""
    return _document(catalog_path(path), dropins)[2]


def _document(path: str, dropins: bool) -> tuple[tuple | None, bool, tuple[Any, dict, list[str]]]:
    """(cache key, whether the cache had it, the document): the generator's parse while the
    files are unchanged (catalog_cache.py), else the files parsed now."""
    key = catalog_cache.key(path) if dropins else None
    hit = catalog_cache.load(key) if key is not None else None
    return key, hit is not None, hit or _parse_merged(path, dropins, key)


def _parse_merged(path: str, dropins: bool, read: tuple | None = None) -> tuple[Any, dict, list[str]]:
    """read: catalog_cache.key's files and bytes, parsed as they are (never read twice);
    None: read the files here."""
    files = dict(read[1:]) if read is not None else {}
    problems: list[Problem] = []
    data, marks = load_file(path, problems, files.get(path))
    sources = [path]
    if data is None and not problems:
        problems.append(Problem(path, None, "", "the catalog is empty; allowed: a mapping with "
                                "'version', 'settings', 'agents' and 'profiles'"))
    elif data is not None and not isinstance(data, dict):
        problems.append(Problem(path, marks.get((), (path, None))[1], "",
                                f"{_show(data)} is not a mapping; allowed: a mapping with "
                                "'version', 'settings', 'agents' and 'profiles'"))
    if dropins and not problems:
        dpaths = list(files)[1:] if read is not None else \
            dropin_paths(os.path.join(os.path.dirname(os.path.abspath(path)), "conf.d"))
        for dpath in dpaths:
            ddata, dmarks = load_file(dpath, problems, files.get(dpath))
            sources.append(dpath)
            if ddata is None:
                continue
            if not isinstance(ddata, dict):
                problems.append(Problem(dpath, 1, "", "a drop-in must be a mapping of catalog sections"))
                continue
            data = merge(data, ddata, marks, dmarks)
    if problems:
        raise CatalogInvalid(problems)
    return data, marks, sources


# Environment variables naming a port an agent listens on besides its own two (the speech
# agents' Wyoming server, docs/SPEECH.md): `validate` checks them like port/health_port, and
# `profile switch` asks whether they are free like them (unified_ctl/ports.py).
LISTEN_ENV = ("WYOMING_PORT",)


def env_listen_ports(a: m.Agent) -> list[tuple[str, int]]:
    """(variable, port) of the LISTEN_ENV settings of a valid agent."""
    return [(var, int(value)) for var, value in a.environment
            if var in LISTEN_ENV and value.strip()]


class _Validator:
    def __init__(self, path: str, marks: dict):
        self.path = path
        self.marks = marks
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # valid but risky: `validate` prints them

    # -- reporting -------------------------------------------------------------------
    def mark(self, at: Path) -> tuple[str, int | None]:
        """(file, line) of the value at `at`, or of its nearest located parent."""
        for i in range(len(at), -1, -1):
            if at[:i] in self.marks:
                return self.marks[at[:i]]
        return self.path, None

    def err(self, at: Path, message: str) -> None:
        src, line = self.mark(at)
        self.problems.append(Problem(src, line, dotted(at), message))

    def warn(self, at: Path, message: str) -> None:
        src, line = self.mark(at)
        self.warnings.append(Problem(src, line, dotted(at), message))

    def env_err(self, var: str, message: str) -> None:
        self.problems.append(Problem("environment", None, var, message))

    # -- generic helpers -------------------------------------------------------------
    def mapping(self, value: Any, at: Path, allowed: tuple[str, ...], what: str,
                required: tuple[str, ...] = ()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.err(at, f"{_show(value)} is not a mapping; allowed: a mapping of {what} "
                         f"with keys {', '.join(allowed)}")
            return {}
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.err(at + (key,), f"unknown key {key!r}{hint}; allowed in {what}: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                self.err(at, f"missing required key {key!r} in {what}")
            elif value[key] is None:
                self.err(at + (key,), f"required key {key!r} in {what} has no value")
        return value

    def field(self, d: dict, key: str, at: Path, conv: Callable[[Any], Any], default: Any) -> Any:
        if key not in d or (d[key] is None and default is not None):
            return default
        try:
            return conv(d[key])
        except ValueError as e:
            self.err(at + (key,), str(e))
            return default

    def name_list(self, value: Any, at: Path, conv: Callable[[Any], Any], what: str) -> tuple:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.err(at, f"{_show(value)} is not a list; allowed: a list of {what}")
            return ()
        out = []
        for i, item in enumerate(value):
            try:
                item = conv(item)
            except ValueError as e:
                self.err(at + (i,), str(e))
                continue
            if item in out:
                self.err(at + (i,), f"{item!r} is listed twice; allowed: each {what[:-1]} once")
                continue
            out.append(item)
        return tuple(out)

    # -- sections --------------------------------------------------------------------
    def catalog(self, data: Any, sources: tuple[str, ...], env: Mapping[str, str]) -> m.Catalog:
        top = self.mapping(data, (), ("version", "settings", "lazy_loader", "routing", "models",
                                      "agents", "profiles"), "the catalog",
                           required=("version", "agents", "profiles"))
        if "version" in top and (isinstance(top["version"], bool) or top["version"] not in SUPPORTED_VERSIONS):
            self.err(("version",), f"{_show(top['version'])} is not a supported catalog version; "
                                   f"allowed: {', '.join(map(str, SUPPORTED_VERSIONS))}")
        lazy = self.lazy_loader(top.get("lazy_loader"), ("lazy_loader",))
        settings = self.settings(top.get("settings"), ("settings",))
        settings = self.env_overrides(settings, env)
        agents = self.agents(top.get("agents"), ("agents",), lazy)
        self.ports(agents, settings)
        self.dependencies(agents)
        self.task_types(agents)
        # without any readable agent, every profile member would be reported as unknown: noise
        profiles = self.profiles(top.get("profiles"), ("profiles",), agents) if agents else {}
        selected = settings.profile
        if profiles and selected not in profiles:
            self.err(("settings", "profile"), f"{selected!r} is not a profile of this catalog; "
                                             f"allowed: {', '.join(profiles)}")
        if "PROFILE" in env:
            if env["PROFILE"] in profiles:
                selected = env["PROFILE"]
            else:
                self.env_err("PROFILE", f"{env['PROFILE']!r} is not a profile; allowed: {', '.join(profiles)}")
        return m.Catalog(
            path=self.path, sources=sources, settings=settings, agents=agents, profiles=profiles,
            lazy_loader=lazy, routing=self.routing(top.get("routing"), ("routing",)),
            models=self.models(top.get("models"), ("models",)), selected_profile=selected,
            warnings=tuple(self.warnings))

    def settings(self, raw: Any, at: Path) -> m.Settings:
        d = self.mapping(raw, at, ("host", "bind_address", "log_level", "debug_mode", "profile", "limits",
                                   "health", "supervision", "features", "other_listeners"), "settings")
        lim = self.mapping(d.get("limits"), at + ("limits",),
                           ("cpu_percent", "memory_mb", "max_threads", "vram_limit_mb"), "settings.limits")
        la = at + ("limits",)
        limits = m.Limits(
            cpu_percent=self.field(lim, "cpu_percent", la, t.percent, 80),
            memory_mb=self.field(lim, "memory_mb", la, t.positive_int, 4096),
            max_threads=self.field(lim, "max_threads", la, lambda v: t.integer(v, 1, 1024), 8),
            vram_limit_mb=self.field(lim, "vram_limit_mb", la, t.non_negative_int, 4000))
        h = self.mapping(d.get("health"), at + ("health",),
                         ("interval", "timeout", "startup_timeout", "failure_threshold"), "settings.health")
        ha = at + ("health",)
        if "failure_threshold" in h:
            # Removed: nothing ever read it (an agent's health is its probe's answer, and
            # systemd's watchdog/Restart= handle a dead one). Named, so an old catalog says why.
            self.err(ha + ("failure_threshold",), "settings.health.failure_threshold was removed "
                     "(nothing used it: health is each probe's answer); delete this line")
        health = m.Health(
            interval_s=self.field(h, "interval", ha, t.duration, 5.0),
            timeout_s=self.field(h, "timeout", ha, t.duration, 2.0),
            startup_timeout_s=self.field(h, "startup_timeout", ha, t.duration, 30.0))
        s = self.mapping(d.get("supervision"), at + ("supervision",),
                         ("watchdog", "restart_delay", "stop_timeout"), "settings.supervision")
        sa = at + ("supervision",)
        supervision = m.Supervision(
            watchdog_s=self.field(s, "watchdog", sa, t.duration, 30.0),
            restart_delay_s=self.field(s, "restart_delay", sa, t.duration, 1.0),
            stop_timeout_s=self.field(s, "stop_timeout", sa, t.duration, 15.0))
        f = self.mapping(d.get("features"), at + ("features",), ("metrics", "tracing", "data_optimizer"),
                         "settings.features")
        fa = at + ("features",)
        features = m.Features(metrics=self.field(f, "metrics", fa, t.boolean, True),
                              tracing=self.field(f, "tracing", fa, t.boolean, False),
                              data_optimizer=self.field(f, "data_optimizer", fa, t.boolean, False))
        listeners = []
        ol = d.get("other_listeners") or {}
        if not isinstance(ol, dict):
            self.err(at + ("other_listeners",), f"{_show(ol)} is not a mapping; allowed: name: port")
            ol = {}
        for name, port in ol.items():
            p = self.field(ol, name, at + ("other_listeners",), t.port, None)
            if p is not None:
                listeners.append((str(name), p))
        return m.Settings(
            host=self.field(d, "host", at, t.string, "mainpc"),
            bind_address=self.field(d, "bind_address", at, t.bind_address, "127.0.0.1"),
            log_level=self.field(d, "log_level", at, t.log_level, "INFO"),
            debug_mode=self.field(d, "debug_mode", at, t.boolean, False),
            profile=self.field(d, "profile", at, t.identifier, "core"),
            limits=limits, health=health, supervision=supervision, features=features,
            other_listeners=tuple(listeners))

    def env_overrides(self, s: m.Settings, env: Mapping[str, str]) -> m.Settings:
        from dataclasses import replace

        for var, (path, conv) in ENV_OVERRIDES.items():
            if var not in env:
                continue
            try:
                value = conv(env[var])
            except ValueError as e:
                self.env_err(var, str(e))
                continue
            if len(path) == 1:
                s = replace(s, **{path[0]: value})
            else:
                s = replace(s, **{path[0]: replace(getattr(s, path[0]), **{path[1]: value})})
        return s

    def lazy_loader(self, raw: Any, at: Path) -> m.LazyLoader:
        d = self.mapping(raw, at, ("load_timeout", "idle_timeout", "slow_load_threshold",
                                   "max_concurrent_loads"), "lazy_loader")
        return m.LazyLoader(
            load_timeout_s=self.field(d, "load_timeout", at, t.duration, 30.0),
            idle_timeout_s=self.field(d, "idle_timeout", at, t.duration, 300.0),
            slow_load_threshold_s=self.field(d, "slow_load_threshold", at, t.duration, 10.0),
            max_concurrent_loads=self.field(d, "max_concurrent_loads", at, t.positive_int, 4))

    # -- agents ----------------------------------------------------------------------
    AGENT_KEYS = ("group", "port", "health_port", "required", "depends_on", "autoload", "idle_timeout",
                  "task_types", "run", "resources", "environment", "systemd", "description")

    # Extra [Service] directives an agent may need (the hub reads the journal, a GPU agent
    # opens /dev/nvidia*). A short allowlist: sandboxing and supervision stay uniform.
    SYSTEMD_KEYS = ("SupplementaryGroups", "ReadWritePaths", "ReadOnlyPaths", "DeviceAllow",
                    "PrivateDevices", "Nice", "OOMScoreAdjust", "LimitNOFILE", "TimeoutStartSec",
                    "TimeoutStopSec", "WatchdogSec", "RestartSec",
                    # secrets (e.g. the cloud LLM key) as systemd credentials, not environment
                    "LoadCredential", "SetCredential",
                    # the hub reads other agents' /proc (PrivateUsers= puts each agent in its
                    # own user namespace, which ProtectProc=invisible then hides: measured)
                    "ProtectProc")

    def agents(self, raw: Any, at: Path, lazy: m.LazyLoader) -> dict[str, m.Agent]:
        if not isinstance(raw, dict) or not raw:
            self.err(at, f"{_show(raw)} is not a mapping of agents; allowed: a mapping NAME: {{group, "
                         "port, health_port, required, ...} with at least one agent")
            return {}
        out = {}
        for name, spec in raw.items():
            aat = at + (name,)
            try:
                t.agent_name(name)
            except ValueError as e:
                self.err(aat, str(e))
                continue
            agent = self.agent(name, spec, aat, lazy)
            if agent is not None:
                out[name] = agent
        return out

    def agent(self, name: str, spec: Any, at: Path, lazy: m.LazyLoader) -> m.Agent | None:
        if not isinstance(spec, dict):
            self.err(at, f"{_show(spec)} is not a mapping; allowed: a mapping with keys "
                         f"{', '.join(self.AGENT_KEYS)}")
            return None
        d = self.mapping(spec, at, self.AGENT_KEYS, f"agent {name}",
                         required=("group", "port", "health_port", "required"))
        required = self.field(d, "required", at, t.boolean, False)
        idle = self.field(d, "idle_timeout", at, t.duration, None)
        if required and idle:
            self.err(at + ("idle_timeout",), f"{idle:g}s is not allowed for an essential agent "
                                             "(required: true); allowed: 0 or omit it")
        if idle is None:
            idle = 0.0 if required else lazy.idle_timeout_s
        res = self.mapping(d.get("resources"), at + ("resources",), ("memory_mb", "cpu_percent", "vram_mb"),
                           f"agent {name}.resources")
        ra = at + ("resources",)
        env = self.environment(d.get("environment"), at + ("environment",))
        return m.Agent(
            name=name,
            group=self.field(d, "group", at, t.identifier, "ungrouped"),
            port=self.field(d, "port", at, t.port, 0),
            health_port=self.field(d, "health_port", at, t.port, 0),
            required=required,
            depends_on=self.name_list(d.get("depends_on"), at + ("depends_on",), t.agent_name, "agent names"),
            autoload=self.field(d, "autoload", at, t.boolean, False),
            idle_timeout_s=idle,
            task_types=self.name_list(d.get("task_types"), at + ("task_types",), t.identifier, "task types"),
            run=self.run(d.get("run", "reference"), at + ("run",)),
            resources=m.Resources(memory_mb=self.field(res, "memory_mb", ra, t.positive_int, 256),
                                  cpu_percent=self.field(res, "cpu_percent", ra, t.percent, 25),
                                  vram_mb=self.field(res, "vram_mb", ra, t.non_negative_int, 0)),
            environment=env,
            systemd=self.systemd_directives(d.get("systemd"), at + ("systemd",), name),
            description=self.field(d, "description", at, str, ""))

    def systemd_directives(self, raw: Any, at: Path, name: str) -> tuple[tuple[str, str], ...]:
        d = self.mapping(raw, at, self.SYSTEMD_KEYS, f"agent {name}.systemd")
        out = []
        for k, v in d.items():
            if k not in self.SYSTEMD_KEYS:
                continue
            if isinstance(v, bool):
                v = "yes" if v else "no"
            if isinstance(v, list) and all(isinstance(x, (str, int)) for x in v):
                v = " ".join(str(x) for x in v)
            if not isinstance(v, (str, int)) or "\n" in str(v) or not str(v).strip():
                self.err(at + (k,), f"{_show(v)} is not a directive value; allowed: a string, number or list")
                continue
            out.append((k, str(v)))
        return tuple(out)

    def environment(self, raw: Any, at: Path) -> tuple[tuple[str, str], ...]:
        import re

        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.err(at, f"{_show(raw)} is not a mapping; allowed: VARIABLE: value")
            return ()
        out = []
        for k, v in raw.items():
            if not isinstance(k, str) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", k):
                self.err(at + (k,), f"{_show(k)} is not an environment variable name; allowed: "
                                    "upper-case letters, digits and '_'")
            elif k.startswith(("UNIFIED_", "LISTEN_", "NOTIFY_", "WATCHDOG_")):
                self.err(at + (k,), f"{k!r} is set by unified-system/systemd; allowed: other names")
            elif isinstance(v, (dict, list)) or v is None:
                self.err(at + (k,), f"{_show(v)} is not a scalar; allowed: a string, number or boolean")
            else:
                out.append((k, str(v).lower() if isinstance(v, bool) else str(v)))
        return tuple(out)

    RUN_KINDS = ("reference", "builtin", "entry_point", "command")

    def run(self, raw: Any, at: Path) -> m.Run:
        import re

        if raw == "reference":
            return m.Run("reference")
        if not isinstance(raw, dict):
            self.err(at, f"{_show(raw)} is not a run spec; allowed: 'reference', or a mapping with one of "
                         "builtin: MODULE, entry_point: 'pkg.mod:callable', command: [ARGV...]")
            return m.Run("reference")
        d = self.mapping(raw, at, ("reference", "builtin", "entry_point", "command", "binds_own_port",
                                   "backend_port", "simulate"), "run")
        kinds = [k for k in self.RUN_KINDS if k in d]
        if len(kinds) != 1:
            self.err(at, f"names {len(kinds)} ways to run ({', '.join(kinds) or 'none'}); allowed: exactly "
                         f"one of {', '.join(self.RUN_KINDS)}")
            return m.Run("reference")
        kind = kinds[0]
        sim = self.mapping(d.get("simulate"), at + ("simulate",), ("load_ms", "memory_mb", "vram_mb", "task_ms"),
                           "run.simulate")
        sa = at + ("simulate",)
        simulate = m.Simulate(**{k: self.field(sim, k, sa, t.non_negative_int, 0)
                                 for k in ("load_ms", "memory_mb", "vram_mb", "task_ms")})
        if "simulate" in d and kind != "reference":
            self.err(sa, f"simulate applies to the reference agent only; this agent runs {kind}")
        backend = self.field(d, "backend_port", at, t.port, 0)
        binds = self.field(d, "binds_own_port", at, t.boolean, False) or bool(backend)
        if binds and kind != "command":
            self.err(at + ("binds_own_port" if "binds_own_port" in d else "backend_port",),
                     "applies to command agents only")
        elif binds and not backend and "backend_port" not in d:
            self.err(at, "binds_own_port needs backend_port: the port the command binds (the agent port stays "
                         "with systemd's socket, proxied to it); allowed: a port 1024-65535")
        value = d[kind]
        if kind == "reference":
            return m.Run("reference", simulate=simulate)
        if kind == "builtin":
            try:
                return m.Run("builtin", value=t.identifier(value))
            except ValueError as e:
                self.err(at + ("builtin",), str(e))
        elif kind == "entry_point":
            if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
                return m.Run("entry_point", value=value)
            self.err(at + ("entry_point",), f"{_show(value)} is not an entry point; allowed: 'package.module:callable'")
        else:
            if isinstance(value, str):
                value = value.split()
            if (isinstance(value, list) and value and all(isinstance(a, str) and a for a in value)
                    and value[0].startswith("/")):
                return m.Run("command", argv=tuple(value), binds_own_port=binds, backend_port=backend)
            self.err(at + ("command",), f"{_show(value)} is not a command; allowed: a list of strings starting "
                                        "with an absolute path, e.g. ['/usr/bin/server', '--port', '{port}']")
        return m.Run("reference")

    def ports(self, agents: dict[str, m.Agent], settings: m.Settings) -> None:
        owners: dict[int, str] = {}  # port -> who holds it
        for lname, port in settings.other_listeners:
            owners[port] = f"other listener {lname!r} (settings.other_listeners)"
        for a in agents.values():
            for key, p, at in self._listens(a):
                src, line = self.mark(at)
                who = f"{a.name}.{key} ({src}:{line})"
                if p in owners:
                    self.err(at, f"port {p} is already used by {owners[p]}; allowed: a "
                                 "port no other agent or listener uses")
                    continue
                owners[p] = who
                software = known_ports.owner(p)
                if software:
                    self.warn(at, f"{a.name} is on port {p}, where {software} listens by default: "
                                  "once that is installed one of them cannot bind; move the agent "
                                  "to a free port")

    def _listens(self, a: m.Agent):
        """(key, port, catalog path) of every port the agent listens on."""
        for key in ("port", "health_port", "backend_port"):
            p = a.run.backend_port if key == "backend_port" else getattr(a, key)
            if p:
                yield key, p, (("agents", a.name, "run", key) if key == "backend_port"
                               else ("agents", a.name, key))
        for var, value in a.environment:
            if var in LISTEN_ENV and value.strip():
                at = ("agents", a.name, "environment", var)
                try:
                    yield var, t.port(value.strip()), at
                except ValueError as e:
                    self.err(at, str(e))

    def dependencies(self, agents: dict[str, m.Agent]) -> None:
        for a in agents.values():
            for i, dep in enumerate(a.depends_on):
                at = ("agents", a.name, "depends_on", i)
                if dep == a.name:
                    self.err(at, f"{a.name} depends on itself; allowed: other agents")
                elif dep not in agents:
                    close = difflib.get_close_matches(dep, list(agents), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.err(at, f"unknown agent {dep!r}{hint}; allowed: an agent of this catalog")
                elif a.required and not agents[dep].required:
                    self.err(at, f"essential agent {a.name} depends on optional agent {dep}; allowed: "
                                 f"essential agents depend only on essential ones (make {dep} required: true)")
        cycle = find_cycle({n: [d for d in a.depends_on if d in agents and d != n] for n, a in agents.items()})
        if cycle:
            self.err(("agents", cycle[0], "depends_on"),
                     f"dependency cycle: {' -> '.join(cycle)}; allowed: dependencies without cycles")

    def task_types(self, agents: dict[str, m.Agent]) -> None:
        seen: dict[str, str] = {}
        for a in agents.values():
            for i, tt in enumerate(a.task_types):
                if tt in seen:
                    self.err(("agents", a.name, "task_types", i),
                             f"task type {tt!r} is already served by {seen[tt]}; allowed: each task type "
                             "served by one agent (RequestCoordinator routes by it)")
                else:
                    seen[tt] = a.name

    # -- profiles --------------------------------------------------------------------
    PROFILE_KEYS = ("description", "extends", "groups", "agents", "all", "autoload", "resources", "start_timeout")

    def profiles(self, raw: Any, at: Path, agents: dict[str, m.Agent]) -> dict[str, m.Profile]:
        if not isinstance(raw, dict) or not raw:
            self.err(at, f"{_show(raw)} is not a mapping of profiles; allowed: NAME: {{groups, agents, ...}}")
            return {}
        specs = {}
        for name, spec in raw.items():
            try:
                t.identifier(name)
            except ValueError as e:
                self.err(at + (name,), str(e))
                continue
            specs[name] = self.mapping(spec, at + (name,), self.PROFILE_KEYS, f"profile {name}")
        groups: dict[str, list[str]] = {}
        for a in agents.values():
            groups.setdefault(a.group, []).append(a.name)
        parents = {n: s.get("extends") for n, s in specs.items()}
        for n, p in parents.items():
            if p is not None and (not isinstance(p, str) or p not in specs):
                self.err(at + (n, "extends"), f"unknown profile {_show(p)}; allowed: {', '.join(specs)}")
                parents[n] = None
        cycle = find_cycle({n: [p] if p else [] for n, p in parents.items()})
        if cycle:
            self.err(at + (cycle[0], "extends"), f"profile cycle: {' -> '.join(cycle)}")
            return {}
        declared: dict[str, set[str]] = {}

        def members(n: str) -> set[str]:
            if n in declared:
                return declared[n]
            s, pat = specs[n], at + (n,)
            parent = parents[n]
            out = set(members(parent)) if parent else set()
            if self.field(s, "all", pat, t.boolean, False):
                out |= set(agents)
            for i, g in enumerate(self.name_list(s.get("groups"), pat + ("groups",), str, "groups")):
                if g in groups:
                    out |= set(groups[g])
                else:
                    close = difflib.get_close_matches(g, list(groups), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.err(pat + ("groups", i), f"unknown group {g!r}{hint}; allowed: {', '.join(groups)}")
            for i, a in enumerate(self.name_list(s.get("agents"), pat + ("agents",), str, "agents")):
                if a in agents:
                    out.add(a)
                else:
                    self.err(pat + ("agents", i), _unknown_agent(a, agents))
            declared[n] = out
            return out

        out: dict[str, m.Profile] = {}
        order = list(agents)
        for n, s in specs.items():
            pat = at + (n,)
            decl = members(n)
            closed = dependency_closure(decl, agents)
            auto = set(self.name_list(s.get("autoload"), pat + ("autoload",), str, "agents"))
            parent = parents[n]
            if parent:
                auto |= set(out[parent].autoload) if parent in out else set()
            for i, a in enumerate(s["autoload"] if isinstance(s.get("autoload"), list) else []):
                if not isinstance(a, str):
                    continue
                if a not in agents:
                    self.err(pat + ("autoload", i), _unknown_agent(a, agents))
                elif a not in closed:
                    self.err(pat + ("autoload", i), f"{a} is not in profile {n}; allowed: agents of the profile")
            auto = {a for a in auto if a in closed and not agents[a].required}
            auto |= {a for a in closed if agents[a].autoload and not agents[a].required}
            res = None
            if "resources" in s:
                rd = self.mapping(s["resources"], pat + ("resources",), ("cpu_percent", "memory_mb"),
                                  f"profile {n}.resources", required=("cpu_percent", "memory_mb"))
                res = m.ProfileResources(
                    cpu_percent=self.field(rd, "cpu_percent", pat + ("resources",), t.percent, 80),
                    memory_mb=self.field(rd, "memory_mb", pat + ("resources",), t.positive_int, 4096))
            if not closed and n not in [p.name for p in out.values()]:
                self.err(pat, f"profile {n} has no agents; allowed: at least one group or agent")
            out[n] = m.Profile(
                name=n, description=self.field(s, "description", pat, str, ""),
                agents=tuple(a for a in order if a in closed),
                declared=tuple(a for a in order if a in decl),
                via_dependency=tuple(a for a in order if a in closed - decl),
                autoload=tuple(a for a in order if a in auto), resources=res,
                start_timeout_s=self.field(s, "start_timeout", pat, t.duration, 60.0))
        return out

    # -- routing and models ----------------------------------------------------------
    def routing(self, raw: Any, at: Path) -> m.Routing:
        d = self.mapping(raw, at, ("complexity_threshold", "rules", "failover"), "routing")
        rules = []
        rl = d.get("rules") or []
        if not isinstance(rl, list):
            self.err(at + ("rules",), f"{_show(rl)} is not a list; allowed: a list of {{tasks, complexity, backend}}")
            rl = []
        for i, r in enumerate(rl):
            rat = at + ("rules", i)
            rd = self.mapping(r, rat, ("tasks", "complexity", "backend"), "a routing rule",
                              required=("tasks", "complexity", "backend"))
            tasks = rd.get("tasks")
            tasks = [tasks] if isinstance(tasks, str) else tasks
            rules.append(m.RoutingRule(
                tasks=self.name_list(tasks, rat + ("tasks",), t.identifier, "task types"),
                complexity=self.field(rd, "complexity", rat, t.fraction, 0.5),
                backend=self.field(rd, "backend", rat, lambda v: t.choice(v, ("local", "cloud")), "local")))
        f = self.mapping(d.get("failover"), at + ("failover",), ("cloud_unreachable", "vram_exhausted"),
                         "routing.failover")
        fa = at + ("failover",)
        return m.Routing(
            complexity_threshold=self.field(d, "complexity_threshold", at, t.fraction, 0.7),
            rules=tuple(rules),
            cloud_unreachable=self.field(f, "cloud_unreachable", fa, lambda v: t.choice(v, ("local", "fail")), "local"),
            vram_exhausted=self.field(f, "vram_exhausted", fa,
                                      lambda v: t.choice(v, ("local_small", "cloud", "fail")), "local_small"))

    def models(self, raw: Any, at: Path) -> m.Models:
        d = self.mapping(raw, at, ("vram_budget_percentage", "idle_timeout", "declared"), "models")
        declared = []
        decl = d.get("declared") or {}
        if not isinstance(decl, dict):
            self.err(at + ("declared",), f"{_show(decl)} is not a mapping; allowed: NAME: {{backend, vram_mb, ...}}")
            decl = {}
        for name, spec in decl.items():
            mat = at + ("declared", name)
            try:
                t.identifier(name)
            except ValueError as e:
                self.err(mat, str(e))
                continue
            md = self.mapping(spec, mat, ("backend", "vram_mb", "endpoint", "path", "role"), f"model {name}",
                              required=("backend", "vram_mb"))
            declared.append(m.Model(
                name=name,
                backend=self.field(md, "backend", mat, lambda v: t.choice(v, ("openai", "inprocess")), "inprocess"),
                vram_mb=self.field(md, "vram_mb", mat, t.non_negative_int, 0),
                endpoint=self.field(md, "endpoint", mat, t.string, ""),
                path=self.field(md, "path", mat, t.string, ""),
                role=self.field(md, "role", mat, lambda v: t.choice(v, ("local", "local_small", "cloud")), "")))
        return m.Models(
            vram_budget_percentage=self.field(d, "vram_budget_percentage", at, t.percent, 80),
            idle_timeout_s=self.field(d, "idle_timeout", at, t.duration, 300.0),
            declared=tuple(declared))


def _unknown_agent(name: str, agents: Mapping[str, m.Agent]) -> str:
    close = difflib.get_close_matches(str(name), list(agents), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown agent {_show(name)}{hint}; allowed: an agent of this catalog"


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """Return one cycle as [a, b, ..., a], or None (iterative DFS, catalog order)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    for start in graph:
        if color[start] != WHITE:
            continue
        stack = [(start, iter(graph[start]))]
        path = [start]
        color[start] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
            elif color.get(nxt) == GREY:
                return path[path.index(nxt):] + [nxt]
            elif color.get(nxt) == WHITE:
                color[nxt] = GREY
                stack.append((nxt, iter(graph[nxt])))
                path.append(nxt)
    return None


def dependency_closure(names: set[str], agents: Mapping[str, m.Agent]) -> set[str]:
    out, todo = set(), [n for n in names if n in agents]
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out.add(n)
        todo.extend(d for d in agents[n].depends_on if d in agents and d not in out)
    return out


def dependency_order(names: set[str] | tuple[str, ...], agents: Mapping[str, m.Agent]) -> list[str]:
    """Agents sorted so that dependencies come first (catalog order among equals)."""
    names = set(names)
    done: list[str] = []
    placed: set[str] = set()

    def visit(n: str) -> None:
        if n in placed:
            return
        placed.add(n)
        for d in agents[n].depends_on:
            if d in names:
                visit(d)
        done.append(n)

    for n in agents:
        if n in names:
            visit(n)
    return done
