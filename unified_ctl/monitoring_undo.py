"""`unified-ctl monitoring remove`: put back what `monitoring setup` changed, byte for byte.

Before setup first replaces a file of another package (prometheus.yml, alertmanager.yml,
/etc/default/prometheus-alertmanager) it keeps the file as it was, or the fact that there
was none, in the state directory (paths.monitoring_dir(): /var/lib/unified-system/monitoring):

  manifest.json   {"files": {PATH: {"existed", "copy", "mode", "uid", "gid", "written",
                                     "unit", "reread"}},
                   "dirs": {PATH: {"unit", "reread"}} (directories setup created),
                   "started": {UNIT: enabled before setup?} (services setup started)}
  N.orig          the original bytes of a file

Only the first original of a file is kept: a later setup (the hub moved to another port)
replaces the file again, and remove still restores the file as it was before any setup.
"unit" reads the file (or directory) and takes a change at a "reload" or only at a
"restart". "written" is the digest of what setup wrote last: a file changed since (the operator edited
it) is restored all the same, and its current content kept next to it as
PATH.unified-removed-STAMP, which remove reports.

remove restores every file (atomically, with its owner and mode), deletes the files and
directories setup created, forgets the state, stops the services setup started (and
disables them unless they were enabled before), and reloads the other running daemons
(Alertmanager restarts when its ARGS changed: they are read at start). Nothing kept: a
clear refusal.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field

from unified_core import paths
from unified_core.errors import UnifiedError

MANIFEST = "manifest.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(state_dir: str) -> dict:
    try:
        with open(os.path.join(state_dir, MANIFEST)) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {"files": {}, "dirs": {}, "started": {}}
    except (OSError, ValueError) as e:
        raise UnifiedError(f"cannot read {os.path.join(state_dir, MANIFEST)}: {e}") from None
    return {"files": dict(doc.get("files") or {}), "dirs": dict(doc.get("dirs") or {}),
            "started": dict(doc.get("started") or {})}


def _write_manifest(state_dir: str, doc: dict) -> None:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, MANIFEST)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)


def remember_file(state_dir: str | None, path: str, new: bytes, unit: str,
                  reread: str = "reload") -> None:
    """Called by setup just before it replaces `path` with `new`: keep the original (once).
    unit: the service reading the file; reread: "reload" or "restart" (read at start only)."""
    state_dir = state_dir or paths.monitoring_dir()
    doc = _read_manifest(state_dir)
    entry = doc["files"].get(path)
    if entry is None:
        entry = {"existed": os.path.exists(path)}
        if entry["existed"]:
            st = os.stat(path)
            entry.update(copy=f"{len(doc['files'])}.orig", mode=st.st_mode & 0o7777,
                         uid=st.st_uid, gid=st.st_gid)
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
            copy = os.path.join(state_dir, entry["copy"])
            shutil.copyfile(path, copy + ".tmp")
            os.replace(copy + ".tmp", copy)
        doc["files"][path] = entry
    entry.update(written=_digest(new), unit=unit, reread=reread)
    _write_manifest(state_dir, doc)


def remember_dir(state_dir: str | None, path: str, unit: str, reread: str = "restart") -> None:
    """Setup created this directory (for `unit`): remove deletes it."""
    state_dir = state_dir or paths.monitoring_dir()
    doc = _read_manifest(state_dir)
    doc["dirs"].setdefault(path, {"unit": unit, "reread": reread})
    _write_manifest(state_dir, doc)


def remember_started(state_dir: str | None, unit: str, enabled_before: bool) -> None:
    """Setup enabled and started this service: remove stops it (and disables it again)."""
    state_dir = state_dir or paths.monitoring_dir()
    doc = _read_manifest(state_dir)
    doc["started"].setdefault(unit, enabled_before)
    _write_manifest(state_dir, doc)


@dataclass
class RemoveResult:
    restored: list = field(default_factory=list)    # files put back as they were
    deleted: list = field(default_factory=list)     # files and directories setup created
    stopped: list = field(default_factory=list)     # services setup started
    kept: dict = field(default_factory=dict)        # file changed since setup -> its copy
    actions: list = field(default_factory=list)     # services reloaded/restarted
    warnings: list = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "restored": self.restored, "deleted": self.deleted,
                "stopped": self.stopped,
                "kept": self.kept, "actions": self.actions, "warnings": self.warnings}


def plan(state_dir: str | None = None) -> RemoveResult:
    """What remove would do (nothing is changed); UnifiedError when there is nothing to undo."""
    state_dir = state_dir or paths.monitoring_dir()
    doc = _read_manifest(state_dir)
    if not doc["files"] and not doc["dirs"] and not doc["started"]:
        raise UnifiedError(f"nothing to restore: `unified-ctl monitoring setup` has changed no "
                           f"file here (no record in {state_dir})")
    res = RemoveResult(dry_run=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path, entry in doc["files"].items():
        (res.restored if entry["existed"] else res.deleted).append(path)
        try:
            with open(path, "rb") as f:
                current = _digest(f.read())
        except FileNotFoundError:
            continue
        if current != entry.get("written"):
            res.kept[path] = f"{path}.unified-removed-{stamp}"
    res.deleted += [d for d in doc["dirs"] if os.path.isdir(d)]
    res.stopped = list(doc["started"])
    for path, copy in res.kept.items():
        res.warnings.append(f"{path} changed since `monitoring setup` wrote it: its current "
                            f"content is kept as {copy}")
    return res


def remove(sd, *, state_dir: str | None = None, dry_run: bool = False, start: bool = True,
           settle_s: float = 3.0) -> RemoveResult:
    """Restore (see the module's doc); start=False: the files only, no service touched."""
    state_dir = state_dir or paths.monitoring_dir()
    res = plan(state_dir)
    if dry_run:
        return res
    res.dry_run = False
    doc = _read_manifest(state_dir)
    for path, copy in res.kept.items():
        shutil.copy2(path, copy)
    for path, entry in doc["files"].items():
        if not entry["existed"]:
            if os.path.exists(path):
                os.unlink(path)
            continue
        tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.unified-restore")
        shutil.copyfile(os.path.join(state_dir, entry["copy"]), tmp)
        os.chmod(tmp, entry["mode"])
        try:
            os.chown(tmp, entry["uid"], entry["gid"])
        except PermissionError:
            pass
        os.replace(tmp, path)
    for d in doc["dirs"]:
        shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(state_dir)
    if start:
        rereads = _restart_services(sd, res, doc)
        if res.actions:
            time.sleep(settle_s)
        for unit in rereads:   # a daemon that does not take its old file back: say so
            if not sd.is_active(unit):
                tail = "\n".join(sd.journal_tail([unit], 5))
                res.warnings.append(f"{unit} is not running after the restore; its last log "
                                    f"lines:\n{tail}")
    return res


def _restart_services(sd, res: RemoveResult, doc: dict) -> list[str]:
    """Stop what setup started; reload or restart the other running readers of what changed.
    → the units reloaded or restarted."""
    for unit, enabled_before in doc["started"].items():
        if enabled_before:
            sd.stop([unit])
            res.actions.append(f"stopped {unit} (setup started it)")
        else:
            sd.disable([unit], now=True)
            res.actions.append(f"stopped and disabled {unit} (setup enabled and started it)")
    how: dict[str, str] = {}
    for entry in [*doc["files"].values(), *doc["dirs"].values()]:
        unit = entry.get("unit")
        if unit and unit not in doc["started"] and how.get(unit) != "restart":
            how[unit] = entry.get("reread", "reload")
    done = []
    for unit, reread in how.items():
        if not sd.is_active(unit):
            continue
        if reread == "restart":
            sd.restart([unit])
        else:
            sd.reload([unit])
        res.actions.append(f"{'restarted' if reread == 'restart' else 'reloaded'} {unit}")
        done.append(unit)
    return done
