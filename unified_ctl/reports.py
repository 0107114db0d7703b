"""`unified-ctl report weekly|capacity`: the runbook's weekly performance review and monthly
capacity planning, as Markdown + JSON (+ a PNG when python3-matplotlib is installed).

Sources, each optional except the journal, each saying why when it is missing:
- the journal (always): lifecycle of every agent from systemd, warnings/errors, breaker
  openings logged by RequestCoordinator (report_journal.py);
- SystemDigitalTwin's resource snapshots (GET /history/snapshots when the twin runs, else
  its twin.db read as a consistent copy): memory/VRAM peaks, resource trend;
- ObservabilityHub's /health/summary (alerts firing now), ModelManagerSuite's
  /routing/stats (LLM routing split), only when their services are active (connecting to a
  dormant agent's port would start it just for a report);
- systemd now (memory per running agent) and our own capacity samples (one per report run,
  in the reports dir), the trend of last resort.
"""
from __future__ import annotations

import json
import os
import socket
import time

from . import __version__
from unified_core import fleet, paths, profiles
from unified_core.errors import UnifiedError
from .report_journal import FIELDS, analyse

WEEK = 7 * 86400


def _entries(sd, args: list[str]) -> tuple[list[dict], str | None]:
    proc = sd.journal_run(args, timeout=300)
    if proc.returncode != 0 and not proc.stdout:
        return [], (proc.stderr or "").strip() or f"journalctl exited {proc.returncode}"
    out = []
    for line in proc.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # "-- No entries --" and the like
    return out, None


def journal_window(sd, since: float, until: float) -> tuple[list[dict], list[dict], str | None]:
    """(PID 1's entries about our agents, the agents' warning-or-worse entries, error)."""
    span = ["--since", f"@{int(since)}", "--until", f"@{int(until)}", "-o", "json",
            "--output-fields=" + ",".join(FIELDS)]
    life, err = _entries(sd, [sd.journalctl, "--no-pager", "_PID=1", *span])
    msgs, err2 = _entries(sd, [sd.journalctl, "--no-pager", "-p", "warning", "-u", "unified-agent@*", *span])
    life = [e for e in life if str(e.get("UNIT", "")).startswith("unified-agent@")]
    msgs = [e for e in msgs if str(e.get("_SYSTEMD_UNIT", "")).startswith("unified-agent@")]
    return life, msgs, err or err2


def http_json(cat, sd, agent: str, path: str, timeout: float = 5.0):
    """GET an agent's endpoint, only if its service is active. (data, None) or (None, why)."""
    if cat is None or agent not in cat.agents:
        return None, f"{agent} is not in the catalog"
    a = cat.agents[agent]
    st = sd.show([a.service], ("Id", "ActiveState")).get(a.service, {})
    if st.get("ActiveState") != "active":
        return None, f"{agent} is not running ({st.get('ActiveState', '?')})"
    import http.client

    host = cat.settings.bind_address
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    conn = http.client.HTTPConnection(host, a.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "unified-ctl report"})
        resp = conn.getresponse()
        body = resp.read(32 << 20)
    except (OSError, http.client.HTTPException) as e:
        return None, f"GET {agent} {path} failed: {e or type(e).__name__}"
    finally:
        conn.close()
    if resp.status == 404:
        return None, f"{agent} does not serve {path} (HTTP 404)"
    if resp.status != 200:
        return None, f"{agent} {path} answered HTTP {resp.status}"
    try:
        return json.loads(body), None
    except ValueError:
        return None, f"{agent} {path} did not answer JSON"


def _flatten(snap: dict) -> list[dict]:
    """A twin snapshot → one row per agent (VRAM from the snapshot's GPU view, if any)."""
    gpu = snap.get("gpu")
    gpu = gpu if isinstance(gpu, dict) else {}
    by_agent = gpu.get("by_agent")
    by_agent = by_agent if isinstance(by_agent, dict) else {}
    out = []
    for a in snap.get("agents") or []:
        if not isinstance(a, dict) or not a.get("agent"):
            continue
        vram = by_agent.get(a["agent"])
        out.append({"time": float(snap["ts"]), "agent": a["agent"], "memory_bytes": a.get("memory_bytes"),
                    "vram_mb": round(vram / 2**20) if isinstance(vram, (int, float)) else None})
    return out


def _twin_http(cat, sd, since: float, until: float, page: int = 1000, max_pages: int = 100):
    rows: list[dict] = []
    after = 0
    for _ in range(max_pages):
        data, why = http_json(cat, sd, "SystemDigitalTwin", f"/history/snapshots?since={since:.0f}"
                              f"&until={until:.0f}&limit={page}&after_id={after}", timeout=30)
        if data is None:
            return (rows, None) if rows else (None, why)
        snaps = [x for x in data.get("snapshots", []) if isinstance(x, dict) and "ts" in x] \
            if isinstance(data, dict) else []
        for x in snaps:
            rows += _flatten(x)
        if len(snaps) < page:
            break
        after = snaps[-1]["id"]
    return rows, None


TWIN_SQL = ("SELECT s.id, s.ts, s.gpu, a.agent, a.memory_bytes FROM snapshots s "
            "JOIN snapshot_agents a ON a.snapshot_id = s.id WHERE s.ts >= ? AND s.ts <= ? ORDER BY s.id")


def _twin_db(since: float, until: float):
    """The twin's database when the twin is not running: a consistent copy read as its owner
    (backup.sqlite_snapshot), never the live file as root."""
    import sqlite3
    import tempfile

    from .backup import sqlite_snapshot

    path = os.path.join(paths.state_dir(), "twin.db")
    if not os.path.exists(path):
        return None, f"no {path}"
    with tempfile.TemporaryDirectory(prefix="unified-report-") as tmp:
        copy = os.path.join(tmp, "twin.db")
        try:
            sqlite_snapshot(path, copy)
            c = sqlite3.connect(copy)
            try:
                found = c.execute(TWIN_SQL, (since, until)).fetchall()
            finally:
                c.close()
        except (sqlite3.Error, OSError, UnifiedError) as e:
            return None, f"cannot read {path}: {e}"
    snaps: dict[int, dict] = {}
    for sid, t, gpu, agent, mem in found:
        s = snaps.setdefault(sid, {"ts": t, "agents": [], "gpu": None})
        if gpu and s["gpu"] is None:
            try:
                s["gpu"] = json.loads(gpu)
            except ValueError:
                pass
        s["agents"].append({"agent": agent, "memory_bytes": mem})
    return [r for s in snaps.values() for r in _flatten(s)], None


def twin_resources(cat, sd, since: float, until: float) -> tuple[list[dict], str | None]:
    """Resource rows [{time, agent, memory_bytes, vram_mb}] from SystemDigitalTwin's snapshots:
    its HTTP API when it runs, else its database read-only. ([], why) when neither has any."""
    rows, why = _twin_http(cat, sd, since, until)
    if rows is None:
        rows, why2 = _twin_db(since, until)
        if rows is None:
            return [], f"{why}; database: {why2}"
        why = None
    if not rows:
        return [], "SystemDigitalTwin has no resource snapshots in this window"
    return rows, why


def peaks(resources: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in resources:
        p = out.setdefault(r["agent"], {"memory_peak_bytes": None, "vram_peak_mb": None})
        for key, src in (("memory_peak_bytes", "memory_bytes"), ("vram_peak_mb", "vram_mb")):
            v = r.get(src)
            if isinstance(v, (int, float)) and (p[key] is None or v > p[key]):
                p[key] = v
    return out


def weekly(cat, sd, until: float | None = None, days: float = 7) -> dict:
    until = until or time.time()
    since = until - days * 86400
    missing: list[str] = []
    life, msgs, jerr = journal_window(sd, since, until)
    if jerr:
        missing.append(f"journal: {jerr}")
    names = list(cat.agents)
    states = {r.agent: r for r in fleet.agent_states(cat, sd, names)}
    active_now = {n: states[n].state == "active" for n in names}
    weeks, breakers = analyse(life, msgs, since, until, active_now)
    resources, why = twin_resources(cat, sd, since, until)
    if why:
        missing.append(f"memory and VRAM peaks over the week (SystemDigitalTwin history): {why}; "
                       "memory shown is now, from systemd")
    pk = peaks(resources)
    threshold = cat.lazy_loader.slow_load_threshold_s
    rows = []
    for n in names:
        if n not in weeks:
            continue
        w = weeks[n].to_dict()
        a = cat.agents[n]
        row = {"name": n, "agent": n, "group": a.group, "required": a.required, **{k: v for k, v in w.items() if k != "timeline"},
               "slow_loads": [t for t in w["load_times"] if t > threshold],
               "memory_now_bytes": states[n].memory_bytes, "state_now": states[n].state,
               "memory_peak_bytes": (pk.get(n) or {}).get("memory_peak_bytes") or w["memory_peak_bytes"],
               "vram_peak_mb": (pk.get(n) or {}).get("vram_peak_mb")}
        rows.append(row)
    slow = [{"name": r["agent"], "agent": r["agent"], "seconds": s} for r in rows for s in r["slow_loads"]]
    alerts: dict[str, list[dict] | None] = {
        "EssentialAgentDown": [{"name": r["agent"], "agent": r["agent"], "time": t, "seconds": round(s, 1)}
                               for r in rows if r["required"] for t, s in r["failure_episodes"]],
        "SlowAgentLoading": slow,
        "CircuitBreakerOpen": breakers,
    }
    summary, why = http_json(cat, sd, "ObservabilityHub", "/health/summary")
    alerts["firing_now"] = summary.get("alerts") if isinstance(summary, dict) else None
    if why:
        missing.append(f"alerts firing now (ObservabilityHub /health/summary): {why}")
    missing.append("HighMemoryUsage and VRAMExhaustion episodes: evaluated by the hub/Prometheus, "
                   "not kept in the journal; see Alertmanager history")
    routing, why = http_json(cat, sd, "ModelManagerSuite", "/routing/stats")
    if why:
        missing.append(f"LLM routing split (ModelManagerSuite /routing/stats): {why}")
    ess = [r["availability"] for r in rows if r["required"] and r["availability"] is not None]
    return {
        "report": "weekly", "host": socket.gethostname(), "unified_version": __version__,
        "generated": time.time(), "since": since, "until": until, "profile": profiles.current_profile(cat),
        "catalog": cat.path,
        "totals": {"agents_seen": len(rows), "starts": sum(r["starts"] for r in rows),
                   "failures": sum(r["failures"] for r in rows), "restarts": sum(r["restarts"] for r in rows),
                   "oom_kills": sum(r["oom_kills"] for r in rows), "idle_exits": sum(r["idle_exits"] for r in rows),
                   "slow_loads": len(slow), "errors": sum(r["errors"] for r in rows),
                   "essential_availability_min": min(ess) if ess else None},
        "agents": rows, "alerts": alerts, "routing": routing, "slow_load_threshold_s": threshold,
        "timeline": {n: weeks[n].timeline for n in weeks if weeks[n].timeline},
        "missing": missing,
    }


# -- capacity -----------------------------------------------------------------------------------
def _du(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def sample_now(cat, sd) -> dict:
    """One capacity sample: memory of the running agents, state and journal size, host."""
    import psutil

    rows = [r for r in fleet.agent_states(cat, sd) if r.state == "active"]
    journal_bytes = _du("/var/log/journal") or _du("/run/log/journal")
    disk = psutil.disk_usage(paths.state_dir() if os.path.isdir(paths.state_dir()) else "/")
    return {"time": time.time(), "profile": profiles.current_profile(cat), "agents_running": len(rows),
            "agents_memory_bytes": sum(r.memory_bytes or 0 for r in rows),
            "per_agent_memory_bytes": {r.agent: r.memory_bytes for r in rows if r.memory_bytes},
            "state_bytes": _du(paths.state_dir()), "journal_bytes": journal_bytes,
            "disk_free_bytes": disk.free, "host_memory_bytes": psutil.virtual_memory().total,
            "host_memory_available_bytes": psutil.virtual_memory().available}


def samples_file() -> str:
    return os.path.join(paths.reports_dir(), "capacity-samples.jsonl")


def keep_sample(sample: dict) -> None:
    os.makedirs(paths.reports_dir(), mode=0o750, exist_ok=True)
    with open(samples_file(), "a") as f:
        f.write(json.dumps(sample) + "\n")


def load_samples() -> list[dict]:
    try:
        with open(samples_file()) as f:
            return [json.loads(ln) for ln in f if ln.strip().startswith("{")]
    except (OSError, ValueError):
        return []


def slope_per_day(points: list[tuple[float, float]]) -> float | None:
    """Least-squares growth per day of (epoch seconds, value) points; None under 2 points
    or less than an hour apart (no trend in noise)."""
    if len(points) < 2 or points[-1][0] - points[0][0] < 3600:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mx) * (v - my) for t, v in points) / var * 86400


def capacity(cat, sd, days: float = 90, until: float | None = None, record: bool = True) -> dict:
    until = until or time.time()
    since = until - days * 86400
    now = sample_now(cat, sd)
    if record:
        keep_sample(now)
    missing = []
    resources, why = twin_resources(cat, sd, since, until)
    series: dict[str, list[tuple[float, float]]] = {}
    if resources:
        buckets: dict[int, dict[str, float]] = {}
        for r in resources:  # total memory per hour: the sum over agents of their hourly peak
            if isinstance(r.get("memory_bytes"), (int, float)):
                b = buckets.setdefault(int(r["time"] // 3600), {})
                b[r["agent"]] = max(b.get(r["agent"], 0), r["memory_bytes"])
        series["agents_memory_bytes"] = [(h * 3600.0, sum(v.values())) for h, v in sorted(buckets.items())]
        source = "SystemDigitalTwin resource history"
    else:
        missing.append(f"fine-grained resource history (SystemDigitalTwin): {why}; trend from capacity "
                       f"samples kept by each report run in {samples_file()}")
        source = "capacity samples"
    samples = [s for s in load_samples() if s.get("time", 0) >= since]
    for key in ("state_bytes", "journal_bytes") + (() if resources else ("agents_memory_bytes",)):
        series[key] = [(s["time"], s[key]) for s in samples if isinstance(s.get(key), (int, float))]
    trends = {k: slope_per_day(v) for k, v in series.items()}
    limit = cat.profiles[now["profile"]].resources
    limit_bytes = (limit.memory_mb if limit else cat.settings.limits.memory_mb) * 2**20
    mem_trend = trends.get("agents_memory_bytes")
    headroom = limit_bytes - now["agents_memory_bytes"]
    days_left = headroom / mem_trend if mem_trend and mem_trend > 0 else None
    disk_trend = (trends.get("state_bytes") or 0) + (trends.get("journal_bytes") or 0)
    disk_days = now["disk_free_bytes"] / disk_trend if disk_trend > 0 else None
    # Per-agent MemoryMax limits are ceilings, not use: their sum may exceed the profile's
    # slice limit on purpose (overcommit). What matters is the measured use against it.
    fit = {}
    for p in cat.profiles.values():
        declared = sum(cat.agents[a].resources.memory_mb for a in p.agents
                       if cat.agents[a].required or a in p.autoload)
        everything = sum(cat.agents[a].resources.memory_mb for a in p.agents)
        lim = (p.resources.memory_mb if p.resources else cat.settings.limits.memory_mb)
        fit[p.name] = {"agent_limits_started_mb": declared, "agent_limits_all_mb": everything, "limit_mb": lim,
                       "overcommit": round(everything / lim, 2) if lim else None,
                       "used_now_mb": now["agents_memory_bytes"] // 2**20 if p.name == now["profile"] else None,
                       "host_mb": now["host_memory_bytes"] // 2**20}
    advice = []
    if days_left is not None and mem_trend and days_left < 90:  # (days_left: mem_trend > 0)
        advice.append(f"agent memory grows {mem_trend / 2**20:.1f} MB/day: the {now['profile']} profile's limit "
                      f"({limit_bytes // 2**20} MB) is reached in about {days_left:.0f} days")
    if disk_days is not None and disk_days < 180:
        advice.append(f"state + journal grow {disk_trend / 2**20:.1f} MB/day: the disk is full in about "
                      f"{disk_days:.0f} days (`unified-ctl logs vacuum`, journald.conf SystemMaxUse=)")
    if now["agents_memory_bytes"] > 0.8 * limit_bytes:
        advice.append(f"the {now['profile']} profile uses {now['agents_memory_bytes'] // 2**20} MB of its "
                      f"{limit_bytes // 2**20} MB limit: raise profiles.{now['profile']}.resources.memory_mb "
                      "or let optional agents idle-exit sooner")
    for name, f in fit.items():
        if f["limit_mb"] > f["host_mb"]:
            advice.append(f"profile {name}: its limit ({f['limit_mb']} MB) is more than this host's memory "
                          f"({f['host_mb']} MB)")
    if not advice:
        advice.append("no limit is near at the current growth")
    return {"report": "capacity", "host": socket.gethostname(), "unified_version": __version__,
            "generated": time.time(), "since": since, "until": until, "now": now, "source": source,
            "series": series, "trend_per_day": trends, "memory_limit_bytes": limit_bytes,
            "days_to_memory_limit": days_left, "days_to_disk_full": disk_days, "profiles": fit,
            "advice": advice, "samples": len(samples), "missing": missing}
