"""The shipped Grafana dashboard (etc/grafana/unified-system.json) as PromQL a test can run:
every panel's every target `expr` with Grafana's variables replaced the way Grafana would
for the default view: `$agent` (and any other query variable) by its "All" value
(`allValue`), `$__rate_interval`/`$__interval` and `$__range` by given durations. The
variables' own queries (`label_values(selector, label)`) come back as the selector and the
label it must carry."""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "etc" / "grafana" / "unified-system.json"


def load(path: Path | str = DASHBOARD) -> dict:
    return json.loads(Path(path).read_text())


def _panels(dash: dict):
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", ())          # panels inside a collapsed row


def substitute(expr: str, dash: dict, rate_interval: str, range_: str) -> str:
    values = {"__rate_interval": rate_interval, "__interval": rate_interval,
              "__range": range_}
    for v in dash.get("templating", {}).get("list", []):
        if v["type"] == "query":
            values[v["name"]] = v["allValue"]
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown variable ${name} in {expr!r}")
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def queries(dash: dict, rate_interval: str = "1m", range_: str = "15m") -> list[tuple]:
    """[(panel title, refId, expr)] for every target of every panel."""
    out = []
    for p in _panels(dash):
        for t in p.get("targets", ()):
            out.append((p["title"], t["refId"],
                        substitute(t["expr"], dash, rate_interval, range_)))
    return out


def variable_queries(dash: dict) -> list[tuple[str, str, str]]:
    """[(variable, selector, label)] of the label_values() query variables."""
    out = []
    for v in dash.get("templating", {}).get("list", []):
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
        assert m, f"variable {v['name']}: {q!r} is not label_values(selector, label)"
        out.append((v["name"], m.group(1), m.group(2)))
    return out
