"""unified-ctl status: the agents as systemd sees them, with the hub's view when it runs;
--watch redraws it like top (watch.py) from unified_core.fleettop's reads."""
from __future__ import annotations

import click

from unified_core import runtime

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


STYLE = {"active": "green", "dormant": "cyan", "failed": "bold red", "starting": "yellow", "stopped": "dim"}


def table(frame, errors: dict[str, str] | None = None, rates: bool = False, caption: str | None = None):
    """The status table of one read (fleettop.Frame). errors: {agent: last error} from the hub
    (a column when given); rates: a CPU% column (since the previous read: --watch)."""
    from rich.table import Table

    counts = frame.counts
    title = (f"profile {frame.profile} ({'active' if frame.target_active else 'inactive'}): "
             + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    t = Table(title=title, caption=caption, caption_justify="left")
    cols = ("agent", "state", "pid", "memory") + (("CPU%",) if rates else ()) + (
        "CPU", "uptime", "restarts", "health") + (("last error",) if errors is not None else ())
    for col in cols:
        t.add_column(col, no_wrap=col != "last error", justify="right" if col in ("memory", "CPU%", "CPU") else "left")
    for r in frame.rows:
        pct = ("-" if r.cpu_percent is None else f"{r.cpu_percent:.1f}",) if rates else ()
        t.add_row(r.agent + ("" if r.required else " (opt)"), f"[{STYLE.get(r.state, '')}]{r.state}[/]",
                  str(r.pid or "-"), _fmt_bytes(r.memory_bytes), *pct, _fmt_secs(r.cpu_seconds),
                  _fmt_secs(r.uptime_s), str(r.restarts), r.health or "-",
                  *(((errors or {}).get(r.agent, "")[:80],) if errors is not None else ()))
    return t


def _no_n(ctx: click.Context, param, value) -> None:
    """`watch -n 2` habit: -n is --lines in every unified-ctl command (as in journalctl)."""
    if value is not None:
        raise click.UsageError("-n means --lines in unified-ctl (as in journalctl); the refresh interval is "
                               "-i/--interval", ctx)


# -- status -------------------------------------------------------------------------------
@click.command()
@click.argument("agents", nargs=-1, shell_complete=complete_agents)
@group_option
@click.option("--all", "show_all", is_flag=True, help="All catalog agents, not only the profile's and running ones "
              "(as `status all`).")
@click.option("--no-health", is_flag=True, help="Skip probing health ports.")
@click.option("--sort", type=click.Choice(["cpu", "mem", "name"]), default=None,
              help="Order the agents by CPU (percent with --watch, else CPU time), memory (highest first) or "
                   "name (default: catalog order).")
@click.option("--watch", "-w", is_flag=True, help="Redraw every --interval seconds, like top: keys c/m/n sort, "
              "q or Ctrl-C quits. Not on a terminal: one table (with --json: one JSON line) per interval.")
@click.option("--interval", "-i", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              help="Seconds between reads with --watch.")
@click.option("--iterations", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --watch (implied): stop after N reads (as top -n).")
@click.option("-n", hidden=True, expose_value=False, callback=_no_n)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-pager", is_flag=True, help="Accepted, as systemctl's (status never pages).")
@pass_ctx
def status(ctx: Ctx, agents: tuple[str, ...], groups: tuple[str, ...], show_all: bool, no_health: bool,
           sort: str | None, watch: bool, interval: float, iterations: int | None, as_json: bool,
           no_pager: bool) -> None:
    """Show agents: state (dormant = socket listening, process not started), pid, memory, CPU.

    AGENTS: names, globs ('Memory*', quoted) or all; default: the profile's and the running
    ones (with --watch: re-read each time). In --json each agent has "name" (and "agent",
    the same, for older scripts)."""
    from unified_core.fleettop import FleetTop

    from .. import selection

    cat = ctx.catalog
    names = selection.select(cat, agents, groups) if agents or groups else list(cat.agents) if show_all else None
    top = FleetTop(cat, ctx.sd, names, health=not no_health)
    if watch or iterations is not None:
        from . import watch as w

        w.watch(top, sort, interval, iterations, as_json, table)
        return
    frame = top.read(sort)
    # The ObservabilityHub, when it runs, adds what systemd does not know (never started by this).
    from ..fleet_health import hub_summary

    hub = hub_summary(cat, all_agents=True)
    seen = {a["name"]: a for a in (hub or {}).get("agents", [])}
    extra = {r.agent: {k: seen.get(r.agent, {}).get(k) for k in ("cpu_percent", "vram_bytes", "last_error")}
             for r in frame.rows} if hub else {}
    from ..fleetlock import current_holder

    busy = current_holder()
    if as_json:
        emit_json({"profile": frame.profile, "target_active": frame.target_active, "counts": frame.counts,
                   "fleet_change": {"pid": busy.pid, "command": busy.command, "since": busy.since} if busy else None,
                   "auto_restart": not runtime.auto_restart_disabled(),
                   "overrides": runtime.overrides_in_force(),
                   "hub": {"health_score": hub["health_score"], "status": hub["status"],
                           "alerts": hub["alerts"]} if hub else None,
                   "agents": [{**r.to_dict(), **extra.get(r.agent, {})} for r in frame.rows]})
        return
    errors = {n: (e.get("last_error") or {}).get("message") or "" for n, e in extra.items()} if hub else None
    console().print(table(frame, errors))
    if hub:
        firing = [a for a in hub["alerts"] if a["state"] == "firing"]
        click.echo(f"health score {hub['health_score']}/100 ({hub['status']}); alerts firing: "
                   + (", ".join(f"{a['name']} {a['labels'].get('agent', '')}".strip() for a in firing) or "none"))
    print_overrides(runtime.overrides_in_force())
    if runtime.auto_restart_disabled():
        click.echo("auto-restart is disabled until reboot: `unified-ctl auto-restart enable` turns it back on")
    if busy:
        click.echo(f"a fleet change is in progress: {busy}")


COMMANDS = (status,)
