"""The hub's /metrics: the fleet metrics the issue names with their labels, read from cached
state at scrape time; never a metric named `up` or process_* of another process; valid
exposition also when sources have nothing (systemd never read, no GPU)."""
from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from unified_agents.builtin import hub_metrics
from unified_core.alerts import AlertState, conditions
from unified_agents.builtin.hub_journal import JournalFollower
from unified_agents.builtin.hub_targets import TargetsWriter

from .test_hub_alerts import CORE, all_up, gpu, sample, unit
from .test_hub_units import View


class FakePoller:
    def __init__(self, name):
        self.name = name
        self.runs, self.errors, self.last_duration_s = 3, 1, 0.012

    def status(self):
        return {"ok": True, "age_s": 1.5, "error": None}


def make_hub(catalog, units=None, samples=None, score=100, journal=True):
    units = all_up() if units is None else units
    samples = {"Worker": sample(50), "ObservabilityHub": sample(30)} if samples is None \
        else samples
    j = None
    if journal:
        j = JournalFollower(None, known=lambda: catalog.agents)
        j.handle({"_SYSTEMD_UNIT": "unified-agent@Worker.service", "PRIORITY": "3",
                  "MESSAGE": "boom", "__CURSOR": "c1"})
        j.handle({"_SYSTEMD_UNIT": "unified-agent@Worker.service", "PRIORITY": "6",
                  "MESSAGE": "ok", "__CURSOR": "c2"})
    alerts = AlertState()
    alerts.evaluate(conditions(catalog, CORE, units, samples, None, None))
    hub = SimpleNamespace(view=View(catalog), systemd=SimpleNamespace(units=units),
                          resources=SimpleNamespace(samples=samples), journal=j, score=score,
                          alerts=alerts, targets=TargetsWriter("/nonexistent/t.json"),
                          render_s=0.004,
                          pollers=lambda: [FakePoller("systemd"), FakePoller("resources")])
    return hub


def scrape(hub, gpu_snap=None):
    reg = hub_metrics.make_registry(hub)
    text = hub_metrics.render(reg, gpu_snap).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return text, fams


def samples_of(fams, name):
    return [(s.labels, s.value) for s in fams[name].samples if s.name.startswith(name)]


def test_fleet_metrics_with_their_labels(catalog):
    _, f = scrape(make_hub(catalog))
    assert ({"agent": "Worker", "required": "true"}, 1.0) in samples_of(f, "unified_agent_up")
    states = [(s.labels["state"], s.value) for s in f["unified_agent_state"].samples
              if s.labels["agent"] == "Sleeper"]
    assert dict(states)["dormant"] == 1.0 and sum(v for _, v in states) == 1.0
    assert len(states) == 7
    assert f["unified_agent_restarts"].type == "counter"
    assert ({"agent": "Worker"}, 50 * 2**20) in samples_of(f, "unified_agent_memory_bytes")
    assert ({"agent": "Worker"}, 100 * 2**20) in samples_of(f, "unified_agent_memory_limit_bytes")
    assert f["unified_agent_cpu_seconds"].type == "counter"
    logs = samples_of(f, "unified_agent_log_messages")
    assert ({"agent": "Worker", "priority": "err"}, 1.0) in logs
    assert ({"agent": "Worker", "priority": "info"}, 1.0) in logs
    assert samples_of(f, "unified_system_health_score") == [({}, 100.0)]
    assert samples_of(f, "unified_profile_info") == [({"profile": "core"}, 1.0)]
    assert samples_of(f, "unified_slow_load_threshold_seconds") == [({}, 10.0)]
    assert samples_of(f, "unified_vram_configured_limit_bytes") == [({}, 4000 * 2**20)]
    info = dict((s.labels["agent"], s.labels) for s in f["unified_agent_info"].samples)
    assert info["Faraway"]["in_profile"] == "false" and info["Worker"]["group"] == "work"


def test_up_is_for_the_profile_and_running_agents_only(catalog):
    _, f = scrape(make_hub(catalog))
    agents = {lab["agent"] for lab, _ in samples_of(f, "unified_agent_up")}
    assert "Faraway" not in agents and "Sleeper" in agents
    _, f = scrape(make_hub(catalog, units=all_up(Faraway=unit("Faraway", "active"))))
    assert "Faraway" in {lab["agent"] for lab, _ in samples_of(f, "unified_agent_up")}


def test_startup_metrics(catalog):
    units = all_up(Worker=unit("Worker", startup=2.5, start_wall=1_700_000_000.0))
    _, f = scrape(make_hub(catalog, units=units))
    assert samples_of(f, "unified_agent_startup_duration_seconds") == [({"agent": "Worker"}, 2.5)]
    assert samples_of(f, "unified_agent_start_time_seconds") == \
        [({"agent": "Worker"}, 1_700_000_000.0)]


def test_no_up_and_no_process_metrics_of_other_processes(catalog):
    text, f = scrape(make_hub(catalog))
    assert "up" not in f
    for name, fam in f.items():
        if name.startswith("process_"):
            assert all(s.labels == {} for s in fam.samples), name   # the hub's own only
    assert "process_resident_memory_bytes" in f


def test_hub_collection_timings(catalog):
    _, f = scrape(make_hub(catalog))
    assert ({"collector": "systemd"}, 0.012) in samples_of(f, "unified_hub_collector_duration_seconds")
    assert ({"collector": "resources"}, 1.0) in samples_of(f, "unified_hub_collector_up")
    assert samples_of(f, "unified_hub_journal_lines") == [({}, 2.0)]
    assert samples_of(f, "unified_hub_metrics_render_seconds") == [({}, 0.004)]


def test_gpu_metrics_when_there_is_a_gpu_and_none_without(catalog):
    text, f = scrape(make_hub(catalog), gpu(960))
    used = samples_of(f, "unified_gpu_memory_used_bytes")
    assert used and used[0][0]["gpu"] == "0" and used[0][1] == 960 * 2**20
    text, f = scrape(make_hub(catalog), None)
    assert not any(n.startswith("unified_gpu") for n in f)


def test_valid_when_systemd_was_never_read_and_nothing_is_known(catalog):
    text, f = scrape(make_hub(catalog, units={}, samples={}, score=None, journal=False))
    assert "unified_agent_state" not in f and "unified_system_health_score" not in f
    assert "unified_agent_info" in f and "unified_hub_targets" in f


def test_hub_alert_counts(catalog):
    units = all_up(Worker=unit("Worker", "failed"))
    _, f = scrape(make_hub(catalog, units=units))
    assert samples_of(f, "unified_hub_alerts") == [
        ({"alertname": "EssentialAgentDown", "severity": "critical", "state": "pending"}, 1.0)]
