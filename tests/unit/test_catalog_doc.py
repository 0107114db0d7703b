"""docs/CATALOG.md's key reference is what the loader accepts: generated from it by
scripts/dev/catalog_doc.py, and the generator refuses a key it cannot explain."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

from unified_core import catalog, types

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _doc_script():
    spec = importlib.util.spec_from_file_location("catalog_doc", ROOT / "scripts" / "dev" / "catalog_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_catalog_md_is_what_the_loader_renders():
    mod = _doc_script()
    doc = (ROOT / "docs" / "CATALOG.md").read_text()
    assert mod.render(doc, mod.tables()) == doc, \
        "docs/CATALOG.md's key tables are stale: run python3 scripts/dev/catalog_doc.py"


def test_every_key_the_loader_accepts_has_a_row():
    sections, _ = _doc_script().record()
    doc = (ROOT / "docs" / "CATALOG.md").read_text()
    for sec, keys in [("agents.NAME", catalog._Validator.AGENT_KEYS),
                      ("profiles.NAME", catalog._Validator.PROFILE_KEYS),
                      ("agents.NAME.systemd (the allowlist)", catalog._Validator.SYSTEMD_KEYS)]:
        table = doc.split(f"### {sec}\n", 1)[1].split("###", 1)[0]
        assert [ln.split("`")[1] for ln in table.splitlines() if ln.startswith("| `")] == list(keys)
    assert set(sections["agents.NAME.run"]["allowed"]) >= {"command", "backend_port", "builtin"}


def test_allowed_ranges_and_defaults_come_from_the_converters():
    doc = (ROOT / "docs" / "CATALOG.md").read_text()
    assert f"| `port` | an integer {types.PORT_MIN}-{types.PORT_MAX} | required |" in doc
    assert "| `start_timeout` | seconds as a number >= 0, or a string like '500ms', '30s', '5m', '1h' | 60s |" in doc
    assert "| `vram_exhausted` | local_small, cloud, fail | local_small |" in doc
    assert "| `MAX_THREADS` | `settings.limits.max_threads` | an integer 1-1024 |" in doc


def test_a_key_added_to_the_loader_without_a_meaning_stops_the_generator(monkeypatch):
    monkeypatch.setattr(catalog._Validator, "AGENT_KEYS", catalog._Validator.AGENT_KEYS + ("color",))
    with pytest.raises(SystemExit, match=r"undocumented keys \['agents.NAME.color'\]"):
        _doc_script().tables()


def test_a_documented_key_the_loader_no_longer_accepts_stops_the_generator(monkeypatch):
    monkeypatch.setattr(catalog._Validator, "SYSTEMD_KEYS",
                        tuple(k for k in catalog._Validator.SYSTEMD_KEYS if k != "LimitNOFILE"))
    with pytest.raises(SystemExit, match=r"documented keys it does not accept \['agents.NAME.systemd.LimitNOFILE'\]"):
        _doc_script().tables()


def test_a_changed_range_in_the_loader_makes_the_doc_stale(monkeypatch):
    mod = _doc_script()
    doc = (ROOT / "docs" / "CATALOG.md").read_text()
    monkeypatch.setattr(types, "PORT_MAX", 60000)
    fresh = mod.render(doc, mod.tables())
    assert fresh != doc and "| `port` | an integer 1024-60000 | required |" in fresh
