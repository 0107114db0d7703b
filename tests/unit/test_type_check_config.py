"""setup.cfg [mypy] (run by `make lint`): missing third-party stubs are excused per module,
never globally, and only for modules the shipped code really imports."""
from __future__ import annotations

import configparser
import re

from tests.host_tools import ROOT

SHIPPED = ("unified_core", "unified_ctl", "agents")


def _config() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_no_global_escape_hatches():
    main = _config()["mypy"]
    for option in ("ignore_missing_imports", "ignore_errors", "follow_imports"):
        assert option not in main, option
    assert main["packages"].replace(" ", "").split(",") == ["unified_core", "unified_ctl",
                                                             "unified_agents"]


def test_each_stub_exception_names_a_module_the_shipped_code_imports():
    imported = set()
    for pkg in SHIPPED:
        for path in (ROOT / pkg).rglob("*.py"):
            imported |= set(re.findall(r"^\s*(?:import|from) ([\w.]+)", path.read_text(), re.M))
    cfg = _config()
    excused = [s[len("mypy-"):] for s in cfg.sections() if s.startswith("mypy-")
               and cfg[s].getboolean("ignore_missing_imports", False)]
    assert excused, "setup.cfg has no [mypy-MODULE] sections"
    for pattern in excused:
        top = pattern.removesuffix(".*")
        assert any(m == top or m.startswith(top + ".") for m in imported), pattern
