"""Where unified-system keeps its files. UNIFIED_ETC/UNIFIED_RUN_DIR relocate them for tests.

(Not UNIFIED_RUN: inside an agent that names its run spec, e.g. builtin:service_registry.)
"""
from __future__ import annotations

import os


def etc_dir() -> str:
    return os.environ.get("UNIFIED_ETC", "/etc/unified")


def catalog_file() -> str:
    return os.path.join(etc_dir(), "unified.yaml")


def token_file() -> str:
    """The fleet token (docs/SECURITY.md): root-only, created at install."""
    return os.path.join(etc_dir(), "token")


def last_good_dir() -> str:
    """Last validated catalog. On the root file system under /etc: the generator reads it
    at early boot, when /var may not be mounted yet."""
    return os.path.join(etc_dir(), ".last-good")


def selected_profile_file() -> str:
    return os.path.join(etc_dir(), "selected-profile")


def run_dir() -> str:
    return os.environ.get("UNIFIED_RUN_DIR", "/run/unified")


def generator_status_file() -> str:
    return os.path.join(run_dir(), "generator.json")


def runtime_unit_dir() -> str:
    """Runtime (until reboot) unit drop-ins: DISABLE_AUTO_RESTART, env overrides."""
    return os.environ.get("UNIFIED_RUNTIME_UNITS", "/run/systemd/system")


def generator_dir() -> str:
    """Where systemd has the generator write (its "normal" directory)."""
    return os.environ.get("UNIFIED_GENERATOR_DIR", "/run/systemd/generator")


def history_dir() -> str:
    """Catalogs that were live, newest last (`unified-ctl config history|rollback`). Under
    /etc beside the catalog: a rollback must work when /var is the broken part."""
    return os.path.join(etc_dir(), ".history")


def trial_dir() -> str:
    """A catalog on trial (staged rollout): read by the generator before the permanent one.
    Under /run, so a reboot returns to the permanent catalog."""
    return os.path.join(run_dir(), "trial")


def state_dir() -> str:
    """The agents' StateDirectory= (SQLite databases of the twin, memory, knowledge base)."""
    return os.environ.get("UNIFIED_STATE_DIR", "/var/lib/unified")


def backup_dir() -> str:
    """Default place of `unified-ctl backup create` archives (Debian's /var/backups)."""
    return os.environ.get("UNIFIED_BACKUP_DIR", "/var/backups/unified")


def reports_dir() -> str:
    """Weekly/capacity reports and the capacity samples they keep (root's, not the agents')."""
    return os.environ.get("UNIFIED_REPORTS_DIR", "/var/lib/unified-system/reports")


def monitoring_dir() -> str:
    """What `monitoring setup` changed in other packages' files, as it was: `monitoring remove`."""
    return os.environ.get("UNIFIED_MONITORING_DIR", "/var/lib/unified-system/monitoring")


def replace_dir(tmp: str, dest: str) -> None:
    """Put the fully written directory `tmp` in the place of `dest`: two renames, so `dest`
    is at every moment either the old directory or the new one, never half of each."""
    import shutil

    old = dest + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(dest):
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
