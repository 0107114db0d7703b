"""The host tools of scripts/dev/host-tools, for tests: a test whose tool is missing fails
naming the Debian package and the script that installs it. It never skips: a skipped test
proves nothing, and a fresh machine would pass by skipping (scripts/dev/host-tools says how
the list is installed and checked)."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "scripts" / "dev" / "host-tools"
INSTALL = "scripts/dev/install_deps.sh"


def entries() -> list[tuple[str, str, str]]:
    """(group, package, provides) for every line of the list."""
    out = []
    for line in LIST.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            group, package, provides = fields[:3]
            out.append((group, package, provides))
    return out


def package_of(provides: str) -> str:
    for _, package, what in entries():
        if what == provides:
            return package
    raise KeyError(f"{provides} is not in {LIST.relative_to(ROOT)}: add it there")


def require_tool(name: str) -> str:
    """The path of host command `name`; fails the test when it is missing."""
    package = package_of(name)
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} not found on the host: install it with {INSTALL} "
                    f"(package {package})", pytrace=False)
    return exe


def require_module(name: str) -> None:
    """Fails the test when python3 module `name` (from the list) is not importable."""
    package = package_of(f"python3:{name}")
    if importlib.util.find_spec(name) is None:
        pytest.fail(f"python3 module {name} not found: install it with {INSTALL} "
                    f"(package {package})", pytrace=False)
