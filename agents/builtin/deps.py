"""Engine presence checks: a missing engine is one line naming the package to install.

Raised as ConfigError from on_start(): the SDK exits 2, which the unit template lists in
RestartPreventExitStatus, so systemd does not restart an agent that cannot work.
"""
from __future__ import annotations

import importlib
import shutil

from unified_agents.config import ConfigError


def need_module(agent: str, module: str, package: str, what: str):
    """Import `module` or raise ConfigError naming the Debian `package`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"{agent} needs {what} (Python module {module!r}: {e}); install the "
                          f"Debian package {package} (apt install {package})") from None


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
