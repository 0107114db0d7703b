"""unified-ctl status: the agents as systemd sees them, with the hub's view when it runs."""
from __future__ import annotations

import click

from unified_core import fleet, profiles, runtime

from .context import Ctx, complete_agents, group_option, console, emit_json, pass_ctx
from .overrides import print_overrides


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 2**20:.1f} MB"


def _fmt_secs(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


# -- status -------------------------------------------------------------------------------
@click.command()
@click.argument("agents", nargs=-1, shell_complete=complete_agents)
@group_option
@click.option("--all", "show_all", is_flag=True, help="All catalog agents, not only the profile's and running ones "
              "(as `status all`).")
@click.option("--no-health", is_flag=True, help="Skip probing health ports.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-pager", is_flag=True, help="Accepted, as systemctl's (status never pages).")
@pass_ctx
def status(ctx: Ctx, agents: tuple[str, ...], groups: tuple[str, ...], show_all: bool, no_health: bool,
           as_json: bool, no_pager: bool) -> None:
    """Show agents: state (dormant = socket listening, process not started), pid, memory, CPU.

    AGENTS: names, globs ('Memory*', quoted) or all; default: the profile's and the running
    ones. In --json each agent has "name" (and "agent", the same, for older scripts)."""
    from .. import selection

    cat = ctx.catalog
    current = profiles.current_profile(cat)
    if agents or groups:
        names = selection.select(cat, agents, groups)
    elif show_all:
        names = list(cat.agents)
    else:
        running = fleet.running_agents(cat, ctx.sd)
        members = set(cat.profiles[current].agents)
        names = [a for a in cat.agents if a in members or a in running]
    rows = fleet.agent_states(cat, ctx.sd, names)
    if not no_health:
        _probe_all(cat, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    target_active = ctx.sd.is_active(cat.profiles[current].target)
    # The ObservabilityHub, when it runs, adds what systemd does not know (never started by this).
    from ..fleet_health import hub_summary

    hub = hub_summary(cat, all_agents=True)
    seen = {a["name"]: a for a in (hub or {}).get("agents", [])}
    extra = {r.agent: {k: seen.get(r.agent, {}).get(k) for k in ("cpu_percent", "vram_bytes", "last_error")}
             for r in rows} if hub else {}
    from ..fleetlock import current_holder

    busy = current_holder()
    if as_json:
        emit_json({"profile": current, "target_active": target_active, "counts": counts,
                   "fleet_change": {"pid": busy.pid, "command": busy.command, "since": busy.since} if busy else None,
                   "auto_restart": not runtime.auto_restart_disabled(),
                   "overrides": runtime.overrides_in_force(),
                   "hub": {"health_score": hub["health_score"], "status": hub["status"],
                           "alerts": hub["alerts"]} if hub else None,
                   "agents": [{**r.to_dict(), **extra.get(r.agent, {})} for r in rows]})
        return
    from rich.table import Table

    title = (f"profile {current} ({'active' if target_active else 'inactive'}): "
             + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    table = Table(title=title)
    for col in ("agent", "state", "pid", "memory", "CPU", "uptime", "restarts", "health") + (
            ("last error",) if hub else ()):
        table.add_column(col, no_wrap=col != "last error")
    style = {"active": "green", "dormant": "cyan", "failed": "bold red", "starting": "yellow", "stopped": "dim"}
    for r in rows:
        err = (extra.get(r.agent, {}).get("last_error") or {}).get("message") or ""
        table.add_row(r.agent + ("" if r.required else " (opt)"),
                      f"[{style.get(r.state, '')}]{r.state}[/]", str(r.pid or "-"), _fmt_bytes(r.memory_bytes),
                      _fmt_secs(r.cpu_seconds), _fmt_secs(r.uptime_s), str(r.restarts), r.health or "-",
                      *((err[:80],) if hub else ()))
    console().print(table)
    if hub:
        firing = [a for a in hub["alerts"] if a["state"] == "firing"]
        click.echo(f"health score {hub['health_score']}/100 ({hub['status']}); alerts firing: "
                   + (", ".join(f"{a['name']} {a['labels'].get('agent', '')}".strip() for a in firing) or "none"))
    print_overrides(runtime.overrides_in_force())
    if runtime.auto_restart_disabled():
        click.echo("auto-restart is disabled until reboot: `unified-ctl auto-restart enable` turns it back on")
    if busy:
        click.echo(f"a fleet change is in progress: {busy}")


def _probe_all(cat, rows) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from unified_core.health import probe

    active = [r for r in rows if r.state == "active"]
    if not active:
        return
    with ThreadPoolExecutor(max_workers=min(16, len(active))) as pool:
        results = pool.map(lambda r: probe(cat.settings.bind_address, cat.agents[r.agent].health_port, 1.0), active)
        for r, h in zip(active, results):
            r.health = h.status


COMMANDS = (status,)
