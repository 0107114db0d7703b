"""The hub's own evaluation of the five alerts and the health score: the same names,
severities, `for:` durations and thresholds as the shipped Prometheus rules, each condition
holding and not holding, pending → firing, and the documented score formula."""
from __future__ import annotations

import re

import yaml

from unified_core import alerts as ha
from unified_core.units import AgentUnit, Sample
from unified_agents.gpu import GpuInfo, GpuSnapshot

from .conftest import RULES

MIB = 1 << 20
CORE = ("ObservabilityHub", "RequestCoordinator", "Worker", "Sleeper", "ModelManagerSuite")


def unit(name, state="active", startup=None, start_wall=None, starting=False, result="success"):
    return AgentUnit(name=name, state=state, service="", socket="", pid=42 if state == "active"
                     else None, restarts=0, result=result, cgroup="", cpu_ns=None,
                     memory_current=None, startup_s=startup, starting=starting,
                     start_wall=start_wall)


def all_up(**over):
    u = {n: unit(n) for n in CORE}
    u["Sleeper"] = unit("Sleeper", "dormant")
    u["Faraway"] = unit("Faraway", "stopped")
    u.update(over)
    return u


def sample(mb):
    return Sample(mb * MIB, 1.0, None, "cgroup", 1, 0.0, None)


def gpu(used_mib, total_mib=1000, index=0):
    g = GpuInfo(index=index, name="Test GPU", uuid=f"GPU-{index}", total_bytes=total_mib * MIB,
                used_bytes=used_mib * MIB, free_bytes=(total_mib - used_mib) * MIB)
    return GpuSnapshot(taken_at=0, monotonic=0, read_s=0, driver_version="1", gpus=(g,))


def names(conds):
    return sorted((c.rule, c.key) for c in conds)


# ------------------------------------------------------------------ same as the rules file
def shipped_rules():
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def seconds(d):
    if d is None:
        return 0
    n, unit_ = int(d[:-1]), d[-1]
    return n * {"s": 1, "m": 60, "h": 3600}[unit_]


def test_hub_rules_have_the_names_severities_and_durations_of_the_prometheus_rules():
    prom = shipped_rules()
    assert set(prom) == set(ha.RULES) == {"EssentialAgentDown", "VRAMExhaustion",
                                          "CircuitBreakerOpen", "HighMemoryUsage",
                                          "SlowAgentLoading"}
    for name, rule in ha.RULES.items():
        assert prom[name]["labels"]["severity"] == rule.severity, name
        assert seconds(prom[name].get("for")) == rule.for_s, name
        assert prom[name]["labels"]["system"] == "unified"
        assert {"summary", "action"} <= set(prom[name]["annotations"])


def test_hub_thresholds_are_the_ones_in_the_prometheus_expressions():
    prom = shipped_rules()
    assert re.search(rf"> {ha.VRAM_RATIO}\b", prom["VRAMExhaustion"]["expr"])
    assert re.search(rf"> {ha.MEMORY_RATIO:g}\b", prom["HighMemoryUsage"]["expr"])
    assert re.search(rf"< {ha.SLOW_RECENT_S}\b", prom["SlowAgentLoading"]["expr"])
    assert "unified_slow_load_threshold_seconds" in prom["SlowAgentLoading"]["expr"]
    assert "> 0" in prom["CircuitBreakerOpen"]["expr"]   # open or half-open


# ------------------------------------------------------------------ conditions
def test_nothing_holds_when_everything_is_up(catalog):
    assert ha.conditions(catalog, CORE, all_up(), {"Worker": sample(50)}, gpu(500), []) == []


def test_essential_agent_of_the_profile_down_holds_optional_and_other_profiles_do_not(catalog):
    units = all_up(Worker=unit("Worker", "failed", result="signal"),
                   ModelManagerSuite=unit("ModelManagerSuite", "failed"),
                   Faraway=unit("Faraway", "failed"))
    conds = ha.conditions(catalog, CORE, units, {}, None, None)
    assert names(conds) == [("EssentialAgentDown", "Worker")]
    assert conds[0].detail == "failed, signal"


def test_unknown_systemd_state_concludes_nothing(catalog):
    assert ha.conditions(catalog, CORE, {}, {}, None, None) == []


def test_vram_above_95_percent_holds_at_95_it_does_not(catalog):
    assert names(ha.conditions(catalog, CORE, all_up(), {}, gpu(960), None)) == \
        [("VRAMExhaustion", "gpu0")]
    assert ha.conditions(catalog, CORE, all_up(), {}, gpu(950), None) == []


def test_open_and_half_open_breakers_hold(catalog):
    conds = ha.conditions(catalog, CORE, all_up(), {}, None,
                          [{"agent": "Worker", "state": "open"},
                           {"agent": "Sleeper", "state": "half_open"}])
    assert names(conds) == [("CircuitBreakerOpen", "Sleeper"), ("CircuitBreakerOpen", "Worker")]
    assert {c.detail for c in conds} == {"open", "half-open"}


def test_memory_above_90_percent_of_the_catalog_limit_holds(catalog):
    # Worker's catalog memory_mb is 100
    assert names(ha.conditions(catalog, CORE, all_up(), {"Worker": sample(91)}, None, None)) \
        == [("HighMemoryUsage", "Worker")]
    assert ha.conditions(catalog, CORE, all_up(), {"Worker": sample(90)}, None, None) == []


def test_slow_loading_recent_starts_only_and_a_start_still_in_progress(catalog):
    now = 10_000.0
    units = all_up(Worker=unit("Worker", startup=12.0, start_wall=now - 60),
                   RequestCoordinator=unit("RequestCoordinator", startup=30.0,
                                           start_wall=now - 1000),      # too long ago
                   ObservabilityHub=unit("ObservabilityHub", startup=2.0, start_wall=now),
                   Sleeper=unit("Sleeper", "starting", startup=11.0, start_wall=now - 11,
                                starting=True))
    conds = ha.conditions(catalog, CORE, units, {}, None, None, now_wall=now)
    assert names(conds) == [("SlowAgentLoading", "Sleeper"), ("SlowAgentLoading", "Worker")]
    assert "so far" in [c for c in conds if c.key == "Sleeper"][0].detail


# ------------------------------------------------------------------ pending → firing
class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_an_alert_is_pending_for_its_for_duration_then_firing_then_resolved(catalog):
    clock = Clock()
    st = ha.AlertState(clock)
    down = ha.conditions(catalog, CORE, all_up(Worker=unit("Worker", "failed")), {}, None, None)
    (a,) = st.evaluate(down)
    assert (a["name"], a["state"], a["severity"]) == ("EssentialAgentDown", "pending",
                                                      "critical")
    assert "Worker" in a["summary"] and "unified-ctl agent restart Worker" in a["action"]
    clock.t += 59
    assert st.evaluate(down)[0]["state"] == "pending"
    clock.t += 1
    assert st.evaluate(down)[0]["state"] == "firing"
    assert st.firing()[0]["key"] == "Worker"
    assert st.evaluate([]) == [] and st.since == {}
    clock.t += 1
    assert st.evaluate(down)[0]["state"] == "pending"      # a new episode starts over


def test_slow_loading_has_no_for_and_fires_at_once(catalog):
    now = 5000.0
    st = ha.AlertState(lambda: now)
    conds = ha.conditions(catalog, CORE, all_up(Worker=unit("Worker", startup=15.0,
                                                            start_wall=now - 5)),
                          {}, None, None, now_wall=now)
    assert [a["state"] for a in st.evaluate(conds)] == ["firing"]


# ------------------------------------------------------------------ score
def test_score_is_100_when_everything_is_up_and_quiet(catalog):
    assert ha.health_score(catalog, CORE, all_up(), []) == 100


def test_score_follows_the_documented_formula(catalog):
    # 3 essential in core (ObservabilityHub, RequestCoordinator, Worker), 2 optional
    units = all_up(Worker=unit("Worker", "failed"), Sleeper=unit("Sleeper", "failed"))
    firing = [{"state": "firing", "severity": "critical"}]
    # 60 * 2/3 + 20 * 1/2 + 20 * (1 - 2/4) = 40 + 10 + 10
    assert ha.health_score(catalog, CORE, units, firing) == 60
    pending = [{"state": "pending", "severity": "critical"}]
    assert ha.health_score(catalog, CORE, units, pending) == 70
    two = firing * 2
    assert ha.health_score(catalog, CORE, all_up(), two) == 80
    assert ha.health_score(catalog, CORE, {}, []) is None


def test_dormant_optional_agents_do_not_lower_the_score(catalog):
    units = all_up(ModelManagerSuite=unit("ModelManagerSuite", "dormant"))
    assert ha.health_score(catalog, CORE, units, []) == 100


def test_overall_status():
    firing_crit = [{"state": "firing", "severity": "critical"}]
    assert ha.overall(100, [], []) == "healthy"
    assert ha.overall(90, firing_crit, []) == "critical"
    assert ha.overall(100, [{"state": "pending", "severity": "critical"}], []) == "degraded"
    assert ha.overall(100, [], ["journal"]) == "degraded"
    assert ha.overall(None, [], []) == "degraded"
