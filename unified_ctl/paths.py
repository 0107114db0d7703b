"""Where unified-system keeps its files. UNIFIED_ETC/UNIFIED_RUN relocate them for tests."""
from __future__ import annotations

import os


def etc_dir() -> str:
    return os.environ.get("UNIFIED_ETC", "/etc/unified")


def catalog_file() -> str:
    return os.path.join(etc_dir(), "unified.yaml")


def last_good_dir() -> str:
    """Last validated catalog. On the root file system under /etc: the generator reads it
    at early boot, when /var may not be mounted yet."""
    return os.path.join(etc_dir(), ".last-good")


def selected_profile_file() -> str:
    return os.path.join(etc_dir(), "selected-profile")


def run_dir() -> str:
    return os.environ.get("UNIFIED_RUN", "/run/unified")


def generator_status_file() -> str:
    return os.path.join(run_dir(), "generator.json")


def runtime_unit_dir() -> str:
    """Runtime (until reboot) unit drop-ins: DISABLE_AUTO_RESTART, env overrides."""
    return os.environ.get("UNIFIED_RUNTIME_UNITS", "/run/systemd/system")
