"""History of the catalogs that were live: every validated catalog the generator or
`unified-ctl apply|promote|rollback|backup restore` made live is kept here, so the previous
one can always be restored (`unified-ctl config rollback`).

An entry is a directory /etc/unified/.history/NNNNNN/ holding the catalog as it was
(unified.yaml + conf.d/*.yaml) and meta.json (time, reason, digest). Entries are
immutable; a new one is written only when the content differs from the newest (so repeated
daemon-reloads add nothing). The oldest are pruned beyond KEEP.

Kept under /etc, not /var: the generator may record at daemon-reload, and a rollback must
work when /var is what broke. Stdlib only: the generator imports this at every reload.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass

from unified_core import paths
from unified_core.errors import UnifiedError

KEEP = 30
MAIN = "unified.yaml"


@dataclass(frozen=True)
class Entry:
    id: int
    time: float
    reason: str
    digest: str
    files: tuple[str, ...]  # relative: unified.yaml, conf.d/10-x.yaml
    path: str

    @property
    def catalog(self) -> str:
        return os.path.join(self.path, MAIN)

    def to_dict(self) -> dict:
        return {"id": self.id, "time": self.time,
                "when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time)),
                "reason": self.reason, "digest": self.digest, "files": list(self.files), "path": self.path}


def catalog_files(main: str) -> dict[str, str]:
    """{relative name: absolute path} of a catalog as load_catalog reads it: the main file
    and the conf.d/*.yaml drop-ins beside it."""
    from unified_core.yamlsrc import dropin_paths

    out = {MAIN: main}
    for p in dropin_paths(os.path.join(os.path.dirname(os.path.abspath(main)), "conf.d")):
        out["conf.d/" + os.path.basename(p)] = p
    return out


def sources_files(sources) -> dict[str, str]:
    """The same mapping from a loaded Catalog's .sources (main first, then drop-ins)."""
    out = {MAIN: sources[0]}
    for p in sources[1:]:
        out["conf.d/" + os.path.basename(p)] = p
    return out


def digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        with open(files[rel], "rb") as f:
            data = f.read()
        h.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def entries() -> list[Entry]:
    base = paths.history_dir()
    try:
        names = sorted(n for n in os.listdir(base) if n.isdigit())
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        d = os.path.join(base, n)
        try:
            with open(os.path.join(d, "meta.json")) as f:
                meta = json.load(f)
            out.append(Entry(int(n), float(meta["time"]), str(meta["reason"]), str(meta["digest"]),
                             tuple(meta["files"]), d))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a half-written or damaged entry is not history
    return out


def newest() -> Entry | None:
    e = entries()
    return e[-1] if e else None


def get(entry_id: int) -> Entry:
    for e in entries():
        if e.id == entry_id:
            return e
    known = ", ".join(str(e.id) for e in entries()) or "none"
    raise UnifiedError(f"no catalog history entry {entry_id}; entries: {known}")


def record(files: dict[str, str], reason: str, keep: int = KEEP) -> Entry | None:
    """Keep this catalog (files: relative name → path) unless the newest entry holds the
    same content. Returns the new entry, or None when nothing changed."""
    d = digest(files)
    last = newest()
    if last is not None and last.digest == d:
        return None
    base = paths.history_dir()
    os.makedirs(base, mode=0o750, exist_ok=True)
    new_id = (last.id + 1) if last else 1
    while os.path.exists(os.path.join(base, f"{new_id:06d}")):
        new_id += 1  # a damaged entry dir we could not read still owns its number
    final = os.path.join(base, f"{new_id:06d}")
    tmp = os.path.join(base, f".tmp-{os.getpid()}-{new_id}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "conf.d"))
    for rel, src in files.items():
        shutil.copy2(src, os.path.join(tmp, rel))
    now, names = time.time(), sorted(files)
    meta = {"time": now, "reason": reason, "digest": d, "files": names}
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    os.rename(tmp, final)  # an entry appears whole or not at all
    prune(keep)
    return Entry(new_id, now, reason, d, tuple(names), final)


def prune(keep: int = KEEP) -> None:
    for e in entries()[:-keep] if keep > 0 else []:
        shutil.rmtree(e.path, ignore_errors=True)


def entry_files(entry: Entry) -> dict[str, str]:
    return {rel: os.path.join(entry.path, rel) for rel in entry.files}


def install(files: dict[str, str], etc: str | None = None) -> list[str]:
    """Make /etc/unified hold exactly this catalog: unified.yaml replaced, conf.d/*.yaml
    written, drop-ins not in `files` removed. Each file is replaced atomically (rename).
    Returns the drop-ins removed (the caller says so; the old ones are in history)."""
    etc = etc or paths.etc_dir()
    conf = os.path.join(etc, "conf.d")
    os.makedirs(conf, exist_ok=True)
    for rel, src in files.items():
        dest = os.path.join(etc, rel)
        tmp = dest + ".tmp-install"
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)  # the catalog is not secret; agents (user unified) read it
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.rename(tmp, dest)
    removed = []
    for cur in catalog_files(os.path.join(etc, MAIN)):
        if cur.startswith("conf.d/") and cur not in files:
            os.unlink(os.path.join(etc, cur))
            removed.append(cur)
    return removed


def rollback_target(live_digest: str | None) -> Entry:
    """The previous catalog: the newest entry whose content differs from the live one."""
    for e in reversed(entries()):
        if e.digest != live_digest:
            return e
    raise UnifiedError("no earlier catalog in the history to roll back to "
                       f"({paths.history_dir()} holds {len(entries())} entr{'y' if len(entries()) == 1 else 'ies'}); "
                       "a catalog is kept each time one becomes live (`unified-ctl apply`)")


# -- the catalog on trial (staged rollout) ------------------------------------------------
# `CONFIG=new.yaml unified-ctl profile switch core` copies the catalog it validated to
# /run/unified/trial/ and the generator renders that one instead of /etc/unified/unified.yaml
# until `config promote` (copies it to /etc/unified, kept in history) or `config abort`.
# /run is a tmpfs: a reboot drops the trial and boots the permanent catalog, so an untried
# change can never become permanent by accident.

def trial_catalog() -> str | None:
    """The main file of the catalog on trial, or None."""
    path = os.path.join(paths.trial_dir(), MAIN)
    return path if os.path.isfile(path) else None


def trial_meta() -> dict:
    try:
        with open(os.path.join(paths.trial_dir(), "meta.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def start_trial(files: dict[str, str], source: str) -> str:
    """Copy the catalog (relative name → path) to the trial dir, replacing any trial.
    Returns the trial's main file. Readable by the agents (they get its path as
    UNIFIED_CATALOG)."""
    dest = paths.trial_dir()
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    tmp = dest + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "conf.d"), mode=0o755)
    os.chmod(tmp, 0o755)
    for rel, src in files.items():
        shutil.copyfile(src, os.path.join(tmp, rel))
        os.chmod(os.path.join(tmp, rel), 0o644)
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump({"source": os.path.abspath(source), "time": time.time(), "digest": digest(files),
                   "files": sorted(files)}, f, indent=1)
    paths.replace_dir(tmp, dest)
    return os.path.join(dest, MAIN)


def end_trial() -> bool:
    """Drop the trial (after promote or abort). True when there was one."""
    dest = paths.trial_dir()
    if not os.path.exists(dest):
        return False
    shutil.rmtree(dest)
    return True
