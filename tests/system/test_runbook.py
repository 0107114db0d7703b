"""docs/RUNBOOK.md works: every command block runs, in document order, against a freshly
installed system (scripts/dev/runbook_check.py). Skipped: only the runbook_check.SKIP blocks
(NVIDIA GPU). Pending: blocks calling an agent the catalog still runs as the SDK's reference
agent, each named with its issue; any other failure fails the test."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("runbook_check", REPO / "scripts" / "dev" / "runbook_check.py")
runbook_check = importlib.util.module_from_spec(_spec)
sys.modules["runbook_check"] = runbook_check  # dataclasses look their module up there
_spec.loader.exec_module(runbook_check)


def test_the_runbook_parses_into_blocks_and_every_skip_names_one():
    blocks = runbook_check.parse(runbook_check.RUNBOOK.read_text())
    assert len(blocks) >= 40
    runbook_check.check_skips(blocks)
    assert all(reason.startswith("needs") for reason in runbook_check.SKIP.values())
    headings = {b.heading for b in blocks}
    for section in ("Normal startup", "System hang", "VRAM exhaustion", "Complete system recovery",
                    "Rollback procedure", "Daily tasks", "Weekly tasks", "Monthly tasks", "Configuration updates"):
        assert section in headings


def test_every_runbook_command_block_runs_on_a_fresh_install(new_container, capsys):
    c = new_container()
    lines = []
    results = runbook_check.run_all(runbook_check.InContainer(c), log=lines.append)
    with capsys.disabled():
        print("\n" + "\n".join(lines) + "\n" + runbook_check.summary(results))
    failed = [r for r in results if r.status == "failed"]
    assert not failed, "runbook blocks failed:\n" + "\n".join(
        f"RUNBOOK.md:{r.block.line} {r.block.id} (rc {r.rc}):\n{r.output[-1500:]}" for r in failed)
    skipped = {r.block.id for r in results if r.status == "skipped"}
    assert skipped == set(runbook_check.SKIP)
