"""The hub's /metrics: prometheus_client Collector objects that read the collectors' cached
results at scrape time (like prometheus_client's own ProcessCollector), so a scrape never
runs systemctl, never waits on a source and never fails because one failed.

Fleet metrics (labels: agent, and what each names):
  unified_agent_info{agent,group,required,in_profile}   1 for every catalog agent
  unified_agent_state{agent,state}                       1 for the current state, 0 others
  unified_agent_up{agent,required}                       1 process running (agents of the
                                                         selected profile and running ones)
  unified_agent_restarts_total{agent}                    systemd's NRestarts
  unified_agent_memory_bytes{agent}                      cgroup / psutil (running agents)
  unified_agent_memory_limit_bytes{agent}                the catalog's memory_mb (MemoryMax)
  unified_agent_cpu_seconds_total{agent}                 cgroup / systemd / psutil
  unified_agent_startup_duration_seconds{agent}          exec → READY=1 of the last start
                                                         (time so far while starting)
  unified_agent_start_time_seconds{agent}                when the last start began (epoch)
  unified_agent_log_messages_total{agent,priority}       journald entries (priority names)
  unified_gpu_*                                          unified_agents.gpu (absent: no GPU)
  unified_vram_configured_limit_bytes, unified_slow_load_threshold_seconds  catalog settings
  unified_profile_info{profile}                          the selected profile (1); not a
                                                         label of every series, so a profile
                                                         switch does not start new series
  unified_system_health_score                            0-100 (unified_core/alerts.py)
  unified_hub_alerts{alertname,severity,state}           the hub's own alert evaluation
The hub's own collection: unified_hub_collector_{duration_seconds,age_seconds,up,runs_total,
errors_total}{collector}, unified_hub_journal_*, unified_hub_targets, and process_* of the
hub process itself. Never a metric named `up` or process_* for another process.
"""
from __future__ import annotations

from unified_core.alerts import MIB
from .hub_journal import PRIORITIES

STATES = ("active", "starting", "dormant", "failed", "stopping", "stopped", "unknown")


class FleetCollector:
    def __init__(self, hub):
        self.hub = hub

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        hub = self.hub
        snap = hub.view.snap
        cat = snap.catalog
        members = snap.members
        units = hub.systemd.units
        samples = hub.resources.samples

        info = GaugeMetricFamily("unified_agent_info", "Catalog facts of every agent.",
                                 labels=("agent", "group", "required", "in_profile"))
        limit = GaugeMetricFamily("unified_agent_memory_limit_bytes",
                                  "The agent's memory limit (catalog memory_mb = MemoryMax).",
                                  labels=("agent",))
        for a in cat.agents.values():
            info.add_metric((a.name, a.group, _b(a.required), _b(a.name in members)), 1)
            limit.add_metric((a.name,), a.resources.memory_mb * MIB)
        yield info
        yield limit

        if units:
            state = GaugeMetricFamily(
                "unified_agent_state", "1 for the agent's current state (systemd's view): "
                "active, starting, dormant (socket listening, no process), failed, stopping, "
                "stopped, unknown.", labels=("agent", "state"))
            up = GaugeMetricFamily(
                "unified_agent_up", "1 when the agent's process runs (systemd: active). "
                "Agents of the selected profile and any running agent.",
                labels=("agent", "required"))
            restarts = CounterMetricFamily("unified_agent_restarts_total",
                                           "Automatic restarts by systemd (NRestarts).",
                                           labels=("agent",))
            startup = GaugeMetricFamily(
                "unified_agent_startup_duration_seconds",
                "Last start, exec to ready (READY=1); time so far while still starting.",
                labels=("agent",))
            started = GaugeMetricFamily("unified_agent_start_time_seconds",
                                        "When the agent's last start began (unix time).",
                                        labels=("agent",))
            for name, u in units.items():
                for s in STATES:
                    state.add_metric((name, s), 1 if u.state == s else 0)
                a = cat.agents.get(name)
                if a is not None and (name in members or u.running):
                    up.add_metric((name, _b(a.required)), 1 if u.state == "active" else 0)
                restarts.add_metric((name,), u.restarts)
                if u.startup_s is not None:
                    startup.add_metric((name,), u.startup_s)
                if u.start_wall is not None:
                    started.add_metric((name,), round(u.start_wall, 3))
            yield from (state, up, restarts, startup, started)

        mem = GaugeMetricFamily("unified_agent_memory_bytes",
                                "Memory of the agent's unit (cgroup memory.current, else RSS "
                                "summed over its processes).", labels=("agent",))
        cpu = CounterMetricFamily("unified_agent_cpu_seconds_total",
                                  "CPU time of the agent's unit (user + system).",
                                  labels=("agent",))
        for name, s in samples.items():
            if s.memory_bytes is not None:
                mem.add_metric((name,), s.memory_bytes)
            if s.cpu_seconds is not None:
                cpu.add_metric((name,), round(s.cpu_seconds, 3))
        yield mem
        yield cpu

        counts, _ = hub.journal.snapshot() if hub.journal is not None else ({}, {})
        logs = CounterMetricFamily("unified_agent_log_messages_total",
                                   "journald entries of the agent by priority.",
                                   labels=("agent", "priority"))
        for name, row in sorted(counts.items()):
            for p, n in zip(PRIORITIES, row):
                if n:
                    logs.add_metric((name, p), n)
        yield logs

        # not unified_vram_limit_bytes: VRAMOptimizerAgent exports that, the live value
        # (POST /vram/limit changes it); this is the catalog's
        yield GaugeMetricFamily("unified_vram_configured_limit_bytes",
                                "VRAM_LIMIT_MB as configured in the catalog (VRAMOptimizerAgent's "
                                "unified_vram_limit_bytes is the live value).",
                                value=cat.settings.limits.vram_limit_mb * MIB)
        yield GaugeMetricFamily("unified_slow_load_threshold_seconds",
                                "SlowAgentLoading threshold (lazy_loader.slow_load_threshold).",
                                value=cat.lazy_loader.slow_load_threshold_s)
        prof = GaugeMetricFamily("unified_profile_info", "The selected profile.",
                                 labels=("profile",))
        prof.add_metric((snap.profile,), 1)
        yield prof

        score = hub.score
        if score is not None:
            yield GaugeMetricFamily("unified_system_health_score",
                                    "Fleet health 0-100: 60 x essential up + 20 x optional not "
                                    "failed + 20 x (1 - alerts); see the hub's docs.",
                                    value=score)
        alerts = GaugeMetricFamily("unified_hub_alerts",
                                   "Alerts of the hub's own evaluation (same rules as "
                                   "unified-rules.yml).", labels=("alertname", "severity", "state"))
        tally: dict = {}
        for a in hub.alerts.current:
            k = (a["name"], a["severity"], a["state"])
            tally[k] = tally.get(k, 0) + 1
        for k, n in sorted(tally.items()):
            alerts.add_metric(k, n)
        yield alerts


class HubCollector:
    """The hub's own collection timings and health."""

    def __init__(self, hub):
        self.hub = hub

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        hub = self.hub
        dur = GaugeMetricFamily("unified_hub_collector_duration_seconds",
                                "Duration of the collector's last run.", labels=("collector",))
        age = GaugeMetricFamily("unified_hub_collector_age_seconds",
                                "Seconds since the collector's last good run.",
                                labels=("collector",))
        ok = GaugeMetricFamily("unified_hub_collector_up",
                               "1 when the collector's last run worked and is recent.",
                               labels=("collector",))
        runs = CounterMetricFamily("unified_hub_collector_runs_total", "Collector runs.",
                                   labels=("collector",))
        errs = CounterMetricFamily("unified_hub_collector_errors_total",
                                   "Collector runs that failed.", labels=("collector",))
        for p in hub.pollers():
            st = p.status()
            dur.add_metric((p.name,), p.last_duration_s)
            if st["age_s"] is not None:
                age.add_metric((p.name,), st["age_s"])
            ok.add_metric((p.name,), 1 if st["ok"] else 0)
            runs.add_metric((p.name,), p.runs)
            errs.add_metric((p.name,), p.errors)
        yield from (dur, age, ok, runs, errs)
        j = hub.journal
        if j is not None:
            st = j.status()
            yield CounterMetricFamily("unified_hub_journal_lines_total",
                                      "journald entries read by the hub.", value=st["lines"])
            yield GaugeMetricFamily("unified_hub_journal_up",
                                    "1 while journalctl -f runs and reads.",
                                    value=1 if st["ok"] else 0)
            if st["lag_s"] is not None:
                yield GaugeMetricFamily("unified_hub_journal_lag_seconds",
                                        "Age of the last journal entry when it was read.",
                                        value=st["lag_s"])
            yield CounterMetricFamily("unified_hub_journal_restarts_total",
                                      "Times journalctl had to be started again.",
                                      value=max(0, st["spawns"] - 1))
        t = hub.targets.status()
        yield GaugeMetricFamily("unified_hub_targets", "Targets in the file_sd file.",
                                value=t["targets"])
        yield GaugeMetricFamily("unified_hub_metrics_render_seconds",
                                "Time the previous /metrics took to render.",
                                value=hub.render_s)


def _b(v: bool) -> str:
    return "true" if v else "false"


def make_registry(hub):
    from prometheus_client import CollectorRegistry, ProcessCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(hub))
    reg.register(HubCollector(hub))
    ProcessCollector(registry=reg)   # the hub's own process (job unified_hub)
    return reg


def render(reg, gpu_snap) -> bytes:
    from prometheus_client import generate_latest

    from unified_agents.gpu import prometheus_lines

    text = generate_latest(reg)
    lines = prometheus_lines(gpu_snap)
    if lines:
        text += ("\n".join(lines) + "\n").encode()
    return text
