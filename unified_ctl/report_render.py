"""Reports (reports.py) as Markdown for people and PNG plots for a glance.

matplotlib is optional (python3-matplotlib, ~50 MB with numpy): imported only to draw, and
its absence is one clear line in the report, never an error.
"""
from __future__ import annotations

import json
import time

PLOT_MISSING = "no plot: python3-matplotlib is not installed (`apt install python3-matplotlib`)"


def _t(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def _mb(n) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MB"


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f} %"


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _esc(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def weekly_markdown(r: dict, png: str | None = None, plot_note: str | None = None) -> str:
    t = r["totals"]
    out = [f"# unified-system weekly report: {r['host']}", "",
           f"{_t(r['since'])} to {_t(r['until'])}; profile **{r['profile']}**; generated {_t(r['generated'])} "
           f"by unified-ctl {r['unified_version']}.", "", "## Summary", "",
           f"- agents seen: {t['agents_seen']}; starts {t['starts']}, failures {t['failures']}, "
           f"restarts {t['restarts']}, OOM kills {t['oom_kills']}, idle exits {t['idle_exits']}",
           f"- lowest availability of an essential agent: {_pct(t['essential_availability_min'])}",
           f"- slow loads (over {r['slow_load_threshold_s']:g} s): {t['slow_loads']}; errors logged: {t['errors']}", ""]
    if png:
        out += [f"![the week]({png})", ""]
    elif plot_note:
        out += [f"_{plot_note}_", ""]
    out += ["## Availability per agent", "",
            "| agent | kind | availability | downtime | failures | restarts | OOM | loads (max) | slow | CPU | "
            "warn/err | memory peak | memory now | VRAM peak |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for a in sorted(r["agents"], key=lambda a: (a["availability"] if a["availability"] is not None else 2, a["agent"])):
        out.append(f"| {a['agent']} | {'essential' if a['required'] else 'optional'} | {_pct(a['availability'])} | "
                   f"{_dur(a['down_s'])} | {a['failures']} | {a['restarts']} | {a['oom_kills']} | "
                   f"{len(a['load_times'])} ({a['load_max_s'] if a['load_max_s'] is not None else '-'} s) | "
                   f"{len(a['slow_loads'])} | {a['cpu_s']:.1f} s | {a['warnings']}/{a['errors']} | "
                   f"{_mb(a['memory_peak_bytes'])} | {_mb(a['memory_now_bytes'])} | "
                   f"{'-' if a['vram_peak_mb'] is None else str(a['vram_peak_mb']) + ' MB'} |")
    al = r["alerts"]
    out += ["", "## Alerts", ""]
    out += [f"- EssentialAgentDown: {len(al['EssentialAgentDown'])} episodes"]
    out += [f"  - {e['agent']} at {_t(e['time'])} for {_dur(e['seconds'])}" for e in al["EssentialAgentDown"][:20]]
    out += [f"- SlowAgentLoading: {len(al['SlowAgentLoading'])} loads over {r['slow_load_threshold_s']:g} s"]
    out += [f"  - {e['agent']}: {e['seconds']:.1f} s" for e in al["SlowAgentLoading"][:20]]
    out += [f"- CircuitBreakerOpen: {len(al['CircuitBreakerOpen'])} openings"]
    out += [f"  - {e['agent']} at {_t(e['time'])} (reported by {e['reporter']})" for e in al["CircuitBreakerOpen"][:20]]
    if al.get("firing_now") is not None:
        out += [f"- firing now (hub): {', '.join(str(a.get('name', a)) if isinstance(a, dict) else str(a) for a in al['firing_now']) or 'none'}"]
    out += ["", "## LLM routing split", ""]
    if r.get("routing") is not None:
        out += ["```json", json.dumps(r["routing"], indent=1, sort_keys=True)[:4000], "```"]
    else:
        out += ["_not available (see below)_"]
    errs = sorted((a for a in r["agents"] if a["errors"]), key=lambda a: -a["errors"])[:10]
    if errs:
        out += ["", "## Most errors", "", "| agent | errors | last |", "| --- | ---: | --- |"]
        out += [f"| {a['agent']} | {a['errors']} | {_esc(a['last_error'] or '')[:160]} |" for a in errs]
    out += ["", "## Sources", "", "The journal (systemd's unit lifecycle and the agents' warnings and errors)."]
    if r["missing"]:
        out += ["", "Not in this report:"] + [f"- {m}" for m in r["missing"]]
    return "\n".join(out) + "\n"


def capacity_markdown(r: dict, png: str | None = None, plot_note: str | None = None) -> str:
    n = r["now"]
    tr = r["trend_per_day"]

    def trend(key):
        v = tr.get(key)
        return "not enough history" if v is None else f"{v / 2**20:+.2f} MB/day"

    out = [f"# unified-system capacity report: {r['host']}", "",
           f"{_t(r['since'])} to {_t(r['until'])} (trend source: {r['source']}, {r['samples']} samples); "
           f"generated {_t(r['generated'])}.", "", "## Now", "",
           f"- profile {n['profile']}: {n['agents_running']} agents running, {_mb(n['agents_memory_bytes'])} "
           f"(limit {_mb(r['memory_limit_bytes'])})",
           f"- host memory {_mb(n['host_memory_bytes'])}, available {_mb(n['host_memory_available_bytes'])}",
           f"- state {_mb(n['state_bytes'])}, journal {_mb(n['journal_bytes'])}, disk free {_mb(n['disk_free_bytes'])}",
           "", "## Growth", "",
           f"- agents' memory: {trend('agents_memory_bytes')}"
           + (f"; limit reached in ~{r['days_to_memory_limit']:.0f} days" if r["days_to_memory_limit"] else ""),
           f"- state: {trend('state_bytes')}; journal: {trend('journal_bytes')}"
           + (f"; disk full in ~{r['days_to_disk_full']:.0f} days" if r["days_to_disk_full"] else ""), ""]
    if png:
        out += [f"![growth]({png})", ""]
    elif plot_note:
        out += [f"_{plot_note}_", ""]
    out += ["## Profiles", "", "Agent limits are each agent's MemoryMax (a ceiling, not use); the profile's limit "
            "caps all its agents together.", "",
            "| profile | agent limits, started | agent limits, all loaded | profile limit | overcommit | in use now |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    out += [f"| {k} | {v['agent_limits_started_mb']} MB | {v['agent_limits_all_mb']} MB | {v['limit_mb']} MB | "
            f"{v['overcommit']}x | {'-' if v['used_now_mb'] is None else str(v['used_now_mb']) + ' MB'} |"
            for k, v in r["profiles"].items()]
    out += ["", "## Advice", ""] + [f"- {a}" for a in r["advice"]]
    if r["missing"]:
        out += ["", "## Not in this report", ""] + [f"- {m}" for m in r["missing"]]
    return "\n".join(out) + "\n"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    return plt


def weekly_png(r: dict, path: str) -> str | None:
    """Timeline of the week (up green, down red, per agent) over failures/restarts per agent.
    Returns None when written, else why not."""
    plt = _pyplot()
    if plt is None:
        return PLOT_MISSING
    tl = r["timeline"]
    agents = sorted(tl, key=lambda a: (not next((x["required"] for x in r["agents"] if x["agent"] == a), False), a))
    agents = agents[:40]
    fig, (ax, bx) = plt.subplots(2, 1, figsize=(12, 3 + 0.22 * max(len(agents), 4)),
                                 gridspec_kw={"height_ratios": [3, 1]})
    day = 86400
    for i, a in enumerate(agents):
        for start, end, state in tl[a]:
            width = (end - start) / day
            if state != "up":  # a 10-minute outage must still be visible on a week
                width = max(width, (r["until"] - r["since"]) / day / 300)
            ax.barh(i, width, left=(start - r["since"]) / day, height=0.7,
                    color="#2e8b57" if state == "up" else "#d62728", linewidth=0, zorder=2 if state != "up" else 1)
    ax.set_yticks(range(len(agents)), agents, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, (r["until"] - r["since"]) / day)
    ax.set_xlabel(f"days since {_t(r['since'])}  (green: running, red: down after a failure, blank: stopped/dormant)")
    ax.set_title(f"{r['host']}: the week of profile {r['profile']}")
    worst = sorted(r["agents"], key=lambda a: -(a["failures"] + a["restarts"]))[:15]
    worst = [a for a in worst if a["failures"] or a["restarts"]] or worst[:5]
    xs = range(len(worst))
    bx.bar([x - 0.2 for x in xs], [a["failures"] for a in worst], width=0.4, color="#d62728", label="failures")
    bx.bar([x + 0.2 for x in xs], [a["restarts"] for a in worst], width=0.4, color="#ff7f0e", label="restarts")
    bx.set_xticks(list(xs), [a["agent"] for a in worst], rotation=30, ha="right", fontsize=7)
    bx.set_xlim(-0.6, max(len(worst), 8) - 0.4)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def capacity_png(r: dict, path: str) -> str | None:
    plt = _pyplot()
    if plt is None:
        return PLOT_MISSING
    series = {k: v for k, v in r["series"].items() if len(v) >= 2}
    if not series:
        return "no plot yet: fewer than two capacity samples (each report run keeps one)"
    fig, ax = plt.subplots(figsize=(10, 4))
    for key, pts in series.items():
        ax.plot([(t - r["since"]) / 86400 for t, _ in pts], [v / 2**20 for _, v in pts], marker=".", label=key)
    ax.axhline(r["memory_limit_bytes"] / 2**20, color="#d62728", linestyle="--", label="profile memory limit")
    ax.set_xlabel(f"days since {_t(r['since'])}")
    ax.set_ylabel("MB")
    ax.set_title(f"{r['host']}: growth")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
