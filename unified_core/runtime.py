"""Runtime (until reboot) changes as drop-ins under /run/systemd/system: the systemd way to
say "for now" (`systemctl set-property --runtime` writes the same kind of file).

- DISABLE_AUTO_RESTART=true → Restart=no for every agent (runbook: disable auto-restart).
- Runbook environment variables given to a launch (LOG_LEVEL=DEBUG, MAX_THREADS=4, …) →
  Environment= for every agent, validated like the catalog: the *overrides*.

Only a launch reads them (`profile switch`, the launch script, `recover`): the operator's
shell is not configuration, so every other command ignores its environment. Overrides stay
in force until reboot or `unified-ctl overrides clear` (a later switch without them keeps
them and says so); a switch with some adds them to those in force.
"""
from __future__ import annotations

import os
from typing import Mapping

from . import paths, types
from .catalog import ENV_OVERRIDES
from .errors import CatalogInvalid, Problem

DROPIN_DIR = "unified-agent@.service.d"
NO_RESTART = "90-disable-auto-restart.conf"
ENV_FILE = "60-launch-environment.conf"
HEADER = "# Written by unified-ctl ({why}); lasts until reboot or `{undo}`.\n"


def _path(name: str) -> str:
    return os.path.join(paths.runtime_unit_dir(), DROPIN_DIR, name)


def _write(name: str, text: str) -> None:
    path = _path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def _remove(name: str) -> bool:
    try:
        os.unlink(_path(name))
        return True
    except FileNotFoundError:
        return False


def auto_restart_disabled() -> bool:
    return os.path.exists(_path(NO_RESTART))


def set_auto_restart(enabled: bool) -> bool:
    """Return True when something changed (then daemon-reload)."""
    if enabled:
        return _remove(NO_RESTART)
    if auto_restart_disabled():
        return False
    _write(NO_RESTART, HEADER.format(why="DISABLE_AUTO_RESTART=true", undo="unified-ctl auto-restart enable")
           + "[Service]\nRestart=no\n")
    return True


def disable_auto_restart_requested(env: Mapping[str, str]) -> bool:
    if "DISABLE_AUTO_RESTART" not in env:
        return False
    try:
        return types.boolean(env["DISABLE_AUTO_RESTART"])
    except ValueError as e:
        raise CatalogInvalid([Problem("environment", None, "DISABLE_AUTO_RESTART", str(e))]) from None


def launch_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The runbook variables present in env, validated (CatalogInvalid names each bad one)."""
    out, problems = {}, []
    for var, (_, conv) in ENV_OVERRIDES.items():
        if var in env:
            try:
                value = conv(env[var])
            except ValueError as e:
                problems.append(Problem("environment", None, var, str(e)))
                continue
            out[var] = str(value).lower() if isinstance(value, bool) else str(value)
    if problems:
        raise CatalogInvalid(problems)
    if "MAX_THREADS" in out:
        out["OMP_NUM_THREADS"] = out["MKL_NUM_THREADS"] = out["MAX_THREADS"]
    return out


def launch_environment_file() -> str:
    return _path(ENV_FILE)


def read_launch_environment() -> dict[str, str]:
    out = {}
    try:
        with open(_path(ENV_FILE)) as f:
            for line in f:
                if line.startswith('Environment="'):
                    k, _, v = line.strip()[len('Environment="'):-1].partition("=")
                    out[k] = v
    except OSError:
        pass
    return out


def overrides_in_force() -> dict[str, str]:
    """The runbook variables in force (without the OMP/MKL_NUM_THREADS that follow MAX_THREADS)."""
    return {k: v for k, v in read_launch_environment().items() if k in ENV_OVERRIDES}


def set_launch_environment(values: dict[str, str]) -> bool:
    """Replace the launch environment; empty removes it. True when something changed."""
    if values == read_launch_environment():
        return False
    if not values:
        return _remove(ENV_FILE)
    body = "".join(f'Environment="{k}={v}"\n' for k, v in values.items())
    _write(ENV_FILE, HEADER.format(why="launch environment", undo="unified-ctl overrides clear")
           + "[Service]\n" + body)
    return True


def add_launch_environment(values: dict[str, str]) -> bool:
    """Add (or change) these overrides, keeping the others in force. True when something changed."""
    return set_launch_environment({**read_launch_environment(), **values})
