"""Catalog changes that reach the running fleet: staged rollout (trial → promote | abort)
and rollback to an earlier catalog.

Each ends with the running profile following the new catalog through operations.switch (the
one switch, `follow`): the generator renders it (daemon-reload), the selected profile is re-planned against it (agents that left stop,
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
from dataclasses import dataclass

from unified_core import paths, profiles
from . import config_history as history
from . import operations
from .operations import SwitchResult
from unified_core.catalog import load_catalog
from unified_core.errors import CatalogInvalid, UnifiedError
from unified_core.model import Catalog


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def follow(sd, old: Catalog, new: Catalog, profile: str | None = None, wait: bool = True,
           timeout: float | None = None, progress: profiles.Progress | None = None) -> SwitchResult:
    """Make the running fleet match `new` (already in place for the generator): the profile
    re-planned against it, switched to (operations.switch: agents that left stop, new ones
    start, running ones whose units changed restart). progress: while it waits (profiles.Progress)."""
    target = profile or profiles.current_profile(new)
    return operations.switch(sd, new, target, old=old, wait=wait, timeout=timeout,
                             selected=profiles.read_selected(), progress=progress)


def follow_dict(r: SwitchResult) -> dict:
    """A catalog change's result as `config rollback|promote|abort --json` and backup restore
    print it."""
    d = {"profile": r.plan.new, "ok": r.ok, "stopped": list(r.plan.stop_agents) + list(r.gone),
         "started": list(r.plan.start_agents), "restarted": list(r.restarted.agents),
         "sockets_restarted": list(r.restarted.sockets), "why_restarted": dict(r.restarted.why),
         "notes": []}
    if r.wait is not None:
        d["seconds"] = r.wait.seconds
        d["not_ready"] = [{"name": a.agent, "agent": a.agent, "state": a.state, "reason": a.reason} for a in r.wait.failed]
    return d


def preview_follow(sd, old: Catalog | None, new: Catalog, profile: str | None = None) -> dict:
    """What follow() would do, changing nothing (the --dry-run of rollback and backup restore):
    the profile's agents that would start, those that would stop (outside it, or gone from the
    catalog), the running ones that would restart (and why)."""
    from . import changes

    name = profile or profiles.current_profile(new)
    p, clashes, running = operations.plan(sd, new, name, old, profiles.read_selected())
    stale = changes.between(old, new) if old is not None else {}
    return {"profile": name, "start": list(p.start_agents),
            "stop": list(p.stop_agents) + sorted(a for a in running if a not in new.agents),
            "restart": {a: stale[a] for a in p.keep_agents if a in stale},
            "port_clashes": [str(c) for c in clashes]}


def as_installed(cat: Catalog) -> Catalog:
    """A catalog read from elsewhere (a history entry, a backup being verified) as it will be
    once installed in /etc/unified: its units name that path, so a preview must too."""
    import dataclasses

    etc = paths.etc_dir()
    return dataclasses.replace(cat, path=paths.catalog_file(), sources=(paths.catalog_file(), *(
        os.path.join(etc, "conf.d", os.path.basename(s)) for s in cat.sources[1:])))


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


def _guard_unapplied(force: bool, what: str, dry_run: bool = False) -> list[str]:
    """Refuse unapplied edits of /etc/unified, or (force) set them aside; returns the files set
    aside (dry_run: those that would be, nothing renamed)."""
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
            if not dry_run:
                os.rename(path, dest)
            saved.append(dest)
    return saved


# -- trial (staged rollout) ----------------------------------------------------------------
@dataclass
class Trial:
    old: Catalog | None  # live before the trial, as rendered (None: no valid catalog was live)
    new: Catalog  # the catalog named by CONFIG/--config, validated
    source: str


def choose_catalog(source: str | None) -> tuple[str, Trial | None]:
    """Which catalog `profile switch` uses: (its path, the trial it starts or None). source
    (its $CONFIG, the runbook's staged rollout) naming a catalog other than the live one
    starts a trial of it (validated here: CatalogInvalid before anything is touched);
    otherwise the live catalog: the active trial when there is one (a plain switch keeps
    trying it), else the permanent one. Nothing else starts a trial."""
    trial = history.trial_catalog()
    if not source or _same(source, paths.catalog_file()) or (trial and _same(source, trial)):
        return trial or paths.catalog_file(), None
    new = load_catalog(source)
    try:
        old = load_live()
    except UnifiedError:
        old = None
    return source, Trial(old=old, new=new, source=source)


def missing_dropins(trial: Trial) -> list[str]:
    """The drop-ins of /etc/unified/conf.d the trial does not have (promote would remove them)."""
    files = history.sources_files(trial.new.sources)
    perm = {k for k in history.catalog_files(paths.catalog_file()) if k.startswith("conf.d/")}
    return sorted(perm - set(files))


def begin_trial(trial: Trial) -> Catalog:
    """Put the trial in place for the generator. Returns the catalog as the agents will see it."""
    return load_catalog(history.start_trial(history.sources_files(trial.new.sources), trial.source))


def promote(sd, force: bool = False, wait: bool = True,
            progress: profiles.Progress | None = None) -> tuple[SwitchResult, dict]:
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
    result = follow(sd, tried, perm, wait=wait, progress=progress)
    newest = history.newest()
    return result, {"source": meta.get("source"), "removed_dropins": removed, "set_aside": saved,
                    "history": newest.to_dict() if newest else None}


def abort(sd, wait: bool = True, progress: profiles.Progress | None = None) -> SwitchResult:
    if not history.trial_catalog():
        raise UnifiedError("no catalog is on trial")
    tried = load_live()
    history.end_trial()
    return follow(sd, tried, load_live(), wait=wait, progress=progress)


def _rollback_from_to(entry_id: int | None) -> tuple[history.Entry, history.Entry]:
    """(the live history entry, the one to restore), or why a rollback cannot be done."""
    if history.trial_catalog():
        raise UnifiedError("a catalog is on trial; `unified-ctl config abort` returns to the permanent one "
                           "(rollback acts on the permanent catalog)")
    last = history.newest()
    if last is None:
        raise UnifiedError(f"no catalog history yet in {paths.history_dir()}: a catalog is kept each time one "
                           "becomes live (`unified-ctl apply`)")
    return last, history.get(entry_id) if entry_id is not None else history.rollback_target(last.digest)


def _not_valid(target: history.Entry, e: CatalogInvalid) -> UnifiedError:
    return UnifiedError(f"history entry {target.id} is not valid for this version of unified-ctl; "
                        f"nothing changed:\n{e}")


def rollback(sd, entry_id: int | None = None, force: bool = False, wait: bool = True,
             progress: profiles.Progress | None = None) -> tuple[SwitchResult, dict]:
    last, target = _rollback_from_to(entry_id)
    old = load_live()
    saved = _guard_unapplied(force, "`unified-ctl config rollback`")
    removed = history.install(history.entry_files(target))
    try:
        new = load_catalog(paths.catalog_file(), env={})
    except CatalogInvalid as e:  # e.g. a catalog format this version no longer accepts
        history.install(history.entry_files(last))
        raise _not_valid(target, e) from None
    from .generator import save_last_good

    save_last_good(new, reason=f"rollback to {target.id}")
    result = follow(sd, old, new, wait=wait, progress=progress)
    return result, {"from": last.to_dict(), "to": target.to_dict(), "removed_dropins": removed, "set_aside": saved}


def rollback_preview(sd, entry_id: int | None = None, force: bool = False) -> dict:
    """What rollback() would do, changing nothing (--dry-run): the same refusals, the entry it
    would restore, the drop-ins it would remove, what the running profile would do."""
    last, target = _rollback_from_to(entry_id)
    old = load_live()
    saved = _guard_unapplied(force, "`unified-ctl config rollback`", dry_run=True)
    files = history.entry_files(target)
    try:  # the entry as kept in history: its main file with its conf.d/ beside it
        new = load_catalog(files[history.MAIN], env={})
    except CatalogInvalid as e:
        raise _not_valid(target, e) from None
    removed = sorted(rel for rel in history.catalog_files(paths.catalog_file())
                     if rel.startswith("conf.d/") and rel not in files)
    return {"dry_run": True, "from": last.to_dict(), "to": target.to_dict(), "removed_dropins": removed,
            "set_aside": saved, **preview_follow(sd, old, as_installed(new))}
