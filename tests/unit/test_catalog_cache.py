"""The parsed catalog kept for the agents' starts (unified_core/catalog_cache.py): used only
while every file it came from is unchanged, only from a file nobody else can write, and
never instead of validation."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from unified_core import catalog_cache
from unified_core.catalog import load_catalog, load_merged
from unified_core.errors import CatalogInvalid

HERE = pathlib.Path(__file__).resolve().parent
MINI = (HERE / "catalogs" / "mini.yaml").read_text()
ROOT = HERE.parent.parent


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    d = tmp_path / "run"
    monkeypatch.setenv("UNIFIED_RUN_DIR", str(d))
    return d


def catalog(tmp_path, text=MINI) -> str:
    (tmp_path / "etc").mkdir(exist_ok=True)
    p = tmp_path / "etc" / "unified.yaml"
    p.write_text(text)
    return str(p)


def parses(monkeypatch) -> list[str]:
    """Count the YAML parses (the cache's whole point is to skip them)."""
    from unified_core import catalog as mod

    seen: list[str] = []
    real = mod._parse_merged

    def counting(path, dropins, read=None):
        seen.append(path)
        return real(path, dropins, read)

    monkeypatch.setattr(mod, "_parse_merged", counting)
    return seen


def test_a_stored_parse_is_used_while_the_files_are_unchanged(tmp_path, run_dir, monkeypatch):
    path = catalog(tmp_path)
    first = load_catalog(path, store_cache=True)
    assert (run_dir / "catalog.cache").is_file()
    seen = parses(monkeypatch)
    assert load_catalog(path) == first and seen == []
    assert load_merged(path)[0]["version"] == 1 and seen == []


def test_an_edited_catalog_is_parsed_again(tmp_path, run_dir, monkeypatch):
    path = catalog(tmp_path)
    load_catalog(path, store_cache=True)
    seen = parses(monkeypatch)
    pathlib.Path(path).write_text(MINI.replace("log_level: INFO", "log_level: DEBUG")
                                  if "log_level: INFO" in MINI else MINI + "\n# edited\n")
    load_catalog(path)
    assert seen == [path]


def test_a_drop_in_added_or_removed_is_seen(tmp_path, run_dir, monkeypatch):
    path = catalog(tmp_path)
    name = next(iter(load_catalog(path).agents))
    conf_d = tmp_path / "etc" / "conf.d"
    conf_d.mkdir()
    load_catalog(path, store_cache=True)
    drop = conf_d / "50-port.yaml"
    drop.write_text(f"agents:\n  {name}:\n    description: from the drop-in\n")
    assert load_catalog(path).agent(name).description == "from the drop-in"
    load_catalog(path, store_cache=True)
    drop.unlink()
    assert load_catalog(path).agent(name).description != "from the drop-in"


def test_a_cache_others_can_write_is_ignored(tmp_path, run_dir, monkeypatch):
    path = catalog(tmp_path)
    load_catalog(path, store_cache=True)
    os.chmod(run_dir / "catalog.cache", 0o666)
    seen = parses(monkeypatch)
    load_catalog(path)
    assert seen == [path]


def test_a_damaged_cache_is_ignored_and_an_invalid_catalog_is_never_stored(tmp_path, run_dir,
                                                                           monkeypatch):
    path = catalog(tmp_path)
    load_catalog(path, store_cache=True)
    cache = run_dir / "catalog.cache"
    cache.write_bytes(cache.read_bytes()[:40])
    assert load_catalog(path).agents
    bad = catalog(tmp_path, MINI.replace("version: 1", "version: 7"))
    cache.unlink()
    with pytest.raises(CatalogInvalid):
        load_catalog(bad, store_cache=True)
    assert not cache.exists()


def test_a_cached_document_is_still_validated_with_the_callers_environment(tmp_path, run_dir):
    path = catalog(tmp_path)
    load_catalog(path, store_cache=True)
    with pytest.raises(CatalogInvalid) as e:
        load_catalog(path, env={"LOG_LEVEL": "LOUD"})
    assert "LOUD" in str(e.value)


def test_an_agent_start_from_the_cache_imports_no_yaml(tmp_path, run_dir):
    path = catalog(tmp_path)
    load_catalog(path, store_cache=True)
    code = ("import sys; from unified_core.catalog import load_catalog; "
            f"c = load_catalog({path!r}); print(len(c.agents), 'yaml' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), UNIFIED_RUN_DIR=str(run_dir))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] != "0" and out[1] == "False", out


def test_a_same_size_edit_in_place_is_seen_at_once(tmp_path, run_dir):
    # what file times can miss: the same inode and size, within one clock tick
    path = catalog(tmp_path)
    load_catalog(path, store_cache=True)
    text = pathlib.Path(path).read_text()
    assert "debug_mode: false" in text and not load_catalog(path).settings.debug_mode
    with open(path, "r+") as f:  # the same inode, the same size
        f.write(text.replace("debug_mode: false", "debug_mode: true "))
    assert load_catalog(path).settings.debug_mode is True


def test_the_key_is_none_when_the_catalog_is_missing(tmp_path):
    assert catalog_cache.key(str(tmp_path / "nothing.yaml")) is None
