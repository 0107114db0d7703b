"""Every operation that waits for agents reports its progress through one callback
(unified_core.profiles.Progress: ready, total, the agents so far): agent load, config
rollback|promote|abort (rollout.follow), backup restore, as profile switch and recover do.
The CLI draws it only on a terminal: never into --json, a pipe or a log."""
from __future__ import annotations

import json
import sys

import pytest

from unified_ctl import backup, operations, restore, rollout
from unified_core import paths, profiles
from unified_core.catalog import load_catalog

from ..fake_fleet_cli import healthy_from_the_second_ask
from ..fakes import FakeSystemd
from ..ptyrun import PtyRun
from ..test_fleet_ops import ROOT
from .test_ops_config import apply_ok, ctl, edit, fake, new_catalog, start_core  # noqa: F401  (fixtures)

CHAIN = ["ObservabilityHub_PC2", "MemoryOrchestratorService", "ContextManager"]  # ContextManager's, start order


class Events(list):
    """The progress callback: records (ready, total, the agents not ready yet) of each report."""

    def __call__(self, done, total, items):
        self.append((done, total, [i.agent for i in items if not i.ready]))


@pytest.fixture()
def healthy(fake, monkeypatch):
    monkeypatch.setattr(profiles, "probe", healthy_from_the_second_ask(fake.catalog, fake))
    return fake


def _reports_until_ready(events: Events, total: int) -> None:
    assert events, "no progress reported"
    assert all(t == total for _, t, _ in events)
    assert events[0][0] < total and events[0][2]  # the first report: agents still waited for
    assert events[-1] == (total, total, [])
    assert [d for d, _, _ in events] == sorted(d for d, _, _ in events)  # ready only grows


def test_agent_load_reports_progress_until_the_agent_and_its_dependencies_are_healthy(healthy):
    sd, events = healthy, Events()
    r = operations.load(sd, sd.catalog, "ContextManager", timeout=10, progress=events)
    assert r.ok and list(r.chain) == CHAIN
    _reports_until_ready(events, 3)
    assert set(events[0][2]) == set(CHAIN)
    started = next(c[1] for c in sd.calls if c[0] == "start")
    assert set(started) == {u for n in CHAIN for u in (f"unified-agent@{n}.service", f"unified-agent@{n}.socket")}


def test_agent_load_stops_waiting_once_every_missing_agent_has_failed(fake, monkeypatch):
    class Failing(FakeSystemd):
        def start(self, units, no_block=False):
            super().start(units, no_block)
            self.state["unified-agent@ContextManager.service"] = "failed"

    sd = Failing(fake.catalog)
    monkeypatch.setattr(profiles, "probe", healthy_from_the_second_ask(sd.catalog, sd))
    events = Events()
    r = operations.load(sd, sd.catalog, "ContextManager", timeout=60, progress=events)
    assert not r.ok and r.not_ready == ["ContextManager"]
    assert [i.state for i in r.items if not i.ready] == ["failed/failed"]
    assert r.seconds < 60  # it did not wait for the timeout
    assert events[-1] == (2, 3, ["ContextManager"])


def test_config_rollback_reports_progress_while_the_profile_gets_ready(healthy, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    apply_ok()
    edit(main, "port: 5574", "port: 5591")
    apply_ok()
    start_core(healthy)
    events = Events()
    result, _ = rollout.rollback(healthy, progress=events)
    assert result.ok
    _reports_until_ready(events, len(healthy.catalog.profiles["core"].agents))


def test_config_promote_and_abort_report_progress(healthy, ops_env):
    apply_ok()
    start_core(healthy)
    total = len(healthy.catalog.profiles["core"].agents)
    for end in (rollout.promote, rollout.abort):
        ctl("profile", "switch", "core", "--no-wait", env={"CONFIG": str(new_catalog(ops_env))})
        events = Events()
        r = end(healthy, progress=events)
        assert (r[0] if isinstance(r, tuple) else r).ok
        assert events and events[-1] == (total, total, [])


def test_backup_restore_reports_progress_while_the_restored_profile_gets_ready(ops_env, monkeypatch):
    (ops_env / "etc" / "selected-profile").write_text("core\n")
    sd = FakeSystemd(load_catalog(paths.catalog_file(), env={}))
    monkeypatch.setattr(profiles, "probe", healthy_from_the_second_ask(sd.catalog, sd))
    m = backup.create()
    events = Events()
    res = restore.restore(m["path"], sd, wait=True, progress=events)
    assert res["ok"]
    _reports_until_ready(events, len(sd.catalog.profiles["core"].agents))


def test_agent_load_off_a_terminal_prints_the_outcome_alone(healthy):
    res = ctl("agent", "load", "ContextManager", "--timeout", "10")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("ContextManager healthy in ") and res.output.endswith(" s (with 2 dependencies)\n")
    res = ctl("agent", "load", "ContextManager", "--json")
    assert json.loads(res.output)["loaded"] == CHAIN


def test_agent_load_on_a_terminal_draws_the_progress_then_erases_it(tmp_path):
    run = PtyRun([sys.executable, "-m", "tests.unit.fake_fleet_cli", str(tmp_path / "fleet"), "agent", "load",
                  "ContextManager"], cwd=str(ROOT))
    try:
        text = run.read_until("healthy in")
        assert run.wait() == 0
        assert "load ContextManager (waiting: ObservabilityHub_PC2" in text  # the bar, while it waits
        assert "3/3" in text
        assert text.rstrip().splitlines()[-1].startswith("ContextManager healthy in ")  # the bar erased
    finally:
        run.close()
