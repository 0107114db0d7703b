"""Catalog changes that reach the running fleet: staged rollout (trial → promote | abort)
and rollback to an earlier catalog.

Each ends with the running profile following the new catalog: the generator renders it
(daemon-reload), the selected profile is re-planned against it (agents that left stop,
service and socket; new ones start), and every running agent the change leaves stale
(changes.py, the same answer `apply` gives: its units changed, or a catalog section it reads
only at start) is restarted behind its socket, which queues connections meanwhile (nothing is refused).
Agents whose units did not change keep running untouched. Dormant agents need nothing:
their next activation reads the new units.

A trial lives in /run/unified/trial (config_history): a reboot returns to the permanent
catalog. Agents get the catalog's path as UNIFIED_CATALOG, so starting or ending a trial
changes every agent's environment: each running agent restarts once (behind its socket).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import changes
from unified_core import fleet, paths, profiles
from . import config_history as history
from unified_core.catalog import load_catalog
from unified_core.errors import CatalogInvalid, UnifiedError
from unified_core.model import Catalog


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def restart_changed(sd, old: Catalog, new: Catalog, agents) -> dict:
    """Restart, among `agents`, those the change leaves stale (changes.between: their
    rendered units, or catalog sections they read only at start): a changed socket (port,
    bind address) means stop service and socket and start them again; otherwise a restart
    of the running process. Dormant agents are left alone."""
    stale = changes.between(old, new)
    sockets = {a for a, why in stale.items() if why == changes.PORTS_CHANGED}
    cand = [a for a in agents if a in new.agents and a in stale]
    if not cand:
        return {"restarted": [], "sockets": [], "why": {}}
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
    return {"restarted": done, "sockets": sorted(socks), "why": {a: stale[a] for a in done}}


@dataclass
class FollowResult:
    profile: str
    plan: profiles.SwitchPlan
    removed: list[str]
    restarted: dict
    wait: profiles.WaitResult | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.wait is None or self.wait.ok

    def to_dict(self) -> dict:
        d = {"profile": self.profile, "ok": self.ok, "stopped": list(self.plan.stop_agents) + self.removed,
             "started": list(self.plan.start_agents), "restarted": self.restarted["restarted"],
             "sockets_restarted": self.restarted["sockets"], "why_restarted": self.restarted.get("why", {}),
             "notes": self.notes}
        if self.wait is not None:
            d["seconds"] = self.wait.seconds
            d["not_ready"] = [{"agent": a.agent, "state": a.state, "reason": a.reason} for a in self.wait.failed]
        return d


def follow(sd, old: Catalog, new: Catalog, profile: str | None = None, wait: bool = True,
           timeout: float | None = None) -> FollowResult:
    """Make the running fleet match `new` (already in place for the generator): re-plan the
    profile, daemon-reload, stop what left, start what joined, restart what changed."""
    target = profile or profiles.current_profile(new)
    profiles.require_known(new, target)
    running = fleet.running_or_queued(old, sd) | fleet.running_or_queued(new, sd)
    plan = profiles.plan_switch(new, profiles.read_selected(), target, {a for a in running if a in new.agents})
    removed = sorted(a for a in running if a not in new.agents)
    if removed:  # agents the new catalog no longer has: their units are still loaded
        sd.stop(profiles.units_of(old, removed))
    profiles.execute_switch(new, sd, plan)
    restarted = restart_changed(sd, old, new, plan.keep_agents)
    result = FollowResult(target, plan, removed, restarted)
    if wait:
        limit = timeout if timeout is not None else new.profiles[target].start_timeout_s
        result.wait = profiles.wait_ready(new, sd, target, limit)
    return result


# -- which catalog is live ----------------------------------------------------------------
def live_path() -> str:
    return history.trial_catalog() or paths.catalog_file()


def load_live() -> Catalog:
    """The catalog the generator renders now, as it renders it (no environment overrides):
    the trial, else the permanent one, else (invalid edit) the last good one."""
    from .generator import load_good

    cat, _, problems = load_good(live_path())
    if cat is None:
        raise UnifiedError("no valid catalog is live:\n" + problems)
    return cat


def unapplied_edits() -> history.Entry | None:
    """The newest history entry when /etc/unified's catalog differs from it (edited but never
    made live), else None."""
    last = history.newest()
    if last is None:
        return None
    cur = history.catalog_files(paths.catalog_file())
    if not os.path.exists(cur[history.MAIN]):
        return last
    return last if history.digest(cur) != last.digest else None


def _guard_unapplied(force: bool, what: str) -> list[str]:
    last = unapplied_edits()
    if last is None:
        return []
    if not force:
        raise UnifiedError(
            f"{paths.catalog_file()} (or conf.d/) has changes that were never made live (it differs from "
            f"history entry {last.id}); `unified-ctl apply` them or undo them first, or {what} --force "
            "to set them aside (saved as *.unapplied-TIME beside each file)")
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S")
    saved = []
    for rel, path in history.catalog_files(paths.catalog_file()).items():
        if os.path.exists(path):
            dest = f"{path}.unapplied-{stamp}"
            os.rename(path, dest)
            saved.append(dest)
    return saved


# -- trial (staged rollout) ----------------------------------------------------------------
@dataclass
class Trial:
    old: Catalog | None  # live before the trial, as rendered (None: no valid catalog was live)
    new: Catalog  # the catalog named by CONFIG/--config, validated
    source: str


def switch_catalog(ctx, source: str | None) -> Trial | None:
    """Which catalog `profile switch` uses. source (its $CONFIG, the runbook's staged rollout)
    naming a catalog other than the live one starts a trial of it (returned); otherwise the
    live catalog: the active trial when there is one (a plain switch keeps trying it), else
    the permanent one. Sets ctx's catalog. Nothing else starts a trial."""
    trial = history.trial_catalog()
    if not source or _same(source, paths.catalog_file()) or (trial and _same(source, trial)):
        ctx.config = trial or paths.catalog_file()
        ctx._catalog = None
        return None
    ctx.config, ctx._catalog = source, None
    new = ctx.catalog  # validates FILE: CatalogInvalid before anything is touched
    try:
        old = load_live()
    except UnifiedError:
        old = None
    return Trial(old=old, new=new, source=source)


def execute_switch(sd, cat: Catalog, plan: profiles.SwitchPlan, trial: Trial | None) -> tuple[Catalog, list[str]]:
    """profiles.execute_switch, with a trial put in place first and the running agents whose
    units it changes restarted after. Returns (the catalog now live, notes)."""
    if trial is None:
        profiles.execute_switch(cat, sd, plan)
        return cat, []
    running = fleet.running_agents(trial.old, sd) if trial.old else set()
    new, notes = begin_trial(trial)
    gone = sorted(a for a in running if a not in new.agents)
    if gone:
        sd.stop(profiles.units_of(trial.old, gone))
    profiles.execute_switch(new, sd, plan)
    r = restart_changed(sd, trial.old, new, plan.keep_agents) if trial.old else {"restarted": [], "why": {}}
    notes.append(f"trying {trial.source} (until `unified-ctl config promote`; `unified-ctl config abort` or a "
                 f"reboot returns to {paths.catalog_file()}); restarted {len(r['restarted'])} running agents "
                 "whose units changed" + (f", stopped {len(gone)} the trial does not have" if gone else ""))
    return new, notes


def begin_trial(trial: Trial) -> tuple[Catalog, list[str]]:
    """Put the trial in place for the generator. Returns (the catalog as the agents will see
    it, notes for the operator)."""
    notes = []
    files = history.sources_files(trial.new.sources)
    perm = {k for k in history.catalog_files(paths.catalog_file()) if k.startswith("conf.d/")}
    missing = sorted(perm - set(files))
    if missing:
        notes.append(f"the trial is {trial.source} with its own drop-ins only; {', '.join(missing)} of "
                     f"{paths.etc_dir()} are not part of it (promote would remove them; history keeps them)")
    path = history.start_trial(files, trial.source)
    return load_catalog(path), notes


def promote(sd, force: bool = False, wait: bool = True) -> tuple[FollowResult, dict]:
    trial = history.trial_catalog()
    if not trial:
        raise UnifiedError("no catalog is on trial; start one with `CONFIG=FILE unified-ctl profile switch NAME`")
    tried = load_catalog(trial, env={})  # still valid under this version of unified-ctl
    saved = _guard_unapplied(force, "`unified-ctl config promote`")
    files = history.catalog_files(trial)
    removed = history.install(files)
    perm = load_catalog(paths.catalog_file(), env={})  # the very files just tried
    from .generator import save_last_good

    save_last_good(perm, reason="promote")
    meta = history.trial_meta()
    history.end_trial()
    result = follow(sd, tried, perm, wait=wait)
    return result, {"source": meta.get("source"), "removed_dropins": removed, "set_aside": saved,
                    "history": history.newest().to_dict() if history.newest() else None}


def abort(sd, wait: bool = True) -> FollowResult:
    if not history.trial_catalog():
        raise UnifiedError("no catalog is on trial")
    tried = load_live()
    history.end_trial()
    return follow(sd, tried, load_live(), wait=wait)


def rollback(sd, entry_id: int | None = None, force: bool = False, wait: bool = True) -> tuple[FollowResult, dict]:
    if history.trial_catalog():
        raise UnifiedError("a catalog is on trial; `unified-ctl config abort` returns to the permanent one "
                           "(rollback acts on the permanent catalog)")
    last = history.newest()
    if last is None:
        raise UnifiedError(f"no catalog history yet in {paths.history_dir()}: a catalog is kept each time one "
                           "becomes live (`unified-ctl apply`)")
    target = history.get(entry_id) if entry_id is not None else history.rollback_target(last.digest)
    old = load_live()
    saved = _guard_unapplied(force, "`unified-ctl config rollback`")
    removed = history.install(history.entry_files(target))
    try:
        new = load_catalog(paths.catalog_file(), env={})
    except CatalogInvalid as e:  # e.g. a catalog format this version no longer accepts
        history.install(history.entry_files(last))
        raise UnifiedError(f"history entry {target.id} is not valid for this version of unified-ctl; "
                           f"nothing changed:\n{e}") from None
    from .generator import save_last_good

    save_last_good(new, reason=f"rollback to {target.id}")
    result = follow(sd, old, new, wait=wait)
    return result, {"from": last.to_dict(), "to": target.to_dict(), "removed_dropins": removed, "set_aside": saved}
