"""The validated catalog as frozen dataclasses (what every other module consumes)."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Resources:
    memory_mb: int = 256
    cpu_percent: int = 25
    vram_mb: int = 0


@dataclass(frozen=True)
class Simulate:
    """Reference agents' simulated load, so the platform can be exercised without models."""

    load_ms: int = 0
    memory_mb: int = 0
    vram_mb: int = 0
    task_ms: int = 0


@dataclass(frozen=True)
class Run:
    kind: str  # reference | builtin | entry_point | command
    value: str = ""  # builtin module, or "pkg.mod:callable"
    argv: tuple[str, ...] = ()  # command
    binds_own_port: bool = False  # command that cannot take a passed socket → socket-proxyd
    backend_port: int = 0  # the port such a command binds itself (loopback)
    simulate: Simulate = field(default_factory=Simulate)

    @property
    def spec(self) -> str:
        """The UNIFIED_RUN value the SDK understands."""
        return self.kind if self.kind in ("reference", "command") else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Agent:
    name: str
    group: str
    port: int
    health_port: int
    required: bool
    depends_on: tuple[str, ...] = ()
    autoload: bool = False
    idle_timeout_s: float = 0.0
    task_types: tuple[str, ...] = ()
    run: Run = field(default_factory=lambda: Run("reference"))
    resources: Resources = field(default_factory=Resources)
    environment: tuple[tuple[str, str], ...] = ()
    systemd: tuple[tuple[str, str], ...] = ()  # extra [Service] directives (allowlisted)
    description: str = ""

    @property
    def optional(self) -> bool:
        return not self.required

    @property
    def service(self) -> str:
        return f"unified-agent@{self.name}.service"

    @property
    def socket(self) -> str:
        return f"unified-agent@{self.name}.socket"


@dataclass(frozen=True)
class ProfileResources:
    cpu_percent: int
    memory_mb: int


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    agents: tuple[str, ...]  # the closed set, catalog order
    declared: tuple[str, ...]  # named by groups/agents/extends
    via_dependency: tuple[str, ...]  # came in only because something depends on them
    autoload: tuple[str, ...]  # optional agents started eagerly in this profile
    resources: ProfileResources | None
    start_timeout_s: float

    @property
    def target(self) -> str:
        return f"unified-profile-{self.name}.target"


@dataclass(frozen=True)
class Limits:
    cpu_percent: int = 80
    memory_mb: int = 4096
    max_threads: int = 8
    vram_limit_mb: int = 4000


@dataclass(frozen=True)
class Health:
    interval_s: float = 5.0
    timeout_s: float = 2.0
    startup_timeout_s: float = 30.0


@dataclass(frozen=True)
class Supervision:
    watchdog_s: float = 30.0
    restart_delay_s: float = 1.0
    stop_timeout_s: float = 15.0


@dataclass(frozen=True)
class Features:
    metrics: bool = True
    tracing: bool = False
    data_optimizer: bool = False


@dataclass(frozen=True)
class Settings:
    host: str = "mainpc"
    bind_address: str = "127.0.0.1"
    log_level: str = "INFO"
    debug_mode: bool = False
    profile: str = "core"
    limits: Limits = field(default_factory=Limits)
    health: Health = field(default_factory=Health)
    supervision: Supervision = field(default_factory=Supervision)
    features: Features = field(default_factory=Features)
    other_listeners: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class LazyLoader:
    load_timeout_s: float = 30.0
    idle_timeout_s: float = 300.0
    slow_load_threshold_s: float = 10.0
    max_concurrent_loads: int = 4


@dataclass(frozen=True)
class RoutingRule:
    tasks: tuple[str, ...]
    complexity: float
    backend: str  # local | cloud


@dataclass(frozen=True)
class Routing:
    complexity_threshold: float = 0.7
    rules: tuple[RoutingRule, ...] = ()
    cloud_unreachable: str = "local"
    vram_exhausted: str = "local_small"


@dataclass(frozen=True)
class Model:
    name: str
    backend: str  # openai | inprocess
    vram_mb: int
    endpoint: str = ""
    path: str = ""
    role: str = ""  # e.g. local, local_small, cloud


@dataclass(frozen=True)
class Models:
    vram_budget_percentage: int = 80
    idle_timeout_s: float = 300.0
    declared: tuple[Model, ...] = ()


@dataclass(frozen=True)
class Catalog:
    path: str
    sources: tuple[str, ...]  # main file, then drop-ins in merge order
    settings: Settings
    agents: Mapping[str, Agent]  # catalog order
    profiles: Mapping[str, Profile]
    lazy_loader: LazyLoader
    routing: Routing
    models: Models
    selected_profile: str  # settings.profile unless PROFILE overrides
    warnings: tuple = ()  # errors.Problem: valid but risky (an agent on a well-known port)

    def __post_init__(self):
        object.__setattr__(self, "agents", MappingProxyType(dict(self.agents)))
        object.__setattr__(self, "profiles", MappingProxyType(dict(self.profiles)))

    @property
    def essential(self) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents.values() if a.required)

    @property
    def optional(self) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents.values() if not a.required)

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {}
        for a in self.agents.values():
            out.setdefault(a.group, []).append(a.name)
        return {g: tuple(v) for g, v in out.items()}

    def agent(self, name: str) -> Agent:
        from .errors import UnifiedError
        import difflib

        if name in self.agents:
            return self.agents[name]
        close = difflib.get_close_matches(name, list(self.agents), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnifiedError(f"unknown agent {name!r}{hint}; `unified-ctl status` lists all {len(self.agents)}")

    def profile(self, name: str) -> Profile:
        from .errors import UnifiedError

        if name in self.profiles:
            return self.profiles[name]
        raise UnifiedError(f"unknown profile {name!r}; allowed: {', '.join(self.profiles)}")
