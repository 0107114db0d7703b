"""ObservabilityHub (9000/9001): how operators see the fleet.

    GET /health              the hub's own health (SDK; both ports)
    GET /health/summary      runbook's daily check: per-agent state, alerts, health score
                             (?all=1: every catalog agent, not only the profile and running)
    GET /metrics             fleet metrics for Prometheus (job unified_hub; hub_metrics.py)
    GET /circuit_breakers    RequestCoordinator's breakers (asked only while it runs)
    GET /debug/state         runbook's "capture state": everything the hub knows, one JSON
    GET /dashboard           the operator's page (no external resources; updates itself)
    GET /dashboard/data      what the page shows, as JSON
    POST /task               {"type": "observability", "data": "summary" | "alerts" | "state"}

Sources, each on its own timer with its result cached (unified_core/poller.py): systemd unit state
(unified_core.units.SystemdCollector over the FleetView every fleet-reading agent uses), memory/CPU per agent from cgroups or psutil
(ResourceCollector), the GPU (unified_agents.gpu.GpuPoller), journald (hub_journal: `journalctl
-o json -f` of the agents' slice, position kept across restarts), and the JSON of two peers
(hub_peers: breakers, LLM routing). A failing source degrades its part of the view and the
hub's /health, never a request. The hub never connects to an agent port of an agent that is
not running (that would socket-activate it).

After each systemd or resource refresh the hub evaluates the five alerts (unified_core.alerts: the
same rules as etc/prometheus/unified-rules.yml), the health score, and rewrites the
Prometheus file_sd targets when they changed (hub_targets).

Settings (catalog `environment:` of ObservabilityHub):
  HUB_INTERVAL_S       systemd / resources / peers poll interval, s (10; state changes
                       logged by systemd trigger an early systemd read)
  HUB_GPU_INTERVAL_S   NVML poll interval, s (5)
  HUB_TARGETS_FILE     file_sd file (/var/lib/unified-prometheus/targets.json)
  HUB_JOURNAL          follow journald (true)
"""
from __future__ import annotations

import os
import threading
import time

from unified_agents import Agent, HTTPError, Response, route

from unified_core.alerts import AlertState, conditions, health_score, overall
from unified_core.timefmt import iso
from .hub_journal import PRIORITIES, STATE_FILE, JournalFollower
from .hub_peers import PeerPoller, open_breakers, routing_split
from .hub_targets import DEFAULT_PATH, TargetsWriter, target_groups
from unified_core.units import ResourceCollector, SystemdCollector

COORDINATOR = "RequestCoordinator"
MODEL_MANAGER = "ModelManagerSuite"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ObservabilityHub(Agent):
    health_inline = True   # health hooks only read cached results: answer on the I/O loop

    score: int | None = None
    render_s = 0.0
    journal: JournalFollower | None = None
    systemd: SystemdCollector

    # ------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        env = self.config.env
        interval = env.number("HUB_INTERVAL_S", 10.0, lo=0.2, hi=3600)
        gpu_interval = env.number("HUB_GPU_INTERVAL_S", 5.0, lo=0.2, hi=3600)
        targets_path = env.string("HUB_TARGETS_FILE", DEFAULT_PATH)
        follow = env.boolean("HUB_JOURNAL", True)

        from unified_core.fleetview import FleetView
        from unified_core.systemd import Systemd

        self.started_wall = time.time()
        self.sd = Systemd()
        # Only the units that changed are shown while the journal tells which did (units.py)
        self.view = FleetView(
            self.config.catalog, systemd=self.sd, log=self.log,
            events_ok=lambda: self.journal is not None and self.journal.running)
        self._eval_lock = threading.Lock()
        self.alerts = AlertState()
        self.targets = TargetsWriter(targets_path, log=self.log)
        units = lambda: self.systemd.units  # noqa: E731
        self.systemd = SystemdCollector(self.view, interval, on_update=self.evaluate,
                                        log=self.log)
        self.resources = ResourceCollector(units, interval, on_update=self.evaluate,
                                           log=self.log)
        self.breakers = PeerPoller("circuit_breakers", COORDINATOR, "/circuit_breakers",
                                   self.view, units, interval, on_update=self.evaluate,
                                   log=self.log)
        self.routing = PeerPoller("routing", MODEL_MANAGER, "/routing/stats", self.view,
                                  units, interval, log=self.log)
        state_dir = self.config.state_directory
        self.journal = JournalFollower(
            os.path.join(state_dir.split(":")[0], STATE_FILE) if state_dir else None,
            known=lambda: self.view.snap.catalog.agents, journalctl=self.sd.journalctl,
            on_unit_event=lambda agent: self.systemd.touch(agent), log=self.log) \
            if follow else None

        from unified_agents.gpu import GpuPoller

        self.gpu = GpuPoller(gpu_interval, log=self.log)
        self._registry = None
        self._registry_lock = threading.Lock()
        # One systemd read before READY=1: the first /metrics and /health/summary have data.
        self.systemd.run_once()
        self.view.start_watching()
        for p in self.pollers():
            p.start()
        self.gpu.start()
        if self.journal is not None:
            self.journal.start()

    def on_stop(self) -> None:
        for p in self.pollers():
            p.stop()
        self.gpu.stop(0.5)
        if self.journal is not None:
            self.journal.stop()

    def pollers(self):
        return (self.systemd, self.resources, self.breakers, self.routing)

    # ------------------------------------------------------------ evaluation
    def fresh_breakers(self):
        """Open breakers, or None when RequestCoordinator's view is unknown or old."""
        b = self.breakers
        if not b.available or b.stale() or b.reason != "ok":
            return None
        return open_breakers(b.data)

    def evaluate(self) -> None:
        """Alerts, score and file_sd targets from the latest cached facts."""
        with self._eval_lock:
            snap = self.systemd.snap or self.view.snap
            units = self.systemd.units
            conds = conditions(snap.catalog, snap.members, units, self.resources.samples,
                               self.gpu.latest(), self.fresh_breakers())
            alerts = self.alerts.evaluate(conds)
            self.score = health_score(snap.catalog, snap.members, units, alerts)
            if units:
                self.targets.write(target_groups(snap.catalog, snap.members, units, snap.host))

    # ------------------------------------------------------------ views
    def stale_sources(self) -> list[str]:
        out = [p.name for p in (self.systemd, self.resources) if p.stale()]
        if self.journal is not None and not self.journal.running:
            out.append("journal")
        return out

    def agent_row(self, name: str, counts: dict, errors: dict, vram: dict,
                  members) -> dict:
        snap = self.view.snap
        a = snap.catalog.agents[name]
        u = self.systemd.units.get(name)
        s = self.resources.samples.get(name)
        row = counts.get(name) or [0] * len(PRIORITIES)
        errs = errors.get(name) or []
        last = errs[-1] if errs else None
        return {
            "name": name, "group": a.group, "required": a.required,
            "in_profile": name in members, "port": a.port, "health_port": a.health_port,
            "state": u.state if u else "unknown",
            "service": u.service if u else None, "socket": u.socket if u else None,
            "pid": u.pid if u else None, "restarts": u.restarts if u else 0,
            "result": u.result if u else None,
            "memory_bytes": s.memory_bytes if s else None,
            "memory_limit_bytes": a.resources.memory_mb << 20,
            "memory_source": s.source if s else None,
            "cpu_seconds": None if not s or s.cpu_seconds is None else round(s.cpu_seconds, 2),
            "cpu_percent": s.cpu_percent if s else None,
            "vram_bytes": vram.get(name), "vram_budget_bytes": a.resources.vram_mb << 20,
            "startup_s": u.startup_s if u else None,
            "started_at": iso(u.start_wall) if u and u.running else None,
            "uptime_s": round(time.time() - u.start_wall, 1)
            if u and u.running and u.start_wall else None,
            "log_errors": sum(row[:4]), "log_warnings": row[4],
            "last_error": None if last is None else {
                "at": iso(last.get("ts")), "priority": last.get("priority"),
                "message": last.get("message"), "source": last.get("source")},
        }

    def summary(self, all_agents: bool = False) -> dict:
        snap = self.view.snap
        units = self.systemd.units
        members = snap.members
        names = [n for n in snap.catalog.agents
                 if all_agents or n in members or (n in units and units[n].running)]
        counts: dict = {}
        errors: dict = {}
        if self.journal is not None:
            counts, errors = self.journal.snapshot()
        gsnap = self.gpu.latest()
        vram = gsnap.by_agent() if gsnap is not None else {}
        rows = [self.agent_row(n, counts, errors, vram, members) for n in names]
        by_state: dict = {}
        for r in rows:
            by_state[r["state"]] = by_state.get(r["state"], 0) + 1
        essential = [r for r in rows if r["required"] and r["in_profile"]]
        alerts = self.alerts.current
        stale = self.stale_sources()
        return {
            "status": overall(self.score, alerts, stale),
            "health_score": self.score,
            "profile": snap.profile, "host": snap.catalog.settings.host,
            "generated_at": iso(time.time()),
            "systemd_read_at": iso(self.systemd.at_wall),
            "counts": by_state,
            "essential": {"total": len(essential),
                          "up": sum(1 for r in essential if r["state"] == "active"),
                          "down": [r["name"] for r in essential if r["state"] != "active"]},
            "alerts": [self.alert_view(a) for a in alerts],
            "stale_sources": stale,
            "gpu": self.gpu_view(gsnap),
            "agents": rows,
        }

    @staticmethod
    def alert_view(a: dict) -> dict:
        return {"name": a["name"], "severity": a["severity"], "state": a["state"],
                "labels": a["labels"], "since": iso(a["since"]),
                "for_s": a["for_s"], "summary": a["summary"], "action": a["action"]}

    def gpu_view(self, gsnap) -> dict:
        if gsnap is None:
            return {"available": False, "reason": self.gpu.reason}
        return {"available": True, "reason": self.gpu.reason,
                "gpus": [{"index": g.index, "name": g.name, "total_bytes": g.total_bytes,
                          "used_bytes": g.used_bytes,
                          "utilization_percent": g.utilization_percent}
                         for g in gsnap.gpus]}

    def breakers_view(self) -> dict:
        v = self.breakers.view_dict()
        v["open"] = open_breakers(self.breakers.data)
        return v

    def routing_view(self) -> dict:
        v = self.routing.view_dict()
        v["split"] = routing_split(self.routing.data)
        return v

    # ------------------------------------------------------------ endpoints
    @route("GET", "/health/summary")
    def health_summary(self, request):
        return self.summary(all_agents=request.query.get("all") in ("1", "true", "yes"))

    @route("GET", "/metrics")
    def metrics(self, request):
        from .hub_metrics import make_registry, render

        t0 = time.perf_counter()
        if self._registry is None:
            with self._registry_lock:
                if self._registry is None:
                    self._registry = make_registry(self)
        body = render(self._registry, self.gpu.latest())
        self.render_s = time.perf_counter() - t0
        return Response(200, body, METRICS_TYPE)

    @route("GET", "/circuit_breakers")
    def circuit_breakers(self, request):
        b = self.breakers
        age = b.age_s()
        if age is None or age > 1.0:
            b.run_once()   # fresh when RequestCoordinator runs; else the last answer + why
        return self.breakers_view()

    @route("GET", "/debug/state")
    def debug_state(self, request):
        snap = self.view.snap
        counts, errors = self.journal.snapshot() if self.journal is not None else ({}, {})
        gsnap = self.gpu.latest()
        groups = target_groups(snap.catalog, snap.members, self.systemd.units,
                               snap.host) if self.systemd.units else []
        return {
            "hub": {"agent": self.name, "pid": os.getpid(), "started_at": iso(self.started_wall),
                    "uptime_s": round(time.time() - self.started_wall, 1),
                    "intervals_s": {p.name: p.interval_s for p in self.pollers()},
                    "metrics_render_ms": round(self.render_s * 1000, 2)},
            "catalog": {"path": snap.catalog.path, "version": snap.version,
                        "problem": snap.problem or None, "profile": snap.profile,
                        "agents": len(snap.catalog.agents)},
            "summary": self.summary(all_agents=True),
            "units": {n: u.as_dict() for n, u in self.systemd.units.items()},
            "systemd_shows": self.systemd.shown,
            "resources": {n: s.as_dict() for n, s in self.resources.samples.items()},
            "collectors": {**{p.name: p.status() for p in self.pollers()},
                           "journal": self.journal.status() if self.journal else None,
                           "gpu": self.gpu.status()},
            "journal": {"counts": {a: dict(zip(PRIORITIES, r)) for a, r in counts.items()},
                        "last_errors": errors},
            "alerts_pending_since": {f"{k[0]}/{k[1]}": iso(v)
                                     for k, v in self.alerts.since.items()},
            "gpu": gsnap.as_dict() if gsnap is not None else {"available": False,
                                                               "reason": self.gpu.reason},
            "circuit_breakers": self.breakers_view(),
            "routing": self.routing_view(),
            "targets": {**self.targets.status(), "groups": groups},
            "tracing": self.tracer.as_dict() if self.tracer else {"enabled": False},
        }

    @route("GET", "/dashboard")
    def dashboard(self, request):
        from .hub_dashboard import PAGE

        return Response(200, PAGE, "text/html; charset=utf-8",
                        {"Cache-Control": "no-cache"})

    @route("GET", "/dashboard/data")
    def dashboard_data(self, request):
        out = self.summary()
        out["circuit_breakers"] = {k: v for k, v in self.breakers_view().items()
                                   if k != "data"}
        out["routing"] = {k: v for k, v in self.routing_view().items() if k != "data"}
        out["collectors"] = {p.name: p.status() for p in self.pollers()}
        if self.journal is not None:
            out["collectors"]["journal"] = self.journal.status()
        return out

    @route("GET", "/")
    def root(self, request):
        return Response(302, b"", None, {"Location": "/dashboard"})

    def handle_task(self, task: dict):
        what = task.get("data", "summary")
        if what == "summary":
            return self.summary()
        if what == "alerts":
            return {"alerts": [self.alert_view(a) for a in self.alerts.current],
                    "health_score": self.score}
        if what == "state":
            return self.debug_state(None)
        raise HTTPError(400, f"observability task data {what!r} is not known; allowed: "
                             "summary, alerts, state")

    # ------------------------------------------------------------ own health
    def health_checks(self) -> dict:
        checks = {}
        for p in self.pollers()[:2]:
            st = p.status()
            checks[p.name] = {"status": "ok" if st["ok"] else "degraded",
                              "age_s": st["age_s"], "error": st["error"]}
        if self.journal is not None:
            st = self.journal.status()
            checks["journal"] = {"status": "ok" if st["ok"] else "degraded",
                                 "lines": st["lines"], "error": st["error"]}
        else:
            checks["journal"] = {"status": "ok", "note": "disabled (HUB_JOURNAL=false)"}
        g = self.gpu.status()
        checks["gpu"] = {"status": "ok", "available": g["available"], "reason": g["reason"]}
        t = self.targets.status()
        checks["targets"] = {"status": "ok" if t["ok"] else "degraded", "path": t["path"],
                             "error": t["error"], "note": t["note"]}
        problem = self.view.snap.problem
        checks["catalog"] = {"status": "degraded" if problem else "ok",
                             "path": self.view.snap.catalog.path}
        if problem:
            checks["catalog"]["problem"] = problem
        return checks

    def health_info(self) -> dict:
        firing = self.alerts.firing()
        return {"profile": self.view.snap.profile, "health_score": self.score,
                "alerts_firing": [a["name"] + ("/" + a["key"] if a["key"] else "")
                                  for a in firing]}


AGENT = ObservabilityHub
