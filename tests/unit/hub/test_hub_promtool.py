"""The shipped Prometheus rules are valid and behave as specified: `promtool check rules`
and `promtool test rules` (promtool from Debian's `prometheus`, installed by
scripts/dev/install_deps.sh). Each of the five alerts fires, and has a near miss that does
not, and the renamed metrics answer under their old names, in promtool/unified-rules-test.yml."""
from __future__ import annotations

import shutil
import subprocess

from tests.host_tools import require_tool

from .conftest import HERE, ROOT



def promtool(*args, cwd=None):
    # Not skipped when missing: these tests are the acceptance of the rules file.
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_promtool_check_rules_accepts_the_shipped_rules():
    r = promtool("check", "rules", str(ROOT / "etc" / "prometheus" / "unified-rules.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 15 rules found" in r.stdout     # 5 alerts, 10 old names recorded


def test_promtool_test_rules_each_alert_fires_and_has_a_near_miss():
    r = promtool("test", "rules", "unified-rules-test.yml", cwd=HERE / "promtool")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_promtool_test_rules_catches_a_weakened_rule(tmp_path):
    """The tests can fail: the same tests against rules whose VRAM threshold was raised."""
    rules = (ROOT / "etc" / "prometheus" / "unified-rules.yml").read_text()
    weak = rules.replace("> 0.95", "> 0.99")
    assert weak != rules
    d = tmp_path / "a" / "b" / "c" / "d"
    d.mkdir(parents=True)
    (tmp_path / "etc" / "prometheus").mkdir(parents=True)
    (tmp_path / "etc" / "prometheus" / "unified-rules.yml").write_text(weak)
    shutil.copy(HERE / "promtool" / "unified-rules-test.yml", d)
    r = promtool("test", "rules", "unified-rules-test.yml", cwd=d)
    assert r.returncode != 0 and "VRAMExhaustion" in r.stdout + r.stderr


def test_promtool_check_config_accepts_the_shipped_scrape_jobs(tmp_path):
    import yaml

    jobs = yaml.safe_load((ROOT / "etc" / "prometheus" / "unified-scrape.yml").read_text())
    cfg = {"global": {"scrape_interval": "15s"},
           "rule_files": [str(ROOT / "etc" / "prometheus" / "unified-rules.yml")],
           "scrape_configs": jobs["scrape_configs"]}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    r = promtool("check", "config", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_old_names_recorded_are_the_renames_docs_metrics_md_lists():
    """docs/METRICS.md's rename table and the recording rules cannot drift apart: a row that
    says the old name still answers has a rule, and every rule has its row."""
    import re

    import yaml

    doc = yaml.safe_load((ROOT / "etc" / "prometheus" / "unified-rules.yml").read_text())
    recorded = {r["record"]: r["expr"] for g in doc["groups"] for r in g["rules"]
                if "record" in r}
    table = (ROOT / "docs" / "METRICS.md").read_text().split("## Renamed metrics", 1)[1]
    rows = re.findall(r"^\| `(\w+)`[^|]*\| (.+?) \| (.+?) \|$", table, re.M)
    said = {old for old, _, answers in rows if "recording rule" in answers}
    assert said == set(recorded)
    for old, new, _ in rows:
        if old in recorded:
            first_new = re.search(r"`[^`]*?(unified_\w+)", new).group(1)
            assert first_new in recorded[old], (old, new, recorded[old])
