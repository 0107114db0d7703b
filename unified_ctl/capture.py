"""`unified-ctl debug capture`: everything needed to understand a hang or an outage, in one
JSON file, taken before an emergency stop destroys the evidence (runbook: capture state).

Sections: the hub's /debug/state (only when the hub's service is active: connecting to a
dead hub's port would socket-activate it in the middle of an emergency), systemd's view of
every unit of ours, the fleet table, the last journal lines and errors, the generator's
status, runtime overrides, the catalog on trial, host load, memory and disk. Each section
is taken on its own: one that fails says why and the rest is still captured, so a capture
works with the hub down, the catalog broken or systemd half-answering.
"""
from __future__ import annotations

import json
import os
import socket
import time

from . import __version__
from unified_core import paths

UNIT_PATTERNS = ["unified.target", "unified-profile-*.target", "unified-agent@*.service",
                 "unified-agent@*.socket", "unified-backend@*.service", "unified-agents.slice"]
HUB = "ObservabilityHub"


def _section(fn):
    try:
        return fn()
    except Exception as e:  # a capture must never fail as a whole: record why this part is missing
        return {"error": f"{type(e).__name__}: {e}"}


def hub_state(cat, sd, timeout: float = 3.0):
    if cat is None or HUB not in cat.agents:
        return {"skipped": "no valid catalog or no ObservabilityHub in it"}
    hub = cat.agents[HUB]
    st = sd.show([hub.service], ("Id", "ActiveState", "SubState")).get(hub.service, {})
    if st.get("ActiveState") != "active":
        return {"skipped": f"{HUB} is not running ({st.get('ActiveState')}/{st.get('SubState')}); "
                           "systemd state and journal below are all there is"}
    import http.client

    host = cat.settings.bind_address
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    conn = http.client.HTTPConnection(host, hub.port, timeout=timeout)
    try:
        conn.request("GET", "/debug/state", headers={"User-Agent": "unified-ctl debug capture"})
        resp = conn.getresponse()
        body = resp.read(64 << 20)
    except (OSError, http.client.HTTPException) as e:
        return {"error": f"GET {host}:{hub.port}/debug/state failed: {e or type(e).__name__}"}
    finally:
        conn.close()
    if resp.status != 200:
        return {"error": f"GET /debug/state answered HTTP {resp.status}: {body[:300].decode('utf-8', 'replace')}"}
    try:
        return json.loads(body)
    except ValueError:
        return {"error": "GET /debug/state did not answer JSON", "body": body[:2000].decode("utf-8", "replace")}


def systemd_state(sd) -> dict:
    rows = sd.list_units(UNIT_PATTERNS)
    interesting = [r["unit"] for r in rows if r["active"] != "inactive" or r["sub"] != "dead"]
    return {"units": rows, "properties": sd.show(interesting) if interesting else {}}


def journal(sd, lines: int) -> dict:
    units = ["unified-agent@*", "unified-backend@*", "unified-profile-*", "unified.target"]
    last = sd.journal_run(sd.journal_args(units, lines=lines, output="short-iso")).stdout.splitlines()
    errors = sd.journal_run(sd.journal_args(units, priority="err", lines=100, output="short-iso",
                                            extra=["-b"])).stdout.splitlines()
    gen = sd.journal_run(sd.journal_args([], lines=20, output="short-iso",
                                         extra=["-t", "unified-system-generator"])).stdout.splitlines()
    return {"last": last, "errors_this_boot": errors, "generator": gen}


def host_state() -> dict:
    import psutil

    vm = psutil.virtual_memory()
    disk: dict[str, dict] = {}
    out = {"loadavg": os.getloadavg(), "cpus": os.cpu_count(), "memory_total": vm.total,
           "memory_available": vm.available, "swap_used": psutil.swap_memory().used, "disk": disk}
    for p in (paths.state_dir(), "/var/log/journal", "/"):
        if os.path.exists(p):
            d = psutil.disk_usage(p)
            disk[p] = {"total": d.total, "used": d.used, "free": d.free}
    return out


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def capture(cat, sd, lines: int = 300, hub_timeout: float = 3.0) -> dict:
    from . import config_history
    from unified_core import fleet, profiles, runtime

    t0 = time.monotonic()
    data = {"captured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "unified_version": __version__, "catalog": cat.path if cat else None}
    data["profile"] = _section(lambda: profiles.current_profile(cat) if cat else profiles.read_selected())
    data["hub"] = _section(lambda: hub_state(cat, sd, hub_timeout))
    data["systemd"] = _section(lambda: systemd_state(sd))
    if cat is not None:
        def agents():
            names = set(cat.profiles[profiles.current_profile(cat)].agents) | fleet.running_agents(cat, sd)
            return [r.to_dict() for r in fleet.agent_states(cat, sd, [a for a in cat.agents if a in names])]
        data["agents"] = _section(agents)
    data["journal"] = _section(lambda: journal(sd, lines))
    data["generator"] = _section(lambda: _read_json(paths.generator_status_file()))
    data["runtime"] = _section(lambda: {"auto_restart": not runtime.auto_restart_disabled(),
                                        "launch_environment": runtime.read_launch_environment()})
    data["trial"] = _section(lambda: {"catalog": config_history.trial_catalog(), **config_history.trial_meta()}
                             if config_history.trial_catalog() else None)
    data["host_state"] = _section(host_state)
    data["seconds"] = round(time.monotonic() - t0, 3)
    return data


def default_path() -> str:
    return os.path.join("/var/tmp", f"unified-capture-{socket.gethostname()}-{time.strftime('%Y%m%dT%H%M%S')}.json")


def write(data: dict, path: str) -> str:
    """Write privately (journal lines may hold personal data): mode 0600, atomically."""
    path = os.path.abspath(path)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.write("\n")
    os.rename(tmp, path)
    return path
