"""systemd generator: catalog → units in the generator output dir (argv[1]).

Runs at boot and at every daemon-reload, early: no D-Bus, no network, /var may be missing,
/ may be read-only. It must never break boot: on an invalid catalog it renders the last
good one and says why (journal + /run/unified/generator.json for `unified-ctl`).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time

from unified_core import paths
from unified_core.errors import UnifiedError
from .render import Symlink, render

IDENT = "unified-system-generator"


def log(priority: int, message: str) -> None:
    """To the journal when it is up (daemon-reload), else the kernel log, else stderr."""
    payload = f"MESSAGE={message}\nPRIORITY={priority}\nSYSLOG_IDENTIFIER={IDENT}\n".encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(payload, "/run/systemd/journal/socket")
        return
    except OSError:
        pass
    try:
        with open("/dev/kmsg", "w") as k:
            k.write(f"<{priority}>{IDENT}: {message}\n")
        return
    except OSError:
        pass
    print(f"<{priority}>{IDENT}: {message}", file=sys.stderr)


def read_selected(profiles) -> str | None:
    try:
        with open(paths.selected_profile_file()) as f:
            name = f.read().strip()
    except OSError:
        return None
    return name if name in profiles else None


def save_last_good(cat, reason: str = "daemon-reload") -> None:
    """Copy the validated catalog (and its drop-ins) where a broken edit can't reach it,
    and keep it in the catalog history (`unified-ctl config rollback` restores the previous)."""
    dest = paths.last_good_dir()
    if os.path.realpath(os.path.dirname(cat.path)) == os.path.realpath(dest):
        return
    tmp = dest + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "conf.d"))
    shutil.copy2(cat.sources[0], os.path.join(tmp, "unified.yaml"))
    for src in cat.sources[1:]:
        shutil.copy2(src, os.path.join(tmp, "conf.d", os.path.basename(src)))
    _private(tmp)
    paths.replace_dir(tmp, dest)
    from . import config_history

    config_history.record(config_history.sources_files(cat.sources), reason)


def _private(top: str) -> None:
    """0750/0640, group unified (ServiceRegistry reads the last good catalog as user unified
    when the live one is broken): not for everyone, unlike the catalog itself
    (docs/SECURITY.md, file modes). Only root may chown: as another user, modes only."""
    try:
        import grp

        gid = grp.getgrnam("unified").gr_gid if os.geteuid() == 0 else -1
    except KeyError:  # the package's sysusers has not run (tests, a bare tree)
        gid = -1
    for d, _, files in os.walk(top):
        os.chmod(d, 0o750)
        if gid >= 0:
            os.chown(d, 0, gid)
        for f in files:
            os.chmod(os.path.join(d, f), 0o640)
            if gid >= 0:
                os.chown(os.path.join(d, f), 0, gid)


def load_good(catalog_file: str, store_cache: bool = False):
    """(catalog, used_last_good, problems text). catalog None if neither loads.
    store_cache: the generator's own run; the agents' starts read this parse instead of the
    YAML (catalog_cache.py). Other callers (rollout, dry runs) change nothing."""
    from unified_core.catalog import load_catalog

    try:
        return load_catalog(catalog_file, env={}, store_cache=store_cache), False, ""
    except UnifiedError as e:
        reason = str(e)
    last = os.path.join(paths.last_good_dir(), "unified.yaml")
    try:
        return load_catalog(last, env={}), True, reason
    except UnifiedError as e:
        return None, True, reason + "\nlast good catalog unusable too: " + str(e)


def write_files(outdir: str, files: dict) -> None:
    for rel, content in files.items():
        path = os.path.join(outdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(content, Symlink):
            target = os.path.join(outdir, content.target)
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(target, path)
        else:
            with open(path, "w") as f:
                f.write(content)


def write_status(status: dict) -> None:
    try:
        os.makedirs(paths.run_dir(), exist_ok=True)
        tmp = paths.generator_status_file() + ".tmp"
        with open(tmp, "w") as f:
            json.dump(status, f)
        os.rename(tmp, paths.generator_status_file())
    except OSError:
        pass


def _files_digest(catalog_file: str) -> str | None:
    from .config_history import catalog_files, digest

    try:
        return digest(catalog_files(catalog_file))
    except OSError:
        return None


def _token_present() -> bool:
    return os.path.isfile(paths.token_file())


def token_for_render() -> str | None:
    """The token file to render the standard-input drop-in for, as the generator does:
    the path while the file exists. Whoever renders to compare with what systemd reads
    (changes.rendered) must pass the same, or every agent looks stale."""
    return paths.token_file() if _token_present() else None


def render_key(catalog_file: str, selected: str, ncpu: int, files_digest: str | None = None) -> str | None:
    """Everything the rendered units depend on, as one digest: this version of the renderer,
    the catalog's files (main and drop-ins, by content), the selected profile and the CPU
    count, and whether the fleet token exists (it adds a drop-in). Equal keys render equal units, so a daemon-reload would change nothing (a switch
    skips it: operations.py). None when the files can't be read."""
    import hashlib

    from . import __version__

    files = files_digest or _files_digest(catalog_file)
    if files is None:
        return None
    key = "\0".join((__version__, os.path.realpath(catalog_file), selected, str(ncpu), files,
                      str(_token_present())))
    return hashlib.sha256(key.encode()).hexdigest()


def read_status() -> dict:
    """What the generator wrote when it last ran (write_status); {} if nothing."""
    try:
        with open(paths.generator_status_file()) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def units_current(selected: str) -> bool:
    """Whether the units systemd has loaded are what the generator would render now with
    profile `selected`: it last rendered the live catalog (the trial, else the permanent
    one; not a fallback to the last good one) with the same render_key."""
    from .config_history import trial_catalog

    status = read_status()
    if not status.get("rendered") or status.get("last_good") or not status.get("render_key"):
        return False
    live = trial_catalog() or paths.catalog_file()
    return status["render_key"] == render_key(live, selected, os.cpu_count() or 1)


def generate(outdir: str, catalog_file: str | None = None, ncpu: int | None = None) -> dict:
    # A catalog on trial (/run/unified/trial, staged rollout) wins over the permanent one
    # until promoted or aborted; /run is empty after a reboot, so the permanent one returns.
    from .config_history import trial_catalog

    trial = None if catalog_file else trial_catalog()
    catalog_file = catalog_file or trial or paths.catalog_file()
    started = time.monotonic()
    ncpu = ncpu or os.cpu_count() or 1
    # the files' digest before they are read: an edit meanwhile makes the key stale (the
    # next switch reloads), never passes an unrendered file for rendered
    files_digest = _files_digest(catalog_file)
    cat, fell_back, reason = load_good(catalog_file, store_cache=True)
    status = {"time": time.time(), "catalog": catalog_file, "last_good": fell_back, "problems": reason,
              "rendered": False, "trial": trial}
    if cat is None:
        log(2, f"{catalog_file} is invalid and no last good catalog exists; no agents are "
               f"configured until it is fixed:\n{reason}")
        write_status(status)
        return status
    if fell_back:
        log(3, f"{catalog_file} is invalid; running the last good catalog instead:\n{reason}")
    selected = read_selected(cat.profiles) or cat.settings.profile
    files = render(cat, selected, ncpu, token_for_render())
    write_files(outdir, files)
    if not fell_back and not trial:  # a trial is not permanent: never the fallback
        try:
            save_last_good(cat)
        except OSError:
            pass  # read-only / at early boot: `unified-ctl apply` saves it at runtime
    status.update(rendered=True, profile=selected, files=len(files), source=cat.path,
                  render_key=None if fell_back else render_key(catalog_file, selected, ncpu, files_digest),
                  seconds=round(time.monotonic() - started, 4))
    write_status(status)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(f"usage: {IDENT} NORMAL_DIR [EARLY_DIR LATE_DIR]", file=sys.stderr)
        return 0
    try:
        generate(argv[0])
    except Exception as e:  # never fail boot; say why
        log(2, f"internal error, no agents configured: {type(e).__name__}: {e}")
    return 0
