"""Agent configuration from the environment (docs/AGENT_ENV.md), validated once at start.

Every bad value becomes one `ConfigError` whose message names the variable, the bad value and
what is allowed; the CLI prints it as one line and exits 2. The converters are the catalog's
own (unified_core.types: same rules as `unified-ctl validate`); this module adds the variable
name, defaults for unset variables, and no dataclasses (cold-start path).
"""
from __future__ import annotations

import os

from unified_core import types as _t

# typing's constant without importing typing (cold-start path): Env's overloads (a default
# or required=True means "never None") exist for the type checker only. (mypy 1.0 skips an
# `if TYPE_CHECKING:` overload block that directly follows another overloaded method's
# definition: keep a plain method between two of them.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal, overload

LOG_LEVELS = _t.LOG_LEVELS


class ConfigError(Exception):
    """A bad setting. str(e) is the whole one-line message an operator sees."""

    exit_code = 2


def _bad(var: str, value: str | None, allowed: str) -> ConfigError:
    return ConfigError(f"{var}={value!r} is invalid; allowed: {allowed}")


class Env:
    """Typed, validated reads of environment variables (also for agent authors' own vars).

    `env.integer("MY_CACHE_MB", 64, lo=0)` returns the default when the variable is unset
    or empty and raises ConfigError naming the variable on a bad value.
    """

    def __init__(self, environ=None):
        self.environ = os.environ if environ is None else environ

    def raw(self, var: str) -> str | None:
        v = self.environ.get(var)
        if v is None:
            return None
        v = v.strip()
        return v or None

    if TYPE_CHECKING:  # (see the top of this module)
        @overload
        def string(self, var: str, default: str) -> str: ...
        @overload
        def string(self, var: str, default: None = None) -> str | None: ...

    def string(self, var: str, default: str | None = None) -> str | None:
        v = self.raw(var)
        return default if v is None else v

    def _convert(self, var: str, conv, *args):
        v = self.raw(var)
        try:
            return conv(v, *args)
        except ValueError as e:
            _, sep, allowed = str(e).partition("; allowed: ")
            raise (_bad(var, v, allowed) if sep else
                   ConfigError(f"{var}={v!r} is invalid: {e}")) from None

    if TYPE_CHECKING:  # (see the top of this module)
        @overload
        def integer(self, var: str, default: int, lo: int | None = None,
                    hi: int | None = None, required: bool = False) -> int: ...
        @overload
        def integer(self, var: str, default: None = None, lo: int | None = None,
                    hi: int | None = None, *, required: Literal[True]) -> int: ...
        @overload
        def integer(self, var: str, default: None = None, lo: int | None = None,
                    hi: int | None = None, required: bool = False) -> int | None: ...

    def integer(self, var: str, default: int | None = None, lo: int | None = None,
                hi: int | None = None, required: bool = False) -> int | None:
        if self.raw(var) is None:
            if required:
                raise ConfigError(f"{var} is not set; allowed: "
                                  f"{_t._range_text(lo, hi, 'an integer')}")
            return default
        return self._convert(var, _t.integer, lo, hi)

    def boolean(self, var: str, default: bool = False) -> bool:
        if self.raw(var) is None:
            return default
        return self._convert(var, _t.boolean)

    if TYPE_CHECKING:  # (see the top of this module)
        @overload
        def number(self, var: str, default: float, lo: float | None = None,
                   hi: float | None = None) -> float: ...
        @overload
        def number(self, var: str, default: None = None, lo: float | None = None,
                   hi: float | None = None) -> float | None: ...

    def number(self, var: str, default: float | None = None, lo: float | None = None,
               hi: float | None = None) -> float | None:
        v = self.raw(var)
        if v is None:
            return default
        try:
            f = float(v)
        except ValueError:
            raise _bad(var, v, _t._range_text(lo, hi, "a number")) from None
        if f != f or f in (float("inf"), float("-inf")):
            raise _bad(var, v, _t._range_text(lo, hi, "a number"))
        if (lo is not None and f < lo) or (hi is not None and f > hi):
            raise _bad(var, v, _t._range_text(lo, hi, "a number"))
        return f

    def log_level(self, var: str, default: str = "INFO") -> str:
        if self.raw(var) is None:
            return default
        return self._convert(var, _t.log_level)

    def choice(self, var: str, allowed: tuple[str, ...], default: str) -> str:
        v = self.raw(var)
        if v is None:
            return default
        # case-insensitive, answered as `allowed` spells it (INFO, cpu, wiener)
        for a in allowed:
            if v.strip().lower() == a.lower():
                return a
        raise _bad(var, v, ", ".join(allowed))

    def names(self, var: str) -> tuple[str, ...]:
        v = self.raw(var)
        if v is None:
            return ()
        return tuple(p.strip() for p in v.split(",") if p.strip())


def check_agent_name(var: str, value: str) -> str:
    return Env({var: value})._convert(var, _t.agent_name)


def check_ip(var: str, value: str) -> str:
    """(types.bind_address imports ipaddress, ~2 ms of cold start; inet_pton is free.)"""
    import socket

    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, value)
            return value
        except OSError:
            pass
    raise _bad(var, value, "an IPv4 or IPv6 address such as 127.0.0.1")


def parse_run(var: str, value: str | None) -> tuple[str, str]:
    """UNIFIED_RUN → (kind, value): ('reference', ''), ('builtin', MODULE),
    ('entry_point', 'pkg.mod:callable')."""
    allowed = "empty or 'reference', 'builtin:MODULE', 'entry_point:pkg.module:callable'"
    if value is None or value == "reference":
        return ("reference", "")
    kind, sep, rest = value.partition(":")
    rest = rest.strip()
    if kind == "builtin" and sep and rest.isidentifier() and rest.islower():
        return ("builtin", rest)
    if kind == "entry_point" and sep:
        mod, sep2, attr = rest.partition(":")
        parts = mod.split(".") + attr.split(".")
        if sep2 and all(p and p.isidentifier() for p in parts):
            return ("entry_point", rest)
    if kind == "command":
        raise ConfigError(
            f"{var}={value!r}: command agents are started by their own ExecStart= "
            f"(the generator writes it), not by unified_agents; allowed here: {allowed}")
    raise _bad(var, value, allowed)


class Config:
    """Everything an agent process is told. Attributes are plain values; `env` reads more."""

    __slots__ = (
        "name", "group", "required", "port", "health_port", "bind", "idle_timeout_s",
        "run_kind", "run_value", "task_types", "dependencies", "catalog", "vram_mb",
        "log_level", "debug", "cpu_percent", "memory_mb", "max_threads", "vram_limit_mb",
        "enable_metrics", "enable_tracing", "enable_data_optimizer", "max_body_bytes",
        "request_timeout_s", "keepalive_timeout_s", "stop_grace_s", "max_connections",
        "state_directory", "worker_hang_s", "env",
    )
    # (annotations only: with __slots__ there are no class attributes; load() sets them all)
    name: str
    group: str
    required: bool
    port: int | None  # None: systemd passed the socket and UNIFIED_PORT is not set
    health_port: int
    bind: str
    idle_timeout_s: float
    run_kind: str
    run_value: str
    task_types: tuple[str, ...]
    dependencies: tuple[str, ...]
    catalog: str
    vram_mb: int
    log_level: str
    debug: bool
    cpu_percent: int | None
    memory_mb: int | None
    max_threads: int
    vram_limit_mb: int | None
    enable_metrics: bool
    enable_tracing: bool
    enable_data_optimizer: bool
    max_body_bytes: int
    request_timeout_s: float
    keepalive_timeout_s: float
    stop_grace_s: float
    max_connections: int
    state_directory: str | None
    worker_hang_s: float
    env: Env

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__
                                     if k != "env") + ")"


def load(environ=None, *, port_from_fd: bool = False) -> Config:
    """Read and validate the whole environment contract. Raises ConfigError (exit 2).

    `port_from_fd`: systemd passed the agent socket, so UNIFIED_PORT is informational.
    """
    e = Env(environ)
    c = Config()
    c.env = e
    name = e.string("UNIFIED_AGENT")
    if name is None:
        raise ConfigError("UNIFIED_AGENT is not set; allowed: the agent name "
                          "(systemd sets it from the instance name; by hand: "
                          "unified-agent run NAME)")
    c.name = check_agent_name("UNIFIED_AGENT", name)
    c.group = e.string("UNIFIED_GROUP", "")
    c.required = e.boolean("UNIFIED_REQUIRED", False)
    c.port = e.integer("UNIFIED_PORT", None, 1, 65535, required=not port_from_fd)
    c.health_port = e.integer("UNIFIED_HEALTH_PORT", None, 1, 65535, required=True)
    if c.port is not None and c.port == c.health_port:
        raise ConfigError(f"UNIFIED_HEALTH_PORT={c.health_port} equals UNIFIED_PORT; "
                          "allowed: a different port (the health port must never activate)")
    c.bind = check_ip("UNIFIED_BIND", e.string("UNIFIED_BIND", "127.0.0.1"))
    c.idle_timeout_s = e.number("UNIFIED_IDLE_TIMEOUT_S", 0.0, lo=0.0)
    c.run_kind, c.run_value = parse_run("UNIFIED_RUN", e.string("UNIFIED_RUN"))
    c.task_types = e.names("UNIFIED_TASK_TYPES")
    c.dependencies = e.names("UNIFIED_DEPENDENCIES")
    c.catalog = e.string("UNIFIED_CATALOG", "/etc/unified/unified.yaml")
    c.vram_mb = e.integer("UNIFIED_VRAM_MB", 0, 0)
    c.debug = e.boolean("DEBUG_MODE", False)
    c.log_level = "DEBUG" if c.debug else e.log_level("LOG_LEVEL", "INFO")
    c.cpu_percent = e.integer("CPU_PERCENT", None, 1)
    c.memory_mb = e.integer("MEMORY_MB", None, 1)
    c.max_threads = e.integer("MAX_THREADS", 8, 1, 1024)
    c.vram_limit_mb = e.integer("VRAM_LIMIT_MB", None, 0)
    c.enable_metrics = e.boolean("ENABLE_METRICS", True)
    c.enable_tracing = e.boolean("ENABLE_TRACING", False)
    c.enable_data_optimizer = e.boolean("ENABLE_DATA_OPTIMIZER", False)
    c.max_body_bytes = e.integer("UNIFIED_MAX_BODY_BYTES", 1 << 20, 1)
    c.request_timeout_s = e.number("UNIFIED_REQUEST_TIMEOUT_S", 10.0, lo=0.1)
    c.keepalive_timeout_s = e.number("UNIFIED_KEEPALIVE_TIMEOUT_S", 5.0, lo=0.1)
    c.stop_grace_s = e.number("UNIFIED_STOP_GRACE_S", 10.0, lo=0.0)
    c.max_connections = e.integer("UNIFIED_MAX_CONNECTIONS", 512, 1, 65536)
    c.state_directory = e.string("STATE_DIRECTORY")
    # a handler running longer than this is hung (runtime.py stops the watchdog pings):
    # ten times RequestCoordinator's default task timeout (the catalog's 30 s lazy-load
    # SLA), long after anyone waits for its answer; 0 = never
    c.worker_hang_s = e.number("WORKER_HANG_S", 300.0, lo=0.0)
    return c
