"""ServiceRegistry (7200/8200): the directory of agents, from the catalog and systemd.

    GET  /agents            every catalog agent; filters: ?state= ?group= ?profile=
                            ?task_type= ?required= ?in_profile=; ?health=false skips probes
    GET  /agents/NAME       one agent (404 with close names)
    POST /task              {"type": "registry_lookup", "data": "NAME" | {"name": N} |
                            {"task_type": T}}

Fed from the catalog (reloaded when one of its files changes) and from systemd (unit states
through unified_core.systemd, cached for a second so a burst of requests runs systemctl once),
never by agents phoning home: a crashed agent cannot claim to be up. Health is probed on the
HEALTH port of active agents only; a dormant agent's agent port would wake it (and its health
port is not even bound).

The engine is unified_core.fleetview.FleetView (catalog + systemd + health, thread-safe,
cached), which LazyLoader, RequestCoordinator, the twin and the hub read the fleet through
too; its docstring tells the catalog's known gap.
"""
from __future__ import annotations

import threading
import time

from unified_agents import Agent, HTTPError, route
from unified_core.fleetview import FleetView
from unified_core.timefmt import iso
from unified_core.units import UNKNOWN

STATES = ("active", "starting", "dormant", "failed", "stopping", "stopped", "unknown")
_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


def entry(view, name: str, st, health=None, with_health=False) -> dict:
    """One agent as the directory shows it (`st`: its AgentUnit)."""
    snap = view.snap
    a = snap.catalog.agents[name]
    e = {
        "name": a.name, "group": a.group, "host": snap.catalog.settings.host,
        "address": snap.host, "port": a.port, "health_port": a.health_port,
        "url": f"http://{_hostport(snap.host, a.port)}",
        "health_url": f"http://{_hostport(snap.host, a.health_port)}/health",
        "required": a.required, "depends_on": list(a.depends_on),
        "task_types": list(a.task_types), "profiles": list(snap.profiles_of[name]),
        "in_profile": name in snap.members,
        "autoload": name in snap.autoload,
        "state": st.state, "service": st.service, "socket": st.socket,
        "pid": st.pid, "restarts": st.restarts, "result": st.result,
        "since": iso(st.since_wall),
        # the last start's duration; while one is in progress the hub shows the time so far
        "startup_s": st.startup_s if st.state == "active" else None,
        "since_s": round(time.time() - st.since_wall, 1) if st.since_wall else None,
    }
    if with_health:
        e["health"] = health
    return e


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def flag(request, name: str, default: bool) -> bool:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    if v.lower() in _TRUE:
        return True
    if v.lower() in _FALSE:
        return False
    raise HTTPError(400, f"?{name}={v!r} is invalid; allowed: true or false")


class ServiceRegistry(Agent):
    """The directory. Handlers are plain def: systemctl and probes block briefly."""

    def on_start(self) -> None:
        env = self.config.env
        self.view = FleetView(self.config.catalog, log=self.log,
                              state_ttl=env.number("REGISTRY_STATE_TTL_S", 1.0, 0.0, 60),
                              health_ttl=env.number("REGISTRY_HEALTH_TTL_S", None, 0.0, 60))
        self.view.start_watching()
        self.requests_by_route = {"list": 0, "get": 0, "lookup": 0}
        self._count_lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._count_lock:
            self.requests_by_route[kind] += 1

    # ------------------------------------------------------------ HTTP
    @route("GET", "/agents")
    def list_agents(self, request):
        self._count("list")
        # A few stat() calls: a profile switch a moment ago is never reported stale.
        self.view.refresh_catalog()
        snap = self.view.snap
        q = request.query
        names = list(snap.catalog.agents)
        for key in q:
            if key not in ("state", "group", "profile", "task_type", "required", "in_profile",
                           "health"):
                raise HTTPError(400, f"unknown filter ?{key}=; allowed: state, group, profile, "
                                     "task_type, required, in_profile, health")
        if "group" in q:
            groups = snap.catalog.groups
            if q["group"] not in groups:
                raise HTTPError(400, f"unknown group {q['group']!r}; allowed: "
                                     + ", ".join(sorted(groups)))
            names = [n for n in names if snap.catalog.agents[n].group == q["group"]]
        if "profile" in q:
            if q["profile"] not in snap.catalog.profiles:
                raise HTTPError(400, f"unknown profile {q['profile']!r}; allowed: "
                                     + ", ".join(snap.catalog.profiles))
            members = set(snap.catalog.profiles[q["profile"]].agents)
            names = [n for n in names if n in members]
        if "task_type" in q:
            names = [n for n in names if q["task_type"] in snap.catalog.agents[n].task_types]
        if "required" in q:
            req = flag(request, "required", True)
            names = [n for n in names if snap.catalog.agents[n].required == req]
        if "in_profile" in q:
            inp = flag(request, "in_profile", True)
            names = [n for n in names if (n in snap.members) == inp]
        if "state" in q and q["state"] not in STATES:
            raise HTTPError(400, f"unknown state {q['state']!r}; allowed: " + ", ".join(STATES))
        states, age, error = self.view.states()
        if "state" in q:
            names = [n for n in names if states.get(n, UNKNOWN).state == q["state"]]
        with_health = flag(request, "health", True)
        health = self.view.health(names, states) if with_health else {}
        agents = [entry(self.view, n, states.get(n, UNKNOWN), health.get(n), with_health)
                  for n in names]
        out = {"host": snap.catalog.settings.host, "profile": snap.profile,
               "catalog": snap.catalog.path, "count": len(agents),
               "states_age_s": round(age, 3), "agents": agents}
        if error:
            out["systemd_error"] = error
        return out

    @route("GET", "/agents/{name}")
    def get_agent(self, request):
        self._count("get")
        self.view.refresh_catalog()
        return self.lookup(request.params["name"], flag(request, "health", True))

    def lookup(self, name: str, with_health: bool = True) -> dict:
        snap = self.view.snap
        if name not in snap.catalog.agents:
            close = snap.close_names(name)
            raise HTTPError(404, f"unknown agent {name!r}"
                                 + (f"; did you mean {', '.join(close)}?" if close else "")
                                 + f" ({len(snap.catalog.agents)} agents: GET /agents lists them)",
                            did_you_mean=close)
        states, _, error = self.view.states()
        st = states.get(name, UNKNOWN)
        health = self.view.health([name], states).get(name) if with_health else None
        e = entry(self.view, name, st, health, with_health)
        if error:
            e["systemd_error"] = error
        return e

    def handle_task(self, task: dict):
        self._count("lookup")
        data = task.get("data")
        if isinstance(data, str):
            return self.lookup(data)
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return self.lookup(data["name"])
        if isinstance(data, dict) and isinstance(data.get("task_type"), str):
            snap = self.view.snap
            names = snap.by_task.get(data["task_type"], ())
            states, _, _ = self.view.states()
            return {"task_type": data["task_type"],
                    "agents": [entry(self.view, n, states.get(n, UNKNOWN)) for n in names]}
        raise HTTPError(400, 'registry_lookup needs "data": an agent name, {"name": NAME} or '
                             '{"task_type": TYPE}')

    # ------------------------------------------------------------ health and metrics
    def health_checks(self) -> dict:
        return self.view.health_checks()

    def health_info(self) -> dict:
        snap = self.view.snap
        return {"agents": len(snap.catalog.agents), "profile": snap.profile,
                "catalog": snap.catalog.path, "catalog_version": snap.version}

    def metrics_text(self) -> str:
        v = self.view
        lines = []
        for key, help_ in (("systemd_queries", "systemctl state queries (cache misses)."),
                           ("systemd_errors", "Failed systemctl state queries."),
                           ("catalog_reloads", "Catalog reloads after a file changed."),
                           ("catalog_errors", "Catalog changes refused as invalid."),
                           ("health_probes", "Health-port probes of active agents.")):
            name = f"unified_registry_{key}_total"
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter",
                      f"{name} {v.counters[key]}"]
        lines += ["# HELP unified_registry_requests_total Directory requests by kind.",
                  "# TYPE unified_registry_requests_total counter"]
        lines += [f'unified_registry_requests_total{{kind="{k}"}} {n}'
                  for k, n in sorted(self.requests_by_route.items())]
        if v._states_at is not None:
            counts = {s: 0 for s in STATES}
            for st in v._states.values():
                counts[st.state] = counts.get(st.state, 0) + 1
            lines += ["# HELP unified_registry_agents Catalog agents by state (last systemd read).",
                      "# TYPE unified_registry_agents gauge"]
            lines += [f'unified_registry_agents{{state="{s}"}} {n}' for s, n in counts.items()]
        return "\n".join(lines) + "\n"


AGENT = ServiceRegistry
