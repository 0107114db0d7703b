"""unified-ctl profile list|show|diff|current|switch: the catalog's profiles, and switching
between them (operations.switch does the work; this module prints it)."""
from __future__ import annotations

import os
import sys

import click

from unified_core import profiles, runtime
from unified_core.errors import UnifiedError

from .. import operations
from .context import Ctx, complete_profiles, console, emit_json, pass_ctx
from .progress import shown as progress_shown


@click.group()
def profile() -> None:
    """List, show, compare and switch profiles."""


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_list(ctx: Ctx, as_json: bool) -> None:
    """List the catalog's profiles."""
    from ..views import profile_rows

    rows = profile_rows(ctx.catalog, _selected(ctx))
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title="profiles")
    for col in ("", "profile", "agents", "essential", "optional", "autoload", "CPU", "memory", "description"):
        table.add_column(col)
    for r in rows:
        res = r["resources"] or {}
        table.add_row("*" if r["selected"] else "", r["name"], str(r["agents"]), str(r["essential"]),
                      str(r["optional"]), ", ".join(r["autoload"]) or "-",
                      f"{res['cpu_percent']} %" if res else "-", f"{res['memory_mb']} MB" if res else "-",
                      r["description"])
    console().print(table)


@profile.command("show")
@click.argument("name", shell_complete=complete_profiles)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_show(ctx: Ctx, name: str, as_json: bool) -> None:
    """Show the agents of profile NAME and why each is in it."""
    from ..views import profile_detail

    detail = profile_detail(ctx.catalog, ctx.catalog.profile(name))
    if as_json:
        emit_json(detail)
        return
    from rich.table import Table

    table = Table(title=f"profile {name}: {detail['count']} agents "
                        f"({len(detail['via_dependency'])} via dependencies)")
    for col in ("agent", "group", "kind", "starts as", "port", "health", "why"):
        table.add_column(col)
    for a in detail["agents"]:
        table.add_row(a["name"], a["group"], "essential" if a["required"] else "optional", a["start"],
                      str(a["port"]), str(a["health_port"]), a["why"])
    console().print(table)


@profile.command("diff")
@click.argument("a", metavar="A", shell_complete=complete_profiles)
@click.argument("b", metavar="B", shell_complete=complete_profiles)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_diff(ctx: Ctx, a: str, b: str, as_json: bool) -> None:
    """Compare profiles A and B from the catalog alone (no systemd needed): agents added and
    removed, start mode, autoload, start timeout. -c FILE compares another catalog's."""
    from ..views import profile_diff as diff

    d = diff(ctx.catalog, a, b)
    if as_json:
        emit_json(d)
        return
    click.echo(f"profile {a} -> {b} ({d['catalog']}):")
    click.echo(f"  + {len(d['added'])} agents" + "".join(f"\n      + {x['name']}  ({x['start']})" for x in d["added"]))
    click.echo(f"  - {len(d['removed'])} agents" + "".join(f"\n      - {x['name']}" for x in d["removed"]))
    for x in d["start_changed"]:
        click.echo(f"  ~ {x['name']}: {x['from']} -> {x['to']}")
    click.echo(f"  = {d['unchanged']} agents in both")
    al = d["autoload"]
    if al["added"] or al["removed"]:
        click.echo("  autoload: " + " ".join([f"+{n}" for n in al["added"]] + [f"-{n}" for n in al["removed"]]))
    t = d["start_timeout_s"]
    click.echo(f"  start timeout: {t['from']:g} s" + (f" -> {t['to']:g} s" if t["to"] != t["from"] else " (same)"))
    r = d["resources"]
    if r["from"] != r["to"]:
        show = (lambda x: f"{x['cpu_percent']} % CPU, {x['memory_mb']} MB" if x else "none")
        click.echo(f"  resources: {show(r['from'])} -> {show(r['to'])}")


def _selected(ctx: Ctx) -> str:
    from unified_core.profiles import current_profile

    return current_profile(ctx.catalog)


@profile.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_current(ctx: Ctx, as_json: bool) -> None:
    """Print the selected profile and whether its target is active."""
    cat = ctx.catalog
    name = profiles.current_profile(cat)
    active = ctx.sd.is_active(cat.profiles[name].target)
    if as_json:
        emit_json({"profile": name, "target": cat.profiles[name].target, "active": active})
    else:
        click.echo(f"{name} ({cat.profiles[name].target} {'active' if active else 'inactive'})")


@profile.command("switch")
@click.argument("name", shell_complete=complete_profiles)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--no-wait", is_flag=True, help="Return once the units are queued.")
@click.option("--timeout", type=float, default=None, help="Seconds to wait for readiness (profile's start_timeout).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_switch(ctx: Ctx, name: str, dry_run: bool, no_wait: bool, timeout: float | None,
                   as_json: bool) -> None:
    """Switch to profile NAME: start what it adds, stop what runs outside it, wait until ready.

    \b
    The runbook's variables in this command's environment apply (the only command but the
    launch script and recover that reads them):
      LOG_LEVEL, DEBUG_MODE, CPU_PERCENT, MEMORY_MB, MAX_THREADS, VRAM_LIMIT_MB,
      ENABLE_METRICS, ENABLE_TRACING, ENABLE_DATA_OPTIMIZER: overrides for every agent until
        reboot or `unified-ctl overrides clear` (each is printed; `unified-ctl status` lists them)
      DISABLE_AUTO_RESTART=true: as `unified-ctl auto-restart disable`
      CONFIG=FILE: try FILE instead of the installed catalog (staged rollout; then
        `unified-ctl config promote` or `config abort`)

    One fleet change at a time: a switch waits for another one (or apply, agent start ...)
    to finish (--lock-timeout)."""
    refuse_other_catalog(ctx, name)
    from .. import rollout

    # CONFIG=FILE (other than the live catalog) = staged rollout: FILE is tried, not made
    # permanent (rollout.py); with a trial active, a plain switch keeps using it.
    path, trial = rollout.choose_catalog(os.environ.get("CONFIG") or None)
    ctx.use_catalog(path, trial.new if trial else None)
    if dry_run:
        _dry_run(ctx, name, trial, as_json)
        return
    with ctx.fleet_lock():
        result = run_switch(ctx, name, env=os.environ, wait=not no_wait, timeout=timeout, as_json=as_json,
                            trial=trial)
    if not result.ok:
        sys.exit(1)


def refuse_other_catalog(ctx: Ctx, name: str) -> None:
    """-c FILE never starts a trial as a side effect: only the staged rollout does."""
    if ctx.config_given and not _is_live(ctx.config_given):
        raise UnifiedError(f"-c {ctx.config_given}: -c only chooses the catalog commands read; starting a profile "
                           "runs the live one. To try that catalog on the fleet (staged rollout): "
                           f"CONFIG={ctx.config_given} unified-ctl profile switch {name}")


def _is_live(path: str) -> bool:
    from unified_core import paths
    from ..config_history import trial_catalog

    return any(p and os.path.realpath(path) == os.path.realpath(p) for p in (paths.catalog_file(), trial_catalog()))


def _dry_run(ctx: Ctx, name: str, trial, as_json: bool) -> None:
    cat = ctx.catalog
    plan, clashes, _ = operations.plan(ctx.sd, cat, name)
    if as_json:
        emit_json({"dry_run": True, **plan.to_dict(), "trial": trial.source if trial else None,
                   "port_clashes": [str(c) for c in clashes]})
        return
    if trial:
        click.echo(f"would try catalog {trial.source} (not permanent until `unified-ctl config promote`)")
    click.echo(f"plan {plan.old} -> {name} ({plan.target}), nothing changed (--dry-run):")
    click.echo(f"  start: {len(plan.start_agents)}  {' '.join(plan.start_agents) or '-'}")
    click.echo(f"  stop (service and socket): {len(plan.stop_agents)}  {' '.join(plan.stop_agents) or '-'}")
    click.echo(f"  keep running: {len(plan.keep_agents)}")
    for c in clashes:
        click.echo(f"  would fail: {c}")


def launch_notes(launch: operations.LaunchEnvironment) -> list[str]:
    """One line per override in force after a launch (and auto-restart turned off by it)."""
    notes = []
    if launch.auto_restart_disabled:
        notes.append("auto-restart is disabled (DISABLE_AUTO_RESTART=true from the environment) until reboot; "
                     "turn it back on with `unified-ctl auto-restart enable`")
    for o in launch.overrides:
        if o.from_launch:
            was = f", was {o.was}" if o.was is not None else ""
            notes.append(f"override {o.var}={o.value} (from the environment{was}) -> every agent, stored in "
                         f"{launch.file} until reboot; clear with `unified-ctl overrides clear`")
        else:
            notes.append(f"override {o.var}={o.value} still in force (an earlier launch set it; {launch.file}); "
                         "clear with `unified-ctl overrides clear`")
    return notes


def run_switch(ctx: Ctx, name: str, env, wait: bool = True, timeout: float | None = None, as_json: bool = False,
               trial=None, start=None) -> operations.SwitchResult:
    """operations.switch with the CLI's output: notes and the plan once the units are queued,
    a progress bar on a terminal while waiting, then the outcome (text or --json). start:
    what runs the switch instead, given the callbacks (on_queued=, progress=); recover's."""
    from .. import rollout
    from unified_core import paths

    cat = ctx.catalog
    notes: list[str] = []

    def queued(r: operations.SwitchResult) -> None:
        notes.extend(launch_notes(r.launch))
        if trial is not None:
            notes.extend(trial_notes)
            notes.append(f"trying {trial.source} (until `unified-ctl config promote`; `unified-ctl config abort` or "
                         f"a reboot returns to {paths.catalog_file()}); restarted {len(r.restarted.agents)} running "
                         "agents whose units changed" + (f", stopped {len(r.gone)} the trial does not have"
                                                         if r.gone else ""))
        if r.env_restarted:
            notes.append(f"restarted the {len(r.env_restarted)} running agents of the profile to apply it")
        if not as_json:
            for n in notes:
                click.echo(f"note: {n}")
            p = r.plan
            click.echo(f"switching {p.old} -> {name}: start {len(p.start_agents)}, stop {len(p.stop_agents)}, "
                       f"keep {len(p.keep_agents)}")

    trial_notes: list[str] = []
    put_in_place = None
    if trial is not None:
        missing = rollout.missing_dropins(trial)
        if missing:
            trial_notes.append(f"the trial is {trial.source} with its own drop-ins only; {', '.join(missing)} of "
                               f"{paths.etc_dir()} are not part of it (promote would remove them; history keeps them)")

        def put_in_place():
            return rollout.begin_trial(trial)

    if start is None:
        def start(**callbacks):
            return operations.switch(ctx.sd, cat, name, env=env, wait=wait, timeout=timeout, put_in_place=put_in_place,
                                     old=trial.old if trial is not None else None, **callbacks)

    with progress_shown(f"profile {name}", quiet=as_json or not wait) as progress:
        r = start(on_queued=queued, progress=progress)
    ctx.use_catalog(ctx.config, r.catalog)  # the trial, as the agents see it
    overrides = runtime.overrides_in_force()
    if r.wait is None:
        if as_json:
            emit_json({**r.plan.to_dict(), "waited": False, "overrides": overrides, "notes": notes,
                       "reloaded": r.reloaded})
        return r
    if as_json:
        emit_json({**r.plan.to_dict(), "ok": r.ok, "seconds": r.wait.seconds,
                   "agents": [{"name": a.agent, "agent": a.agent, "mode": a.mode, "ready": a.ready, "state": a.state}
                              for a in r.wait.agents],
                   "failed": list(r.failures), "notes": notes, "overrides": overrides,
                   "stopped_strays": list(r.strays), "reloaded": r.reloaded})
        return r
    for a in r.strays:
        click.echo(f"note: stopped {a}, which was running outside profile {name}")
    ready = sum(a.ready for a in r.wait.agents)
    if r.ok:
        click.echo(f"profile {name}: {ready}/{len(r.wait.agents)} agents ready in {r.wait.seconds:.2f} s")
    else:
        click.echo(f"profile {name}: {ready}/{len(r.wait.agents)} ready after {r.wait.seconds:.1f} s; "
                   f"{len(r.failures)} not ready:", err=True)
        for f in r.failures:
            click.echo(f"  {f['agent']}: {f['state']} - {f['reason']}", err=True)
            for line in f["journal"]:
                click.echo(f"      {line}", err=True)
    return r


COMMANDS = (profile,)
