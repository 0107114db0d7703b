"""`unified-agent run NAME` / `python3 -m unified_agents run NAME`: start one agent.

Under systemd everything comes from the environment (docs/AGENT_ENV.md). By hand, with no
UNIFIED_HEALTH_PORT in the environment and no flags, the catalog is read (lazily: yaml and
the validator cost more than the whole rest of the start) to find the ports and how to run
the agent. Flags override both. Errors are one line on stderr: exit 2 for a bad setting,
1 for anything else that stops the start; never a traceback.
"""
from __future__ import annotations

import os
import sys

USAGE = """\
usage: unified-agent run [NAME] [--port N] [--health-port N] [--bind ADDR]
                         [--run SPEC] [--catalog PATH] [--idle-timeout S] [--log-level L]
       unified-agent --version

Runs agent NAME (default: $UNIFIED_AGENT) in the foreground. Under systemd the unit's
environment says everything; by hand the catalog ($UNIFIED_CATALOG, default
/etc/unified/unified.yaml) supplies what the environment and flags do not.
SPEC: reference | builtin:MODULE | entry_point:pkg.module:callable
"""

_FLAGS = {
    "--port": "UNIFIED_PORT",
    "--health-port": "UNIFIED_HEALTH_PORT",
    "--bind": "UNIFIED_BIND",
    "--run": "UNIFIED_RUN",
    "--catalog": "UNIFIED_CATALOG",
    "--idle-timeout": "UNIFIED_IDLE_TIMEOUT_S",
    "--log-level": "LOG_LEVEL",
}
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")


class UsageError(Exception):
    pass


def parse_args(argv: list[str]):
    """→ (command, name | None, {ENV_VAR: value})."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        return "help", None, {}
    if argv[0] in ("--version", "version"):
        return "version", None, {}
    if argv[0] != "run":
        raise UsageError(f"unknown command {argv[0]!r}")
    name = None
    flags: dict = {}
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            return "help", None, {}
        if a.startswith("--"):
            key, eq, val = a.partition("=")
            if key not in _FLAGS:
                raise UsageError(f"unknown option {key!r}")
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"option {key} needs a value")
                val = argv[i]
            flags[_FLAGS[key]] = val
        elif name is None:
            name = a
        else:
            raise UsageError(f"unexpected argument {a!r}")
        i += 1
    return "run", name, flags


def _fatal(msg: str, code: int, name: str | None = None) -> int:
    from .log import Logger

    Logger(name or "unified-agent").log(3 if code != 0 else 6, f"error: {msg}")
    return code


def catalog_env(name: str, path: str) -> dict:
    """The environment the generator would write for NAME, from the catalog (by hand only)."""
    from .config import ConfigError

    try:
        from unified_core.catalog import load_catalog
    except ImportError as e:
        raise ConfigError(
            f"UNIFIED_HEALTH_PORT is not set and the catalog reader is not available ({e}); "
            "allowed: run under systemd, set UNIFIED_PORT/UNIFIED_HEALTH_PORT, or pass "
            "--port and --health-port") from None
    try:
        catalog = load_catalog(path)
    except Exception as e:  # the catalog's own errors name file, line and field
        raise ConfigError(f"UNIFIED_CATALOG={path!r}: cannot use the catalog: {e}") from None
    a = catalog.agents.get(name)
    if a is None:
        raise ConfigError(f"agent {name!r} is not in the catalog {path}; allowed: one of "
                          f"{', '.join(sorted(catalog.agents)[:10])}"
                          + (" ..." if len(catalog.agents) > 10 else ""))
    env = {
        "UNIFIED_GROUP": a.group or "",
        "UNIFIED_REQUIRED": "true" if a.required else "false",
        "UNIFIED_PORT": str(a.port),
        "UNIFIED_HEALTH_PORT": str(a.health_port),
        "UNIFIED_TASK_TYPES": ",".join(a.task_types or ()),
        "UNIFIED_DEPENDENCIES": ",".join(a.depends_on or ()),
        "UNIFIED_CATALOG": path,
    }
    resources = getattr(a, "resources", None)
    if resources is not None and getattr(resources, "vram_mb", None) is not None:
        env["UNIFIED_VRAM_MB"] = str(resources.vram_mb)
    run = getattr(a, "run", None)
    kind = getattr(run, "kind", None)
    value = str(getattr(run, "value", "") or "")
    if kind == "command":
        raise ConfigError(f"agent {name} runs an external command ({value}); "
                          "run that command directly")
    if kind in ("builtin", "entry_point") and value:
        prefix = kind + ":"
        env["UNIFIED_RUN"] = value if value.startswith(prefix) else prefix + value
    sim = getattr(run, "simulate", None)
    if kind == "reference" and sim is not None:
        for var, attr in (("UNIFIED_SIM_LOAD_MS", "load_ms"), ("UNIFIED_SIM_MEMORY_MB", "memory_mb"),
                          ("UNIFIED_SIM_VRAM_MB", "vram_mb"), ("UNIFIED_SIM_TASK_MS", "task_ms")):
            if getattr(sim, attr, 0):
                env[var] = str(getattr(sim, attr))
    for k, v in getattr(a, "environment", ()) or ():  # the agent's own catalog environment
        env[k] = str(v)
    # idle_timeout is deliberately not taken: by hand the agent bound its port itself, so
    # after an idle exit nobody would take the next connection. --idle-timeout sets it.
    return env


def build_environment(name: str | None, flags: dict, environ, have_fd: bool,
                      notes: list | None = None) -> dict:
    """The environment the agent runs with: the process environment, plus (by hand only)
    what the catalog says about NAME, overridden by command-line flags.

    "By hand" = no socket from systemd and no UNIFIED_HEALTH_PORT in the environment (the
    generator always writes it). Then the catalog is read; if it cannot be used, flags
    giving both ports are enough (an ad-hoc agent for development: `notes` says why).
    """
    from .config import ConfigError, check_agent_name

    env = dict(environ)
    env_name = (env.get("UNIFIED_AGENT") or "").strip()
    if name is None:
        if not env_name:
            raise ConfigError("UNIFIED_AGENT is not set and no NAME was given; allowed: "
                              "unified-agent run NAME")
        name = env_name
    elif env_name and env_name != name:
        raise ConfigError(f"UNIFIED_AGENT={env_name!r} but the command line names {name!r}; "
                          "allowed: the same name (or unset UNIFIED_AGENT)")
    check_agent_name("NAME" if not env_name else "UNIFIED_AGENT", name)
    env["UNIFIED_AGENT"] = name
    by_hand = not have_fd and not (env.get("UNIFIED_HEALTH_PORT") or "").strip()
    env.update(flags)
    if by_hand:
        path = (env.get("UNIFIED_CATALOG") or "").strip() or "/etc/unified/unified.yaml"
        try:
            from_catalog = catalog_env(name, path)
        except ConfigError as e:
            if not (flags.get("UNIFIED_PORT") and flags.get("UNIFIED_HEALTH_PORT")):
                raise
            from_catalog = {}
            if notes is not None:
                notes.append(f"not using the catalog ({e}); running with the flags given")
        for k, v in from_catalog.items():
            if not (env.get(k) or "").strip():
                env[k] = v
    return env


def load_agent(config):
    """Instantiate the agent UNIFIED_RUN names. ConfigError when it names nothing."""
    from .agent import Agent
    from .config import ConfigError
    from .runtime import StartupError

    kind, value = config.run_kind, config.run_value
    if kind == "reference":
        from .reference import ReferenceAgent

        return ReferenceAgent()
    if kind == "builtin":
        modname = f"{__package__}.builtin.{value}"
        try:
            mod = _import(modname, f"builtin:{value}", _builtin_names())
        except ConfigError:  # no such module: one that ships in another package says which
            _need_package_of(value)
            raise
        target = getattr(mod, "AGENT", None)
        if target is None:
            found = [v for v in vars(mod).values() if isinstance(v, type)
                     and issubclass(v, Agent) and v.__module__ == mod.__name__]
            if len(found) != 1:
                raise StartupError(f"UNIFIED_RUN='builtin:{value}': module {modname} must "
                                   f"define exactly one Agent subclass or set AGENT "
                                   f"(found {len(found)})")
            target = found[0]
    else:
        modname, _, attr = value.partition(":")
        mod = _import(modname, f"entry_point:{value}", None)
        target = mod
        for part in attr.split("."):
            target = getattr(target, part, None)
            if target is None:
                raise ConfigError(f"UNIFIED_RUN='entry_point:{value}': {modname} has no "
                                  f"attribute {attr!r}; allowed: an Agent subclass or a "
                                  "callable returning an Agent")
    try:
        agent = target()
    except Exception as e:
        from .log import describe_exception

        raise StartupError(f"creating the agent ({kind}:{value}) failed: "
                           f"{describe_exception(e, True)}") from None
    if not isinstance(agent, Agent):
        raise StartupError(f"UNIFIED_RUN={kind}:{value} gave {type(agent).__name__}, not an "
                           "instance of unified_agents.Agent")
    return agent


def _need_package_of(value: str) -> None:
    """A built-in that ships in another binary package (the speech agents) and is not
    installed: one line naming the package, exit 2 (systemd does not retry)."""
    from .builtin import VOICE_MODULES, VOICE_PACKAGE
    from .config import ConfigError

    if value in VOICE_MODULES:
        raise ConfigError(f"UNIFIED_RUN='builtin:{value}': this agent ships in the Debian package "
                          f"{VOICE_PACKAGE}, which is not installed (apt install {VOICE_PACKAGE})")


def _builtin_names() -> list[str]:
    here = os.path.join(os.path.dirname(__file__), "builtin")
    try:
        return sorted(f[:-3] for f in os.listdir(here)
                      if f.endswith(".py") and not f.startswith("_"))
    except OSError:
        return []


def _import(modname: str, spec: str, choices):
    from .config import ConfigError
    from .runtime import StartupError

    try:
        __import__(modname)
        return sys.modules[modname]
    except ModuleNotFoundError as e:
        if e.name and (modname == e.name or modname.startswith(e.name + ".")):
            allowed = ("one of " + ", ".join(choices)) if choices is not None else \
                "an importable module"
            raise ConfigError(f"UNIFIED_RUN={spec!r}: no module {modname}; allowed: "
                              f"{allowed}") from None
        raise StartupError(f"loading {spec} failed: {_describe(e)}") from None
    except Exception as e:
        raise StartupError(f"loading {spec} failed: {_describe(e)}") from None


def _describe(e: BaseException) -> str:
    from .log import describe_exception

    return describe_exception(e, True)


def run(name: str | None, flags: dict, environ=None) -> int:
    from .config import ConfigError, load
    from .runtime import Runtime, StartupError, bind_listener, listen_fds

    environ = os.environ if environ is None else environ
    label = name
    notes: list = []
    try:
        sock = listen_fds("agent")
        env = build_environment(name, flags, environ, sock is not None, notes)
        label = env.get("UNIFIED_AGENT")
        config = load(env, port_from_fd=sock is not None)
    except ConfigError as e:
        return _fatal(str(e), 2, label)
    except StartupError as e:
        return _fatal(str(e), 1, label)

    from .log import Logger

    log = Logger(config.name, config.log_level)
    for note in notes:
        log.warning(note)
    if "MAX_THREADS" in env:
        for var in _THREAD_VARS:
            os.environ.setdefault(var, str(config.max_threads))
    try:
        if sock is None:
            assert config.port is not None  # load() requires it when systemd passed no socket
            sock = bind_listener(config.bind, config.port, "UNIFIED_PORT")
        health = bind_listener(config.bind, config.health_port, "UNIFIED_HEALTH_PORT")
        agent = load_agent(config)
        return Runtime(config, agent, log, sock, health).run()
    except ConfigError as e:
        return _fatal(str(e), 2, config.name)
    except StartupError as e:
        return _fatal(str(e), 1, config.name)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: still one line
        return _fatal(f"unexpected error: {_describe(e)}", 1, config.name)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cmd, name, flags = parse_args(argv)
    except UsageError as e:
        sys.stderr.write(f"unified-agent: {e}\n{USAGE}")
        return 2
    if cmd == "help":
        sys.stdout.write(USAGE)
        return 0
    if cmd == "version":
        from . import __version__

        sys.stdout.write(f"unified-agent {__version__}\n")
        return 0
    return run(name, flags)
