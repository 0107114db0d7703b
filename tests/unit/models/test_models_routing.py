"""Hybrid routing: every catalog rule, the threshold, both failovers, and the stats."""
from __future__ import annotations

import pathlib

import pytest

from unified_agents.routing import (Live, Router, RoutingError, RoutingStats, check_complexity,
                                    estimate_complexity)
from unified_core.catalog import load_catalog
from unified_core.model import Routing, RoutingRule

ROOT = pathlib.Path(__file__).resolve().parents[3]
ALL_OK = Live(cloud_ok=True, local_ok=True, small_ok=True)


@pytest.fixture(scope="module")
def router():
    """The shipped catalog's routing block, not a copy of it."""
    return Router(load_catalog(str(ROOT / "etc/unified/unified.yaml"), env={}).routing)


@pytest.mark.parametrize("task, backend, complexity", [
    ("code_generation", "cloud", 0.9),
    ("large_context_reasoning", "cloud", 0.95),
    ("training", "cloud", 1.0),
    ("fine_tuning", "cloud", 1.0),
    ("simple_chat", "local", 0.2),
    ("greeting", "local", 0.2),
    ("command_parsing", "local", 0.3),
    ("emotion_detection", "local", 0.4),
])
def test_every_catalog_rule_routes_its_tasks(router, task, backend, complexity):
    d = router.decide(task, None, ALL_OK)
    assert (d.backend, d.reason, d.wanted, d.complexity) == (backend, "rule", backend, complexity)
    assert d.rule is not None


def test_a_rule_beats_the_callers_complexity(router):
    # a greeting stays local even when the caller thinks it is hard
    assert router.decide("greeting", 0.99, ALL_OK).backend == "local"
    assert router.decide("code_generation", 0.01, ALL_OK).backend == "cloud"


@pytest.mark.parametrize("complexity, backend, reason", [
    (0.71, "cloud", "complexity_above_threshold"),
    (0.7, "local", "complexity_below_threshold"),   # the threshold itself stays local
    (0.0, "local", "complexity_below_threshold"),
    (None, "local", "complexity_below_threshold"),
])
def test_unlisted_tasks_go_by_the_complexity_threshold(router, complexity, backend, reason):
    d = router.decide("summarise_notes", complexity, ALL_OK)
    assert (d.backend, d.reason) == (backend, reason)


def test_failover_cloud_unreachable_goes_local(router):
    live = Live(cloud_ok=False, local_ok=True, small_ok=True)
    d = router.decide("code_generation", None, live)
    assert (d.backend, d.reason, d.wanted) == ("local", "cloud_unreachable", "cloud")


def test_failover_breaker_open_is_named_as_such(router):
    live = Live(cloud_ok=False, local_ok=True, small_ok=True, cloud_problem="breaker_open")
    assert router.decide("training", None, live).reason == "breaker_open"


def test_failover_vram_exhausted_degrades_to_the_small_local_model(router):
    live = Live(cloud_ok=True, local_ok=False, small_ok=True)
    d = router.decide("simple_chat", None, live)
    assert (d.backend, d.reason, d.wanted) == ("local_small", "vram_exhausted", "local")


def test_both_failovers_at_once_end_on_the_small_model(router):
    live = Live(cloud_ok=False, local_ok=False, small_ok=True)
    d = router.decide("code_generation", None, live)
    assert (d.backend, d.reason) == ("local_small", "vram_exhausted")


def test_vram_exhausted_with_no_small_model_room_tries_the_cloud(router):
    d = router.decide("simple_chat", None, Live(cloud_ok=True, local_ok=False, small_ok=False))
    assert (d.backend, d.reason) == ("cloud", "vram_exhausted")


def test_nothing_usable_is_no_backend(router):
    d = router.decide("simple_chat", None, Live(cloud_ok=False, local_ok=False, small_ok=False))
    assert (d.backend, d.reason) == ("none", "no_backend")


def _router(**kw):
    r = dict(complexity_threshold=0.5, rules=(RoutingRule(("x",), 0.9, "cloud"),),
             cloud_unreachable="local", vram_exhausted="local_small")
    r.update(kw)
    return Router(Routing(**r))


def test_failover_policies_from_the_catalog_are_obeyed():
    down = Live(cloud_ok=False, local_ok=True, small_ok=True)
    assert _router(cloud_unreachable="fail").decide("x", None, down).backend == "none"
    full = Live(cloud_ok=True, local_ok=False, small_ok=True)
    assert _router(vram_exhausted="cloud").decide("y", 0.1, full).backend == "cloud"
    assert _router(vram_exhausted="fail").decide("y", 0.1, full).backend == "none"
    assert _router().decide("y", 0.51, ALL_OK).backend == "cloud"   # its own threshold


def test_first_rule_naming_a_task_wins():
    r = _router(rules=(RoutingRule(("x",), 0.9, "cloud"), RoutingRule(("x",), 0.1, "local")))
    assert r.decide("x", None, ALL_OK).backend == "cloud"


def test_a_requested_backend_is_honoured_and_still_fails_over(router):
    assert router.decide("greeting", None, ALL_OK, "cloud").as_dict()["reason"] == "requested"
    d = router.decide("greeting", None, Live(False, True, True), "cloud")
    assert (d.backend, d.reason) == ("local", "cloud_unreachable")
    with pytest.raises(RoutingError, match="allowed: local, cloud"):
        router.decide("greeting", None, ALL_OK, "gpu")


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True, [0.3]])
def test_bad_complexity_is_a_clear_error(bad):
    with pytest.raises(RoutingError, match="from 0 to 1"):
        check_complexity(bad)


def test_estimated_complexity_grows_with_the_work_and_caps_at_one():
    assert estimate_complexity(0) == 0.0
    assert estimate_complexity(400) < estimate_complexity(4000) < estimate_complexity(12000)
    assert estimate_complexity(10_000_000) == 1.0
    assert estimate_complexity(8192, max_tokens=2048) == 1.0


def test_stats_count_since_reset_while_prometheus_totals_keep_growing(router):
    t = [1000.0]
    st = RoutingStats(lambda: t[0])
    for task in ("code_generation", "code_generation", "greeting"):
        st.record(router.decide(task, None, ALL_OK), 0.00002)
    st.record(router.decide("training", None, Live(False, True, True)), 0.00003)
    s = st.as_dict()
    assert s["decisions"] == 4
    assert s["by_backend"] == {"cloud": 2, "local": 2}
    assert s["by_reason"] == {"rule": 3, "cloud_unreachable": 1}
    assert s["by_task_type"]["code_generation"] == {"cloud": 2}
    assert s["heavy_to_cloud"] == round(2 / 3, 4)
    assert s["decision_us"]["p50"] in (20.0, 30.0)
    assert st.reset() == {"reset": True, "decisions_cleared": 4}
    assert st.as_dict()["decisions"] == 0 and st.as_dict()["cloud_share"] is None
    assert st.totals[("cloud", "rule")] == 2          # counters never go backwards
