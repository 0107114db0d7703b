"""Fleet operations as library calls: profile switch, apply, agent load, emergency stop, recover.

Each is a plain function of the systemd seam and the catalog (never of the CLI): it raises
UnifiedError for what the operator can fix and returns a frozen result saying what it did
(started, stopped, restarted, waited, overrides in force) as fields, for the CLI to print as
text or JSON. Holding the fleet lock is the caller's job (the CLI says whom it waits for).

One switch implementation (`switch`) serves `profile switch`, `recover` and the catalog
changes of rollout.py (rollback, promote, abort: `follow`) and backup restore:

  plan → persist the choice → daemon-reload, only when the rendered units would change
  (generator.units_current: the generator records a digest of what it rendered from; a
  switch back to the same profile of an unchanged catalog reloads nothing, saving 0.6–1.1 s)
  → stop what left (service and socket) → start the profile's target → restart the running
  agents a catalog change left stale (behind their sockets) → wait until ready → stop strays.

Every operation that waits for agents takes `progress` (profiles.Progress): called after each
round of checks with what is ready so far, for the CLI to draw; the library prints nothing.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from unified_core import fleet, paths, profiles, runtime
from unified_core.errors import SystemdError, UnifiedError
from unified_core.model import Catalog

from . import changes, ports

if TYPE_CHECKING:
    from . import fleetlock


# -- the runbook's variables given to a launch ------------------------------------------------
@dataclass(frozen=True)
class Override:
    var: str
    value: str
    from_launch: bool  # given to this launch (else an earlier launch left it in force)
    was: str | None = None  # the value it replaced, when this launch changed it


@dataclass(frozen=True)
class LaunchEnvironment:
    """What DISABLE_AUTO_RESTART and the runbook's variables of one launch did."""
    file: str  # where the overrides are stored until reboot
    auto_restart_disabled: bool = False  # this launch turned auto-restart off
    overrides: tuple[Override, ...] = ()  # every override in force after it
    changed: bool = False  # the agents' environment or restart policy changed: reload, restart


def apply_launch_environment(env) -> LaunchEnvironment:
    """Store the overrides that `env` (a launch's environment) asks for. CatalogInvalid names
    each bad variable, and then nothing changed."""
    changed, disabled = False, False
    if runtime.disable_auto_restart_requested(env):
        changed |= runtime.set_auto_restart(False)
        disabled = True
    given = runtime.launch_environment(env)
    before = runtime.overrides_in_force()
    changed |= runtime.add_launch_environment(given)
    overrides = tuple(Override(var, value, var in given,
                               before[var] if var in given and var in before and before[var] != value else None)
                      for var, value in runtime.overrides_in_force().items())
    return LaunchEnvironment(runtime.launch_environment_file(), disabled, overrides, changed)


NO_LAUNCH = LaunchEnvironment(file="")


# -- switch ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Restarted:
    """Running agents a catalog change left stale, restarted behind their sockets."""
    agents: tuple[str, ...] = ()
    sockets: tuple[str, ...] = ()  # of which the socket was re-bound (its port changed)
    why: tuple[tuple[str, str], ...] = ()  # (agent, reason) as changes.py words it

    def to_dict(self) -> dict:
        return {"restarted": list(self.agents), "sockets": list(self.sockets), "why": dict(self.why)}


@dataclass(frozen=True)
class SwitchResult:
    plan: profiles.SwitchPlan
    catalog: Catalog  # the catalog live after the switch
    reloaded: bool  # systemctl daemon-reload ran (the rendered units changed)
    launch: LaunchEnvironment = NO_LAUNCH
    env_restarted: tuple[str, ...] = ()  # kept agents restarted to take a new launch environment
    gone: tuple[str, ...] = ()  # stopped: the new catalog no longer has them
    restarted: Restarted = Restarted()
    wait: profiles.WaitResult | None = None  # None: not waited for (--no-wait)
    strays: tuple[str, ...] = ()  # running outside the profile after the wait, stopped
    failures: tuple[dict, ...] = ()  # profiles.failure_report of what did not get ready

    @property
    def ok(self) -> bool:
        return self.wait is None or self.wait.ok


def plan(sd, cat: Catalog, name: str, old: Catalog | None = None,
         selected: str | None = None) -> tuple[profiles.SwitchPlan, list, set]:
    """(the switch's plan, the port clashes that would make it fail, the agents running or
    queued now, of `cat` or `old`). Changes nothing."""
    profiles.require_known(cat, name)
    # What systemd runs or is about to (jobs queued by a switch killed halfway), not what
    # the previous switch meant to run: leftovers of any earlier operation stop too.
    running = fleet.running_or_queued(cat, sd) | (fleet.running_or_queued(old, sd) if old is not None else set())
    p = profiles.plan_switch(cat, selected if selected is not None else profiles.current_profile(cat), name,
                             {a for a in running if a in cat.agents})
    # (reading the host's listeners scans every process's fds: only when something starts)
    clashes = ports.clashes(cat, p.start_agents, ports.live_listeners()) if p.start_agents else []
    return p, clashes, running


def switch(sd, cat: Catalog, name: str, *, old: Catalog | None = None, env=None, wait: bool = True,
           timeout: float | None = None, selected: str | None = None,
           put_in_place: Callable[[], Catalog] | None = None,
           on_queued: Callable[[SwitchResult], None] | None = None,
           progress: profiles.Progress | None = None) -> SwitchResult:
    """Make profile `name` of `cat` what runs. old: the catalog live before, when `cat` is a
    change of it already in place for the generator (a trial, rollback, promote, abort):
    agents it no longer has stop, running ones it left stale restart. env: the runbook's
    variables of this launch (None: the launch environment is not touched). selected: the
    profile chosen before (default: as recorded). put_in_place: puts `cat` where the generator
    reads it once the checks passed (a trial's start) and returns it as the agents will see
    it. on_queued: called once the units are queued,
    before the wait; progress: reported while it waits (profiles.Progress)."""
    p, clashes, running = plan(sd, cat, name, old, selected)
    if clashes:
        raise ports.PortInUse(clashes, f"switch to profile {name}")
    launch = apply_launch_environment(env) if env is not None else NO_LAUNCH
    before = cat
    if put_in_place:
        cat = put_in_place()
    gone = tuple(sorted(a for a in running if a not in cat.agents))
    if gone:  # agents the new catalog no longer has: their units are still loaded
        # (`running` came from `before` and `old`: each gone agent is in one of them)
        sd.stop([u for a in gone for u in profiles.units_of(
            old if old is not None and a in old.agents else before, [a])])
    reload = launch.changed or not _units_current(name)
    profiles.execute_switch(cat, sd, p, reload=reload)
    restarted = restart_changed(sd, old, cat, p.keep_agents) if old is not None else Restarted()
    env_restarted: tuple[str, ...] = ()
    if launch.changed and p.keep_agents:
        # The launch environment (LOG_LEVEL, VRAM_LIMIT_MB, …) or auto-restart changed: the
        # agents that keep running take it now (their sockets queue connections meanwhile).
        env_restarted = tuple(p.keep_agents)
        sd.try_restart([cat.agents[a].service for a in env_restarted])
    result = SwitchResult(p, cat, reload, launch, env_restarted, gone, restarted)
    if on_queued:
        on_queued(result)
    if not wait:
        return result
    limit = timeout if timeout is not None else cat.profiles[name].start_timeout_s
    waited = profiles.wait_ready(cat, sd, name, limit, progress)
    # Whatever still runs outside the profile now (started behind our back meanwhile) stops:
    # when a switch returns, only the selected profile's agents run.
    strays = tuple(profiles.stray_agents(cat, sd, name))
    failures = tuple(profiles.failure_report(cat, sd, waited)) if not waited.ok else ()
    return SwitchResult(p, cat, reload, launch, env_restarted, gone, restarted, waited, strays, failures)


def _units_current(selected: str) -> bool:
    from .generator import units_current

    return units_current(selected)


def restart_changed(sd, old: Catalog, new: Catalog, agents) -> Restarted:
    """Restart, among `agents`, those the change leaves stale (changes.between: their
    rendered units, or catalog sections they read only at start): a changed socket (port,
    bind address) means stop service and socket and start them again; otherwise a restart
    of the running process. Dormant agents are left alone."""
    stale = changes.between(old, new)
    sockets = {a for a, why in stale.items() if why == changes.PORTS_CHANGED}
    cand = [a for a in agents if a in new.agents and a in stale]
    if not cand:
        return Restarted()
    props = sd.show([new.agents[a].service for a in cand], ("Id", "ActiveState"))
    running = {a for a in cand if props.get(new.agents[a].service, {}).get("ActiveState")
               in ("active", "activating", "reloading")}
    socks = [a for a in cand if a in sockets]
    if socks:
        sd.stop(profiles.units_of(new, socks))
        sd.reset_failed(profiles.units_of(new, socks))
        sd.start([new.agents[a].socket for a in socks] + [new.agents[a].service for a in socks if a in running])
    procs = [a for a in cand if a not in sockets and a in running]
    if procs:
        units = [new.agents[a].service for a in procs]
        sd.reset_failed(units)
        sd.restart(units)
    done = sorted(procs + [a for a in socks if a in running])
    return Restarted(tuple(done), tuple(sorted(socks)), tuple((a, stale[a]) for a in done))


# -- apply ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApplyResult:
    catalog: str
    agents: int
    profile: str
    generator: dict  # what the generator wrote about its run (generator.read_status)
    stale: dict  # {agent: why} running on older settings
    restarted: tuple[str, ...]
    trial: str | None  # a catalog on trial stays live until promote/abort

    def to_dict(self) -> dict:
        return {"ok": True, "catalog": self.catalog, "agents": self.agents, "profile": self.profile,
                "generator": self.generator, "stale": self.stale, "restarted": list(self.restarted)}


def apply(sd, cat: Catalog, restart: bool = False) -> ApplyResult:
    """Make the installed catalog live (daemon-reload renders it); with restart, restart the
    running agents whose settings changed (sockets keep queueing)."""
    from .config_history import trial_catalog
    from .generator import read_status, save_last_good

    old = _apply_checks(cat)
    before = changes.snapshot()
    save_last_good(cat, reason="apply")  # also keeps it in the history (config rollback)
    sd.daemon_reload()
    gen = read_status()
    if gen.get("last_good"):
        raise UnifiedError("the generator rendered the last good catalog instead:\n" + gen.get("problems", ""))
    stale = _running_stale(sd, cat, changes.stale(before, changes.snapshot(), old, cat))
    if restart and stale:
        units = []
        for name, why in stale.items():
            a = cat.agents[name]
            units += ([a.socket] if why == changes.PORTS_CHANGED else []) + [a.service]
        sd.restart(units)
        changes.save_pending({})
    return ApplyResult(cat.path, len(cat.agents), profiles.current_profile(cat), gen, stale,
                       tuple(sorted(stale)) if restart else (), trial_catalog())


def _apply_checks(cat: Catalog) -> Catalog | None:
    """apply's refusal of another file; returns the catalog live now (None: none valid)."""
    from unified_core.catalog import load_catalog

    if os.path.realpath(cat.path) != os.path.realpath(paths.catalog_file()):
        raise UnifiedError(f"apply makes {paths.catalog_file()} live; {cat.path} is another file. "
                           f"Validate it with `unified-ctl validate {cat.path}`, then copy it there.")
    try:  # what is live now: the generator saved it when it last rendered
        return load_catalog(os.path.join(paths.last_good_dir(), "unified.yaml"), env={})
    except UnifiedError:
        return None


def apply_preview(sd, cat: Catalog) -> dict:
    """What `apply` would do, changing nothing (--dry-run): whether the catalog differs from
    the live one, and the running agents that would be left on old settings (or restarted
    with --restart): those the change makes stale and those an earlier apply left so."""
    from .config_history import trial_catalog
    from .rollout import unapplied_edits

    old = _apply_checks(cat)
    # apply's own answer: the units rendered now against those the catalog would render
    fresh = changes.stale(changes.snapshot(), changes.rendered(cat), old, cat)
    pending = {n: rec["why"] for n, rec in changes.load_pending().items() if n in cat.agents}
    running = fleet.running_agents(cat, sd)
    stale = {n: why for n, why in {**pending, **fresh}.items() if n in running}
    return {"dry_run": True, "catalog": cat.path, "agents": len(cat.agents), "profile": profiles.current_profile(cat),
            "changed": old is None or unapplied_edits() is not None, "stale": stale, "trial": trial_catalog()}


def _running_stale(sd, cat: Catalog, fresh: dict) -> dict:
    """{agent: why} of the agents running on settings older than the catalog: what this
    apply changed, plus what an earlier apply changed and nothing has restarted since. A
    dormant agent takes any change at its next start by itself."""
    now = time.monotonic()
    pending = changes.load_pending()
    pending.update({name: {"why": why, "since": now} for name, why in fresh.items()})
    units = []
    for name in pending:
        if name in cat.agents:
            units += [cat.agents[name].service, cat.agents[name].socket]
    props = sd.show(units, ("Id", "ActiveState", "ActiveEnterTimestampMonotonic")) if units else {}
    pending = changes.still_stale(pending, cat, props)
    changes.save_pending(pending)
    return {name: rec["why"] for name, rec in pending.items()}


# -- agent load -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadResult:
    agent: str
    chain: tuple[str, ...]  # the agent and its dependencies, in start order
    seconds: float
    items: tuple[profiles.AgentReadiness, ...]

    @property
    def not_ready(self) -> list[str]:
        return [i.agent for i in self.items if not i.ready]

    @property
    def ok(self) -> bool:
        return not self.not_ready


def load(sd, cat: Catalog, name: str, timeout: float | None = None,
         progress: profiles.Progress | None = None) -> LoadResult:
    """Start an agent now with its dependencies (service and socket, dormant or not) and wait
    until each answers healthy on its health port, at most `timeout` s (default
    lazy_loader.load_timeout). PortInUse before anything starts when a port is taken."""
    from unified_core.catalog import dependency_closure, dependency_order

    a = cat.agent(name)
    chain = dependency_order(dependency_closure({a.name}, cat.agents), cat.agents)
    running = fleet.running_agents(cat, sd)
    ports.check(cat, [n for n in chain if n not in running], f"load {a.name}")
    units = profiles.units_of(cat, chain)
    sd.reset_failed(units)
    sd.start(units, no_block=True)
    # every agent of the chain as a service: a load wants the process, not a listening socket
    items = [profiles.AgentReadiness(n, "service") for n in chain]
    limit = timeout if timeout is not None else cat.lazy_loader.load_timeout_s
    seconds = profiles.wait_for(cat, sd, items, limit, progress)
    return LoadResult(a.name, tuple(chain), seconds, tuple(items))


# -- emergency stop, recover ------------------------------------------------------------------
PATTERNS = ("unified.target", "unified-profile-*.target", "unified-agent@*.socket", "unified-agent@*.service")


def stop_everything(sd) -> list[str]:
    """Stop every unit of ours (targets, sockets, services); SIGKILL what lingers. Returns
    the units still running after that."""
    sd.kill(["unified-agent@*.service"], "SIGTERM")
    # Stop by name, and only units systemd has loaded: a glob that also matches a unit it can
    # no longer load (an agent removed from the catalog while its unit was in memory) makes
    # `systemctl stop` refuse the whole call ("Unit ... not loaded"). What still runs of such
    # a unit is killed below like anything else that lingers.
    try:
        sd.stop([r["unit"] for r in sd.list_units(list(PATTERNS)) if r["load"] == "loaded"])
    except SystemdError:
        # e.g. "Job for unified-agent@X.service canceled.": an agent SIGTERMed while still
        # starting queued its Restart= over our stop job. What counts is what still runs,
        # checked next: it is killed and stopped again, and that second stop must succeed.
        pass
    left = [r["unit"] for r in sd.list_units(list(PATTERNS[2:])) if r["active"] not in ("inactive", "failed")]
    if left:
        sd.kill(left, "SIGKILL")
        sd.stop(left)
        left = [r["unit"] for r in sd.list_units(list(PATTERNS[2:])) if r["active"] not in ("inactive", "failed")]
    return left


@dataclass(frozen=True)
class EmergencyResult:
    ended: "fleetlock.Holder | None"  # the fleet change it ended, if any
    seconds: float


def emergency_stop(sd) -> EmergencyResult:
    """Stop every agent and socket now, ending a fleet change in progress first (never waits
    for the fleet lock). Raises UnifiedError naming what still runs after SIGKILL."""
    from . import fleetlock

    t0 = time.monotonic()
    with fleetlock.preempt() as ended:
        left = stop_everything(sd)
    if left:
        raise UnifiedError("still running after SIGKILL: " + ", ".join(left))
    return EmergencyResult(ended, round(time.monotonic() - t0, 3))


def recover_preview(sd, cat: Catalog, profile: str, keep_state: bool = False) -> dict:
    """What `recover` would do, changing nothing (--dry-run): the units it would stop, what of
    the state directory it would delete, the profile it would start with LOG_LEVEL=DEBUG."""
    profiles.require_known(cat, profile)
    running = [r["unit"] for r in sd.list_units(list(PATTERNS)) if r["active"] not in ("inactive", "failed")]
    state_dir = paths.state_dir()
    doomed = sorted(os.listdir(state_dir)) if not keep_state and os.path.isdir(state_dir) else []
    return {"dry_run": True, "stop": running, "state_dir": state_dir, "clear": not keep_state, "delete": doomed,
            "profile": profile, "start": list(cat.profiles[profile].agents), "overrides": {"LOG_LEVEL": "DEBUG"}}


@dataclass(frozen=True)
class RecoverResult:
    cleared: str | None  # the state directory emptied (None: kept)
    switch: SwitchResult


def recover(sd, cat: Catalog, profile: str, keep_state: bool = False,
            on_cleared: Callable[[str], None] | None = None,
            on_queued: Callable[[SwitchResult], None] | None = None,
            progress: profiles.Progress | None = None) -> RecoverResult:
    """Stop everything, clear the state directory (unless keep_state), start `profile` with
    LOG_LEVEL=DEBUG (an override until `unified-ctl overrides clear` or reboot)."""
    profiles.require_known(cat, profile)
    left = stop_everything(sd)
    if left:
        raise UnifiedError("could not stop: " + ", ".join(left))
    state_dir, cleared = paths.state_dir(), None
    if not keep_state and os.path.isdir(state_dir):
        for entry in os.listdir(state_dir):
            p = os.path.join(state_dir, entry)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        cleared = state_dir
        if on_cleared:
            on_cleared(state_dir)
    result = switch(sd, cat, profile, env={"LOG_LEVEL": "DEBUG"}, on_queued=on_queued, progress=progress)
    return RecoverResult(cleared, result)


# -- overrides clear ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Cleared:
    was: dict = field(default_factory=dict)
    restarted: int = 0


def clear_overrides(sd, cat: Catalog) -> Cleared:
    """Remove every override: the running agents restart on the catalog's settings."""
    was = runtime.overrides_in_force()
    restarted = 0
    if runtime.set_launch_environment({}):
        sd.daemon_reload()
        running = sorted(fleet.running_agents(cat, sd))
        sd.try_restart([cat.agents[a].service for a in running])
        restarted = len(running)
    return Cleared(was, restarted)
