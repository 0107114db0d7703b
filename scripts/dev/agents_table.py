#!/usr/bin/python3
"""README's table "Agents: real implementation vs reference agent", from the catalog.

    python3 scripts/dev/agents_table.py           rewrite the table in README.md
    python3 scripts/dev/agents_table.py --check   exit 1 if README.md's table is stale

What an agent runs is its `run:` in etc/unified/unified.yaml: `builtin: MODULE` (a module of
agents/builtin/), `entry_point:` or `command:` are real implementations; no `run:` (or
`run: reference`) is the SDK's reference agent (agents/reference.py), which answers its task
types with deterministic placeholder results. tests/unit/test_docs.py keeps README in step.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generated  # noqa: E402  (scripts/dev/generated.py, beside this script)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CATALOG = os.path.join(ROOT, "etc", "unified", "unified.yaml")
README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- agents-table:begin (scripts/dev/agents_table.py writes this block) -->"
END = "<!-- agents-table:end -->"


def _runs(run) -> str:
    """Where a real implementation lives."""
    if run.kind == "builtin":
        return f"`agents/builtin/{run.value}.py`"
    return f"`{run.value}`" if run.kind == "entry_point" else f"`{run.argv[0]}`"


def table(catalog_path: str = CATALOG) -> str:
    """The Markdown block (without the markers): one row per group, in catalog order."""
    sys.path.insert(0, ROOT)
    from unified_core.catalog import load_catalog

    cat = load_catalog(catalog_path, env={}, dropins=False)
    real = [a for a in cat.agents.values() if a.run.kind != "reference"]
    lines = [f"{len(real)} of {len(cat.agents)} agents have a real implementation; the other "
             f"{len(cat.agents) - len(real)} run the SDK's reference agent (`agents/reference.py`: it "
             "answers its task types with deterministic placeholder results and says "
             "`\"implementation\": \"reference\"` in its `/health`).",
             "",
             "| group | real implementation | reference agent |",
             "| --- | --- | --- |"]
    for group, names in cat.groups.items():
        agents = [cat.agents[n] for n in names]
        impl = ", ".join(f"{a.name} ({_runs(a.run)})" for a in agents if a.run.kind != "reference")
        ref = ", ".join(a.name for a in agents if a.run.kind == "reference")
        lines.append(f"| {group} | {impl or '—'} | {ref or '—'} |")
    return "\n".join(lines) + "\n"


def render(readme: str, block: str) -> str:
    """README text with the block between the markers replaced by `block`."""
    return generated.splice(readme, block, BEGIN, END, README)


def main(argv: list[str]) -> int:
    with open(README) as f:
        current = f.read()
    ok = generated.update(README, render(current, table()), "--check" in argv,
                          "python3 scripts/dev/agents_table.py")
    return 0 if ok or "--check" not in argv else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
