"""Engine presence checks: a missing engine is one line naming the package to install.

Raised as ConfigError from on_start(): the SDK exits 2, which the unit template lists in
RestartPreventExitStatus, so systemd does not restart an agent that cannot work.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from typing import Any

from unified_agents.config import ConfigError


def need_module(agent: str, module: str, package: str, what: str):
    """Import `module` or raise ConfigError naming the Debian `package`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"{agent} needs {what} (Python module {module!r}: {e}); install the "
                          f"Debian package {package} (apt install {package})") from None


def need_installed(agent: str, module: str, package: str, what: str) -> None:
    """need_module without the import: only finds `module` (importlib.util.find_spec).

    For an always-on agent whose start does not use the module: importing numpy costs
    ~100 ms of CPU and ~15 MB of memory in every agent that merely might convert audio,
    while a profile's agents start together on 2 CPUs. A missing package still fails the
    start with the same line; only a broken installation shows at the first task.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError) as e:
        raise ConfigError(f"{agent} needs {what} (Python module {module!r}: {e}); install the "
                          f"Debian package {package} (apt install {package})") from None
    if not found:
        raise ConfigError(f"{agent} needs {what} (Python module {module!r} is not installed); "
                          f"install the Debian package {package} (apt install {package})")


class Lazy:
    """A module imported at the first use of one of its names, not when the agent starts.

    Goes with need_installed(). Thread-safe: importlib's module lock makes two tasks that
    arrive together wait for the one import.
    """

    def __init__(self, name: str):
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


def installed_version(distribution: str) -> str:
    """An installed distribution's version, from the name of its metadata directory.

    `NAME-VERSION.dist-info` (PEP 427) or `NAME-VERSION[-pyX.Y].egg-info` (Debian's python3-*
    packages) on sys.path. importlib.metadata would answer the same but costs ~25 ms of
    imports (its email parser) in a start measured in tens of ms; this lists the path's
    directories (~1 ms). "unknown" when none is found.
    """
    def norm(name: str) -> str:  # PEP 503: runs of -_. are one separator, case does not matter
        return name.replace("-", "_").replace(".", "_").lower()

    want = norm(distribution)
    for d in sys.path:
        try:
            names = os.listdir(d or ".")
        except OSError:
            continue
        for n in names:
            stem, _, kind = n.rpartition(".")
            if kind in ("dist-info", "egg-info"):
                name, _, version = stem.partition("-")
                if norm(name) == want and version:
                    return version.split("-")[0]
    return "unknown"


def need_binary(agent: str, binary: str, package: str) -> str:
    """The path of `binary` on PATH, or ConfigError naming the Debian `package`."""
    path = shutil.which(binary)
    if path is None:
        raise ConfigError(f"{agent} needs the program {binary!r}, which is not on PATH; install "
                          f"the Debian package {package} (apt install {package})")
    return path


def need_file(agent: str, path: str, package: str, var: str) -> str:
    import os

    if not os.path.exists(path):
        raise ConfigError(f"{agent}: {var}={path!r} does not exist; install the Debian package "
                          f"{package} (apt install {package}) or set {var} to a model directory")
    return path
