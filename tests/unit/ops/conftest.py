"""Operations tests: a private /etc/unified, /run/unified and state dir per test."""
from __future__ import annotations

import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).parents[3]
CATALOG = REPO / "etc" / "unified" / "unified.yaml"


@pytest.fixture()
def ops_env(tmp_path, monkeypatch):
    """UNIFIED_ETC with the shipped catalog installed, empty run/units/state dirs."""
    etc = tmp_path / "etc"
    (etc / "conf.d").mkdir(parents=True)
    shutil.copy(CATALOG, etc / "unified.yaml")
    for var, sub in (("UNIFIED_ETC", "etc"), ("UNIFIED_RUN_DIR", "run"), ("UNIFIED_RUNTIME_UNITS", "units"),
                     ("UNIFIED_STATE_DIR", "state"), ("UNIFIED_BACKUP_DIR", "backups"),
                     ("UNIFIED_GENERATOR_DIR", "generator")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    (tmp_path / "state").mkdir()
    for var in ("PROFILE", "LOG_LEVEL", "DISABLE_AUTO_RESTART", "CONFIG", "VRAM_LIMIT_MB"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
