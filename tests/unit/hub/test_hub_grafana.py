"""The shipped Grafana dashboard (etc/grafana/unified-system.json, installed as
/usr/share/unified-system/grafana/unified-system.json): a dashboard Grafana imports (ids,
grid, the datasource variable) whose every query is valid PromQL for promtool. That each
query returns data from the real exporters is tests/system/test_observability.py."""
from __future__ import annotations

import subprocess

import yaml

from tests import dashboard
from tests.host_tools import require_tool

ROWS = ["Fleet", "Profiles", "Agent resources", "Routing (RequestCoordinator)",
        "Circuit breakers", "Speech and dialogue"]


def test_the_dashboard_has_the_rows_and_a_grafana_shape():
    d = dashboard.load()
    assert d["uid"] == "unified-system" and d["schemaVersion"] >= 36
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == ROWS
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"] and p["description"], p["title"]
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "agent"]


def test_every_panel_query_is_valid_promql(tmp_path):
    d = dashboard.load()
    qs = dashboard.queries(d)
    assert len(qs) >= 20
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": expr} for i, (_, _, expr) in enumerate(qs)]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    r = subprocess.run([require_tool("promtool"), "check", "rules", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(qs)} rules found" in r.stdout


def test_an_unknown_variable_is_reported_not_sent_to_prometheus():
    d = dashboard.load()
    try:
        dashboard.substitute('up{agent=~"$nosuch"}', d, "1m", "15m")
    except KeyError as e:
        assert "$nosuch" in str(e)
    else:
        raise AssertionError("an unknown variable went through")
