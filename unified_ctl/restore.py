"""Restore a backup archive (backup.py): verify everything first, then stop the agents that
hold state files open, install, and bring the fleet back on the restored catalog.

Only the agents that have a file under /var/lib/unified open are stopped (found from
/proc/PID/fd and the PID's cgroup, i.e. its unit), with their sockets, so a connection
cannot re-activate one onto a half-restored database. The rest of the fleet keeps running
and follows the restored catalog like after a rollback (restart what changed).
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import time

from . import backup, rollout
from unified_core import paths, profiles
from unified_core.catalog import load_catalog
from unified_core.errors import UnifiedError

UNIT_RE = re.compile(r"(unified-(?:agent|backend)@([^/]+)\.service)")


def unit_of_pid(pid: int) -> tuple[str, str] | None:
    """(unit, agent) of a process from its cgroup, or None when it is not one of ours."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return None
    m = UNIT_RE.search(text)
    return (m.group(1), m.group(2)) if m else None


def state_holders(state_dir: str) -> tuple[dict[str, set[int]], list[str]]:
    """({agent: pids} of our agents with a file under state_dir open, ["PID comm"] of any
    other process that has one open)."""
    prefix = os.path.realpath(state_dir).rstrip("/") + "/"
    agents: dict[str, set[int]] = {}
    others = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        holds = False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}").startswith(prefix):
                    holds = True
                    break
            except OSError:
                continue
        if not holds:
            continue
        owner = unit_of_pid(int(entry))
        if owner:
            agents.setdefault(owner[1], set()).add(int(entry))
        else:
            try:
                with open(f"/proc/{entry}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = "?"
            others.append(f"{entry} {comm}")
    return agents, others


def _ids(entry: dict, fallback: tuple[int, int]) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(entry.get("owner", "")).pw_uid
    except KeyError:
        uid = fallback[0]
    try:
        gid = grp.getgrnam(entry.get("group", "")).gr_gid
    except KeyError:
        gid = fallback[1]
    return uid, gid


def _state_ids(state: str) -> tuple[int, int]:
    """Owner of restored state: the agents' user (unified) when it exists."""
    try:
        pw = pwd.getpwnam("unified")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        st = os.stat(state) if os.path.exists(state) else os.stat(os.path.dirname(state) or "/")
        return st.st_uid, st.st_gid


def _makedirs(path: str, base: str, uid: int, gid: int, mode: int) -> None:
    """Create path's missing directories below base with the given owner and mode."""
    missing = []
    p = path
    while not os.path.isdir(p) and os.path.realpath(p) != os.path.realpath(base):
        missing.append(p)
        p = os.path.dirname(p)
    if not os.path.isdir(base):
        missing.append(base)
    for d in reversed(missing):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, mode)
        if os.geteuid() == 0:
            os.chown(d, uid, gid)


def _install(staged: str, dest: str, uid: int, gid: int, mode: int) -> None:
    tmp = dest + ".tmp-restore"
    shutil.copyfile(staged, tmp)
    if os.geteuid() == 0:
        os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.rename(tmp, dest)


def restore(archive: str, sd, allow_other_host: bool = False, wait: bool = True,
            progress: profiles.Progress | None = None) -> dict:
    """progress: while the profile gets ready on the restored catalog (profiles.Progress)."""
    started = time.monotonic()
    v = backup.verify(archive, allow_other_host)  # raises before anything is touched
    try:
        return _restore(v, sd, wait, started, progress)
    finally:
        v.cleanup()


def _live(state: str):
    """(the catalog live now or None, the permanent one when none is, the agents holding state
    files open, other processes holding some)."""
    try:
        old = rollout.load_live()
    except UnifiedError:
        old = None
    holders, others = state_holders(state)
    try:
        live_cat = old or load_catalog(paths.catalog_file(), env={})
    except UnifiedError:
        live_cat = None
    return old, live_cat, sorted(a for a in holders if live_cat and a in live_cat.agents), others


def _dest(m: dict, e: dict, etc: str, state: str) -> str:
    """Where an archived file goes: under /etc/unified (config) or the state directory."""
    return os.path.join(etc, os.path.relpath(e["path"], m["etc"])) if e["kind"] == "config" else \
        os.path.join(state, os.path.relpath(e["path"], m["state"]))


def _dropins_not_in(archived_cfg: set[str]) -> list[tuple[str, str]]:
    """(name, path) of the drop-ins of /etc/unified the archive does not have: a restore removes them."""
    from .config_history import catalog_files

    return [(rel, p) for rel, p in catalog_files(paths.catalog_file()).items()
            if rel.startswith("conf.d/") and p not in archived_cfg]


def _kept(state: str, archived: set[str]) -> list[str]:
    """State files the archive does not have (kept as they are)."""
    return sorted(p for p in (os.path.join(state, r) for r in backup._walk(state))
                  if p not in archived and not p.endswith(backup.SIDE_FILES))


def preview(archive: str, sd, allow_other_host: bool = False) -> dict:
    """What restore() would do, changing nothing (--dry-run): the archive verified completely,
    the files it would install and remove, the agents it would stop (they hold state open),
    what the profile would do on the archive's catalog."""
    from .config_history import trial_catalog

    v = backup.verify(archive, allow_other_host)
    try:
        m = v.manifest
        etc, state = paths.etc_dir(), paths.state_dir()
        old, live_cat, stopped, others = _live(state)
        dest = {k: [_dest(m, e, etc, state) for e in m["files"] if e["kind"] == k] for k in ("config", "state")}
        main = next(e for e in m["files"] if e["kind"] == "config" and e["path"] == os.path.join(m["etc"], "unified.yaml"))
        new = load_catalog(v.staged(main), env={})  # with the archive's drop-ins beside it, as verify read it
        target = m.get("profile") if m.get("profile") in new.profiles else None
        return {"dry_run": True, "archive_host": m.get("host"), "created": m.get("created"),
                "install": dest, "removed_dropins": [rel for rel, _ in _dropins_not_in(set(dest["config"]))],
                "kept_not_in_archive": _kept(state, set(dest["state"])), "stop": stopped, "other_holders": others,
                "trial_ended": trial_catalog() is not None,
                "follow": rollout.preview_follow(sd, old or new, rollout.as_installed(new), profile=target)}
    finally:
        v.cleanup()


def _restore(v: backup.Verified, sd, wait: bool, started: float, progress: profiles.Progress | None) -> dict:
    m = v.manifest
    etc, state = paths.etc_dir(), paths.state_dir()
    old, live_cat, stopped, others = _live(state)
    was: dict = {}
    if stopped and live_cat is not None:  # (stopped: live_cat is not None)
        units = profiles.units_of(live_cat, stopped)
        was = sd.show([live_cat.agents[a].service for a in stopped], ("Id", "ActiveState"))
        sd.stop(units)
    installed = {"config": 0, "state": 0}
    # config: root-owned, modes as archived (no set-id bits)
    for e in (f for f in m["files"] if f["kind"] == "config"):
        dest = _dest(m, e, etc, state)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        uid, gid = _ids(e, (0, 0))
        _install(v.staged(e), dest, uid, gid, int(e.get("mode", "0644"), 8) & 0o755)
        installed["config"] += 1
    # the catalog is exactly the archive's: drop-ins added since are removed (history keeps them)
    removed = []
    for rel, p in _dropins_not_in({_dest(m, e, etc, state) for e in m["files"] if e["kind"] == "config"}):
        os.unlink(p)
        removed.append(rel)
    # state: owner unified, at most 0640 / 0750 (agent memory is private)
    suid, sgid = _state_ids(state)
    _makedirs(state, state, suid, sgid, 0o750)
    for e in (f for f in m["files"] if f["kind"] == "state"):
        dest = _dest(m, e, etc, state)
        _makedirs(os.path.dirname(dest), state, suid, sgid, 0o750)
        for side in backup.SIDE_FILES:  # a stale WAL would be replayed into the restored database
            try:
                os.unlink(dest + side)
            except FileNotFoundError:
                pass
        _install(v.staged(e), dest, suid, sgid, int(e.get("mode", "0640"), 8) & 0o640)
        installed["state"] += 1
    kept = _kept(state, {_dest(m, e, etc, state) for e in m["files"] if e["kind"] == "state"})
    # the restored catalog becomes live (kept in history) and the fleet follows it; a trial
    # would hide it from the generator, so the restore ends it
    from .config_history import end_trial

    trial_ended = end_trial()
    new = load_catalog(paths.catalog_file(), env={})
    from .generator import save_last_good

    save_last_good(new, reason="backup restore")
    target = m.get("profile") if m.get("profile") in new.profiles else None
    result = rollout.follow(sd, old or new, new, profile=target, wait=False)
    back = [a for a in stopped if a in new.agents and live_cat is not None
            and was.get(live_cat.agents[a].service, {}).get("ActiveState") in ("active", "activating")]
    if back:  # holders outside the profile (started by hand) come back too
        units = profiles.units_of(new, back)
        sd.reset_failed(units)
        sd.start(units, no_block=True)
    if wait:
        import dataclasses

        name = result.plan.new
        waited = profiles.wait_ready(new, sd, name, new.profiles[name].start_timeout_s, progress)
        result = dataclasses.replace(result, wait=waited)
    return {"archive_host": m.get("host"), "created": m.get("created"), "profile": result.plan.new,
            "installed": installed, "removed_dropins": removed, "trial_ended": trial_ended, "stopped": stopped, "other_holders": others, "kept_not_in_archive": kept,
            "follow": rollout.follow_dict(result), "ok": result.ok, "seconds": round(time.monotonic() - started, 3)}
