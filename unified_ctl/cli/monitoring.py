"""unified-ctl commands for monitoring: `monitoring setup` (Prometheus + Alertmanager) and
`health [--watch]` (the ObservabilityHub's view when it runs, systemd's otherwise)."""
from __future__ import annotations

import os
import sys
import time

import click

from unified_core.errors import NeedsRoot

from .context import Ctx, console, emit_json, pass_ctx

EXIT = {"healthy": 0, "degraded": 1, "critical": 2}
_sleep = time.sleep   # the --watch pause (tests replace it)


@click.group()
def monitoring() -> None:
    """Wire Prometheus and Alertmanager to unified-system, or undo it."""


@monitoring.command("setup")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--no-start", is_flag=True,
              help="Write the configuration only; do not enable, start or reload services.")
@click.option("--prometheus-config", default=None, metavar="FILE",
              help="Prometheus configuration (default /etc/prometheus/prometheus.yml).")
@click.option("--alertmanager-config", default=None, metavar="FILE",
              help="Alertmanager configuration (default /etc/prometheus/alertmanager.yml).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def monitoring_setup(ctx: Ctx, dry_run: bool, no_start: bool, prometheus_config: str | None,
                     alertmanager_config: str | None, as_json: bool) -> None:
    """Add unified-system's scrape jobs, alert rules and Alertmanager route to Debian's
    prometheus (9090) and prometheus-alertmanager (9093); idempotent. Changed files are
    validated (promtool, amtool) and backed up first; other jobs and routes are kept."""
    from .. import monitoring as mon

    if not dry_run and os.geteuid() != 0:
        raise NeedsRoot("it changes /etc/prometheus and services; --dry-run shows what it "
                        "would do")
    res = mon.setup(ctx.catalog, ctx.sd,
                    prometheus_config=prometheus_config or mon.PROMETHEUS_CONFIG,
                    alertmanager_config=alertmanager_config or mon.ALERTMANAGER_CONFIG,
                    dry_run=dry_run, start=not no_start)
    if as_json:
        emit_json(res.to_dict())
        return
    verb = "would change" if dry_run else "changed"
    for path, changes in res.changes.items():
        if changes:
            click.echo(f"{path}: {verb}: " + "; ".join(changes))
            if path in res.backups:
                click.echo(f"  backup: {res.backups[path]}")
        else:
            click.echo(f"{path}: already set up")
    for a in res.actions:
        click.echo(a)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    if not dry_run and not no_start:
        click.echo("Prometheus: http://localhost:9090 (try: up{job=\"unified_agents\"}); "
                   "Alertmanager: http://localhost:9093")


@monitoring.command("remove")
@click.option("--dry-run", is_flag=True, help="Say what would be restored; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-start", is_flag=True,
              help="Restore the files only; do not stop, reload or restart services.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def monitoring_remove(ctx: Ctx, dry_run: bool, yes: bool, no_start: bool, as_json: bool) -> None:
    """Undo `monitoring setup`: put back the files it changed exactly as they were before
    (kept in /var/lib/unified-system/monitoring), delete what it created, reload Prometheus
    and Alertmanager, stop what it started. A file edited since setup is kept aside, never
    lost. Works without a valid catalog."""
    from .. import monitoring_undo as undo

    if not dry_run and os.geteuid() != 0:
        raise NeedsRoot("it changes /etc/prometheus and services; --dry-run shows what it "
                        "would do")
    if not dry_run and not yes:
        p = undo.plan()      # nothing to restore: refused before asking
        what = ", ".join(p.restored + p.deleted)
        click.confirm(f"Restore the state before `monitoring setup` ({what})?", abort=True)
    res = undo.remove(ctx.sd, dry_run=dry_run, start=not no_start)
    if as_json:
        emit_json(res.to_dict())
        return
    for path in res.restored:
        click.echo(f"{path}: {'would restore' if dry_run else 'restored'} as before setup")
    for path in res.deleted:
        click.echo(f"{path}: {'would delete' if dry_run else 'deleted'} (setup created it)")
    if dry_run:
        for unit in res.stopped:
            click.echo(f"{unit}: would stop (setup started it)")
    for a in res.actions:
        click.echo(a)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)


# -- health --------------------------------------------------------------------------------
def _mb(b) -> str:
    return "-" if b is None else f"{b / 2**20:.0f} MB"


def _print_health(data: dict, show_all: bool) -> None:
    from rich.table import Table

    con = console()
    score = data.get("health_score")
    style = {"healthy": "green", "degraded": "yellow", "critical": "bold red"}.get(
        str(data.get("status")), "")
    ess = data.get("essential") or {}
    con.print(f"health [{style}]{'?' if score is None else score}/100 {data.get('status')}[/]"
              f" - profile {data.get('profile')} - essential {ess.get('up')}/{ess.get('total')} "
              f"up - source: {data.get('source')}")
    if data.get("note"):
        con.print(f"[dim]{data['note']}[/]")
    alerts = data.get("alerts") or []
    if not alerts:
        con.print("alerts: none")
    for a in alerts:
        sev = "[bold red]CRITICAL[/]" if a["severity"] == "critical" else "[yellow]WARNING[/]"
        con.print(f"{sev} {a['state']} {a['name']}: {a['summary']}\n    -> {a['action']}")
    table = Table(title=None)
    for col in ("agent", "state", "memory", "CPU", "restarts", "last error"):
        table.add_column(col, no_wrap=col != "last error")
    colours = {"active": "green", "dormant": "cyan", "failed": "bold red", "starting": "yellow",
               "stopped": "dim"}
    order = {"failed": 0, "starting": 1, "stopping": 2, "active": 3, "dormant": 4}
    rows = sorted(data.get("agents") or [], key=lambda r: (order.get(r["state"], 9), r["name"]))
    for r in rows:
        if not show_all and r["state"] in ("active", "dormant") and not r.get("last_error") \
                and not r.get("restarts"):
            continue
        err = r.get("last_error") or {}
        cpu = r.get("cpu_percent")
        table.add_row(r["name"] + ("" if r["required"] else " (opt)"),
                      f"[{colours.get(r['state'], '')}]{r['state']}[/]", _mb(r.get("memory_bytes")),
                      "-" if cpu is None else f"{cpu:.1f}%", str(r.get("restarts", 0)),
                      (err.get("message") or "")[:100])
    if table.row_count:
        con.print(table)
    hidden = len(rows) - table.row_count
    if hidden:
        con.print(f"[dim]{hidden} agents active or dormant with nothing to report "
                  "(--all lists them)[/]")


def _old_short(ctx: click.Context, value, old: str, new: str) -> None:
    """A short option that changed meaning: a clear error rather than a silent other meaning."""
    if value is not None:
        raise click.UsageError(f"{old} is now {new} here: {old} means --lines in every unified-ctl command "
                               f"(as in journalctl)", ctx)


@click.command()
@click.option("--watch", "-w", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", "-i", type=click.FloatRange(0.5), default=5.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@click.option("-n", hidden=True, expose_value=False, callback=lambda ctx, p, v: _old_short(ctx, v, "-n", "-i"))
@click.option("--all", "show_all", is_flag=True,
              help="List every agent (default: those with something to report).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def health(ctx: Ctx, watch: bool, interval: float, show_all: bool, as_json: bool) -> None:
    """Health score, alerts and agents needing attention: from the ObservabilityHub when it
    runs, from systemd directly when it does not. Exit 0 healthy, 1 degraded, 2 critical."""
    from ..fleet_health import fleet_health

    try:
        while True:
            data = fleet_health(ctx.catalog, ctx.sd, all_agents=show_all)
            if as_json:
                emit_json(data)
            else:
                if watch:
                    click.clear()
                    click.echo(time.strftime("%H:%M:%S") + f"  (every {interval:g} s, "
                               "Ctrl-C stops)")
                _print_health(data, show_all)
            if not watch:
                sys.exit(EXIT.get(str(data.get("status")), 1))
            sys.stdout.flush()
            _sleep(interval)
    except KeyboardInterrupt:   # the way to leave --watch: not an error
        sys.exit(0)


COMMANDS = (monitoring, health,)
