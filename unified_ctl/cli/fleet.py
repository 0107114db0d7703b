"""unified-ctl commands that drive systemd: apply, profile current/switch, status, agent,
logs, emergency-stop, recover, auto-restart."""
from __future__ import annotations

import os
import sys

import click

from unified_core import fleet, profiles, runtime
from unified_core.errors import UnifiedError

from .. import ports
from .catalog import profile
from .context import Ctx, complete_agents, complete_profiles, console, emit_json, fleet_change, pass_ctx


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


def _apply_overrides(env: dict) -> tuple[list[str], bool]:
    """DISABLE_AUTO_RESTART and the runbook's variables given to this launch (env: its
    environment). Returns (one note per override in force, whether anything changed)."""
    notes, changed = [], False
    where = runtime.launch_environment_file()
    if runtime.disable_auto_restart_requested(env):
        changed |= runtime.set_auto_restart(False)
        notes.append("auto-restart is disabled (DISABLE_AUTO_RESTART=true from the environment) until reboot; "
                     "turn it back on with `unified-ctl auto-restart enable`")
    given = runtime.launch_environment(env)  # CatalogInvalid names each bad one: nothing changed
    before = runtime.overrides_in_force()
    changed |= runtime.add_launch_environment(given)
    for var, value in runtime.overrides_in_force().items():
        if var in given:
            was = f", was {before[var]}" if var in before and before[var] != value else ""
            notes.append(f"override {var}={value} (from the environment{was}) -> every agent, stored in {where} "
                         "until reboot; clear with `unified-ctl overrides clear`")
        else:
            notes.append(f"override {var}={value} still in force (an earlier launch set it; {where}); "
                         "clear with `unified-ctl overrides clear`")
    return notes, changed


def _restart_running(ctx: Ctx, cat, agents) -> int:
    """The running processes of `agents` restart to take a new environment (their sockets
    queue connections meanwhile; dormant agents take it at their next start)."""
    services = [cat.agents[a].service for a in agents if a in cat.agents]
    ctx.sd.try_restart(services)
    return len(services)


# -- apply ------------------------------------------------------------------------------
@click.command()
@click.option("--restart", "restart", is_flag=True,
              help="Also restart the running agents whose settings changed (sockets keep queueing).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def apply(ctx: Ctx, restart: bool, as_json: bool) -> None:
    """Validate the catalog and make it live (systemctl daemon-reload)."""
    from ..generator import save_last_good
    from .. import changes
    from unified_core import paths
    from unified_core.catalog import load_catalog
    import json as _json

    cat = ctx.catalog  # raises CatalogInvalid: nothing is touched
    if os.path.realpath(cat.path) != os.path.realpath(paths.catalog_file()):
        raise UnifiedError(f"apply makes {paths.catalog_file()} live; {cat.path} is another file. "
                           f"Validate it with `unified-ctl validate {cat.path}`, then copy it there.")
    try:  # what is live now: the generator saved it when it last rendered
        old = load_catalog(os.path.join(paths.last_good_dir(), "unified.yaml"), env={})
    except UnifiedError:
        old = None
    before = changes.snapshot()
    save_last_good(cat, reason="apply")  # also keeps it in the history (config rollback)
    ctx.sd.daemon_reload()
    try:
        with open(paths.generator_status_file()) as f:
            gen = _json.load(f)
    except (OSError, ValueError):
        gen = {}
    if gen.get("last_good"):
        raise UnifiedError("the generator rendered the last good catalog instead:\n" + gen.get("problems", ""))
    stale = _running_stale(ctx, cat, changes.stale(before, changes.snapshot(), old, cat))
    if restart and stale:
        units = []
        for name, why in stale.items():
            a = cat.agents[name]
            units += ([a.socket] if why == "its ports changed" else []) + [a.service]
        ctx.sd.restart(units)
        changes.save_pending({})
    result = {"ok": True, "catalog": cat.path, "agents": len(cat.agents), "profile": profiles.current_profile(cat),
              "generator": gen, "stale": stale, "restarted": sorted(stale) if restart else []}
    if as_json:
        emit_json(result)
        return
    click.echo(f"applied {cat.path}: {len(cat.agents)} agents, profile {result['profile']} "
               f"({gen.get('files', '?')} units rendered in {gen.get('seconds', '?')} s)")
    for name, why in stale.items():
        click.echo(f"  {name}: {'restarted' if restart else 'still on the old settings'} ({why})")
    if stale and not restart:
        click.echo("restart them to use the new settings: `unified-ctl apply --restart` "
                   "(or `unified-ctl agent restart NAME`)")
    from ..config_history import trial_catalog

    if trial_catalog():
        click.echo(f"note: a catalog is on trial ({trial_catalog()}): it stays live until `unified-ctl config abort` "
                   "(then this one is) or `unified-ctl config promote` (which replaces this one)")


def _running_stale(ctx: Ctx, cat, fresh: dict) -> dict:
    """{agent: why} of the agents running on settings older than the catalog: what this
    apply changed, plus what an earlier apply changed and nothing has restarted since. A
    dormant agent takes any change at its next start by itself."""
    import time

    from .. import changes

    now = time.monotonic()
    pending = changes.load_pending()
    pending.update({name: {"why": why, "since": now} for name, why in fresh.items()})
    units = []
    for name in pending:
        if name in cat.agents:
            units += [cat.agents[name].service, cat.agents[name].socket]
    props = ctx.sd.show(units, ("Id", "ActiveState", "ActiveEnterTimestampMonotonic")) if units else {}
    pending = changes.still_stale(pending, cat, props)
    changes.save_pending(pending)
    return {name: rec["why"] for name, rec in pending.items()}


# -- profiles -----------------------------------------------------------------------------
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
    result = switch(ctx, name, dry_run=dry_run, wait=not no_wait, timeout=timeout, as_json=as_json,
                    env=os.environ, config=os.environ.get("CONFIG") or None)
    if result is not None and not result.ok:
        sys.exit(1)


def switch(ctx: Ctx, name: str, dry_run: bool = False, wait: bool = True, timeout: float | None = None,
           as_json: bool = False, env=None, config: str | None = None):
    """env: the runbook variables of this launch ({}: none); config: its $CONFIG."""
    from .. import rollout

    _refuse_other_catalog(ctx, name)
    if dry_run:
        return _switch(ctx, rollout, name, True, wait, timeout, as_json, env or {}, config)
    with ctx.fleet_lock():
        return _switch(ctx, rollout, name, False, wait, timeout, as_json, env or {}, config)


def _refuse_other_catalog(ctx: Ctx, name: str) -> None:
    """-c FILE never starts a trial as a side effect: only the staged rollout does."""
    if ctx.config_given and not _is_live(ctx.config_given):
        raise UnifiedError(f"-c {ctx.config_given}: -c only chooses the catalog commands read; starting a profile "
                           "runs the live one. To try that catalog on the fleet (staged rollout): "
                           f"CONFIG={ctx.config_given} unified-ctl profile switch {name}")


def _is_live(path: str) -> bool:
    from unified_core import paths
    from ..config_history import trial_catalog

    return any(p and os.path.realpath(path) == os.path.realpath(p) for p in (paths.catalog_file(), trial_catalog()))


def _switch(ctx: Ctx, rollout, name, dry_run, wait, timeout, as_json, env, config):
    # CONFIG=FILE (other than the live catalog) = staged rollout: FILE is tried, not made
    # permanent (rollout.py); with a trial active, a plain switch keeps using it.
    trial = rollout.switch_catalog(ctx, config)
    cat = ctx.catalog
    profiles.require_known(cat, name)
    old = profiles.current_profile(cat)
    # What systemd runs or is about to (jobs queued by a switch killed halfway), not what
    # the previous switch meant to run: leftovers of any earlier operation stop too.
    plan = profiles.plan_switch(cat, old, name, fleet.running_or_queued(cat, ctx.sd))
    # (reading the host's listeners scans every process's fds: only when something starts)
    clashes = ports.clashes(cat, plan.start_agents, ports.live_listeners()) if plan.start_agents else []
    if dry_run:
        if as_json:
            emit_json({"dry_run": True, **plan.to_dict(), "trial": trial.source if trial else None,
                       "port_clashes": [str(c) for c in clashes]})
        else:
            if trial:
                click.echo(f"would try catalog {trial.source} (not permanent until `unified-ctl config promote`)")
            click.echo(f"plan {old} -> {name} ({plan.target}), nothing changed (--dry-run):")
            click.echo(f"  start: {len(plan.start_agents)}  {' '.join(plan.start_agents) or '-'}")
            click.echo(f"  stop (service and socket): {len(plan.stop_agents)}  {' '.join(plan.stop_agents) or '-'}")
            click.echo(f"  keep running: {len(plan.keep_agents)}")
            for c in clashes:
                click.echo(f"  would fail: {c}")
        return None
    if clashes:
        raise ports.PortInUse(clashes, f"switch to profile {name}")
    notes, reload_needed = _apply_overrides(env)
    cat, trial_notes = rollout.execute_switch(ctx.sd, cat, plan, trial)
    ctx._catalog = cat
    notes += trial_notes
    if reload_needed and plan.keep_agents:
        # The launch environment (LOG_LEVEL, VRAM_LIMIT_MB, …) or auto-restart changed: the
        # agents that keep running take it now (their sockets queue connections meanwhile).
        n = _restart_running(ctx, cat, plan.keep_agents)
        notes.append(f"restarted the {n} running agents of the profile to apply it")
    if not as_json:
        for n in notes:
            click.echo(f"note: {n}")
        click.echo(f"switching {old} -> {name}: start {len(plan.start_agents)}, stop {len(plan.stop_agents)}, "
                   f"keep {len(plan.keep_agents)}")
    overrides = runtime.overrides_in_force()
    if not wait:
        if as_json:
            emit_json({**plan.to_dict(), "waited": False, "overrides": overrides, "notes": notes})
        return None
    limit = timeout if timeout is not None else cat.profiles[name].start_timeout_s
    result = _wait_with_progress(ctx, name, limit, quiet=as_json)
    # Whatever still runs outside the profile now (started behind our back meanwhile) stops:
    # when a switch returns, only the selected profile's agents run.
    strays = profiles.stray_agents(cat, ctx.sd, name)
    report = profiles.failure_report(cat, ctx.sd, result) if not result.ok else []
    if as_json:
        emit_json({**plan.to_dict(), "ok": result.ok, "seconds": result.seconds,
                   "agents": [{"agent": a.agent, "mode": a.mode, "ready": a.ready, "state": a.state} for a in result.agents],
                   "failed": report, "notes": notes, "overrides": overrides, "stopped_strays": strays})
        return result
    for a in strays:
        click.echo(f"note: stopped {a}, which was running outside profile {name}")
    ready = sum(a.ready for a in result.agents)
    if result.ok:
        click.echo(f"profile {name}: {ready}/{len(result.agents)} agents ready in {result.seconds:.2f} s")
    else:
        click.echo(f"profile {name}: {ready}/{len(result.agents)} ready after {result.seconds:.1f} s; "
                   f"{len(report)} not ready:", err=True)
        for r in report:
            click.echo(f"  {r['agent']}: {r['state']} - {r['reason']}", err=True)
            for line in r["journal"]:
                click.echo(f"      {line}", err=True)
    return result


def _wait_with_progress(ctx: Ctx, name: str, limit: float, quiet: bool):
    cat = ctx.catalog
    if quiet or not sys.stderr.isatty():
        return profiles.wait_ready(cat, ctx.sd, name, limit)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console_err(), transient=True) as bar:
        task = bar.add_task(f"profile {name}", total=len(cat.profiles[name].agents))

        def progress(done, total, items):
            waiting = [i.agent for i in items if not i.ready][:3]
            bar.update(task, completed=done, description=f"profile {name}" + (
                f" (waiting: {', '.join(waiting)})" if waiting else ""))

        return profiles.wait_ready(cat, ctx.sd, name, limit, progress)


def console_err():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# -- status -------------------------------------------------------------------------------
@click.command()
@click.argument("agents", nargs=-1, shell_complete=complete_agents)
@click.option("--all", "show_all", is_flag=True, help="All catalog agents, not only the profile's and running ones.")
@click.option("--no-health", is_flag=True, help="Skip probing health ports.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def status(ctx: Ctx, agents: tuple[str, ...], show_all: bool, no_health: bool, as_json: bool) -> None:
    """Show agents: state (dormant = socket listening, process not started), pid, memory, CPU."""
    cat = ctx.catalog
    current = profiles.current_profile(cat)
    if agents:
        names = [cat.agent(a).name for a in agents]
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
    _print_overrides(runtime.overrides_in_force())
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


# -- agents -------------------------------------------------------------------------------
@click.group()
def agent() -> None:
    """Start, stop, restart or load one agent."""


def _check_ports(ctx: Ctx, agents, doing: str) -> None:
    running = fleet.running_agents(ctx.catalog, ctx.sd)
    ports.check(ctx.catalog, [n for n in agents if n not in running], doing)


@agent.command("start")
@click.argument("names", nargs=-1, required=True, shell_complete=complete_agents)
@pass_ctx
@fleet_change
def agent_start(ctx: Ctx, names: tuple[str, ...]) -> None:
    """Start agents now (socket and service; systemd pulls in their dependencies)."""
    agents = [ctx.catalog.agent(n).name for n in names]
    _check_ports(ctx, agents, "start " + ", ".join(agents))
    units = profiles.units_of(ctx.catalog, agents)
    ctx.sd.reset_failed(units)
    ctx.sd.start(units)
    click.echo("started " + ", ".join(names))


@agent.command("stop")
@click.argument("names", nargs=-1, required=True, shell_complete=complete_agents)
@pass_ctx
@fleet_change
def agent_stop(ctx: Ctx, names: tuple[str, ...]) -> None:
    """Stop agents: service and socket, so no connection wakes them again."""
    units = profiles.units_of(ctx.catalog, [ctx.catalog.agent(n).name for n in names])
    ctx.sd.stop(units)
    click.echo(f"stopped {', '.join(names)} (service and socket; `unified-ctl agent start` brings them back)")


@agent.command("restart")
@click.argument("names", nargs=-1, required=True, shell_complete=complete_agents)
@pass_ctx
@fleet_change
def agent_restart(ctx: Ctx, names: tuple[str, ...]) -> None:
    """Restart agents' processes; their sockets keep queueing connections meanwhile."""
    services = [ctx.catalog.agent(n).service for n in names]
    ctx.sd.reset_failed(services)
    ctx.sd.restart(services)
    click.echo("restarted " + ", ".join(names))


@agent.command("load")
@click.argument("name", shell_complete=complete_agents)
@click.option("--timeout", type=float, default=None, help="Seconds (default: lazy_loader.load_timeout).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def agent_load(ctx: Ctx, name: str, timeout: float | None, as_json: bool) -> None:
    """Activate an agent now with its dependencies and wait until it is healthy."""
    import time
    from unified_core.catalog import dependency_closure, dependency_order
    from unified_core.health import probe

    cat = ctx.catalog
    a = cat.agent(name)
    chain = dependency_order(dependency_closure({a.name}, cat.agents), cat.agents)
    _check_ports(ctx, chain, f"load {a.name}")
    units = profiles.units_of(cat, chain)
    ctx.sd.reset_failed(units)
    t0 = time.monotonic()
    ctx.sd.start(units, no_block=True)
    limit = timeout if timeout is not None else cat.lazy_loader.load_timeout_s
    pending = list(chain)
    while pending and time.monotonic() - t0 < limit:
        pending = [n for n in pending if not probe(cat.settings.bind_address, cat.agents[n].health_port, 0.5).ok]
        if pending:
            time.sleep(0.05)
    secs = round(time.monotonic() - t0, 3)
    if as_json:
        emit_json({"agent": a.name, "ok": not pending, "seconds": secs, "loaded": chain, "not_ready": pending})
    elif not pending:
        click.echo(f"{a.name} healthy in {secs:.2f} s (with {len(chain) - 1} dependencies)")
    if pending:
        lines = ctx.sd.journal_tail([cat.agents[n].service for n in pending], 10)
        raise UnifiedError(f"not healthy within {limit:g} s: {', '.join(pending)}\n" + "\n".join(lines))


# -- logs ---------------------------------------------------------------------------------
class LogsGroup(click.Group):
    """`logs [AGENT]... [options]` shows logs; `logs vacuum|rotate|usage` (cli/ops.py) maintain
    the journal. Anything but a subcommand name goes to `logs show`, so agent names (never
    lower-case verbs) and the maintenance verbs share one command."""

    def parse_args(self, ctx, args):
        if not (args and (args[0] in self.commands or args[0] in ("-h", "--help"))):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=LogsGroup)
def logs() -> None:
    """Show agents' logs from journald, or maintain the journal.

    \b
      unified-ctl logs [AGENT]... [-f] [-p err] [--since TIME] [-n N]
      unified-ctl logs vacuum --keep 7d     (journalctl --rotate --vacuum-time=7d)
    """


@logs.command("show")
@click.argument("agents", nargs=-1, shell_complete=complete_agents)
@click.option("-f", "--follow", is_flag=True, help="Follow new lines.")
@click.option("-p", "--priority", metavar="PRIO", help="Minimum priority: emerg..debug or 0..7 (e.g. err).")
@click.option("--since", metavar="TIME", help="journalctl --since (e.g. '1 hour ago', today).")
@click.option("-n", "--lines", type=int, default=None, help="Number of lines.")
@click.option("-o", "--output", metavar="FORMAT", help="journalctl output format (short-iso, json, cat …).")
@pass_ctx
def logs_show(ctx: Ctx, agents, follow, priority, since, lines, output) -> None:
    """Show agents' logs from journald (all agents when none is named; the default)."""
    cat = ctx.catalog
    if agents:
        units = [cat.agent(a).service for a in agents] + [cat.agent(a).socket for a in agents]
    else:
        units = ["unified-agent@*", "unified-profile-*", "unified.target"]
    args = ctx.sd.journal_args(units, follow=follow, priority=priority, since=since,
                               lines=lines if lines is not None else (None if since else 200), output=output)
    ctx.sd.journal_exec(args)


# -- emergency ----------------------------------------------------------------------------
def emergency_stop_all(ctx: Ctx) -> list[str]:
    """Stop every unit of ours (targets, sockets, services); SIGKILL what lingers."""
    sd = ctx.sd
    patterns = ["unified.target", "unified-profile-*.target", "unified-agent@*.socket", "unified-agent@*.service"]
    sd.kill(["unified-agent@*.service"], "SIGTERM")
    # Stop by name, and only units systemd has loaded: a glob that also matches a unit it can
    # no longer load (an agent removed from the catalog while its unit was in memory) makes
    # `systemctl stop` refuse the whole call ("Unit ... not loaded"). What still runs of such
    # a unit is killed below like anything else that lingers.
    sd.stop([r["unit"] for r in sd.list_units(patterns) if r["load"] == "loaded"])
    left = [r["unit"] for r in sd.list_units(patterns[2:]) if r["active"] not in ("inactive", "failed")]
    if left:
        sd.kill(left, "SIGKILL")
        sd.stop(left)
        left = [r["unit"] for r in sd.list_units(patterns[2:]) if r["active"] not in ("inactive", "failed")]
    return left


@click.command("emergency-stop")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def emergency_stop(ctx: Ctx, yes: bool) -> None:
    """Stop every agent and socket of unified-system now; the rest of the host is untouched.

    Never waits for the fleet lock: a fleet change in progress (a switch, apply ...) is ended
    first, and commands waiting for it give up."""
    if not yes:
        click.confirm("Stop ALL unified-system agents and sockets now?", abort=True)
    import time

    from .. import fleetlock

    t0 = time.monotonic()
    with fleetlock.preempt() as ended:
        if ended:
            click.echo(f"ended {ended}, which was changing the fleet")
        left = emergency_stop_all(ctx)
    if left:
        raise UnifiedError("still running after SIGKILL: " + ", ".join(left))
    click.echo(f"all unified-system agents and sockets stopped in {time.monotonic() - t0:.2f} s; "
               "start again with `unified-ctl profile switch core`")


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--profile", "profile_name", default="core", show_default=True, shell_complete=complete_profiles,
              help="Profile to start afterwards.")
@click.option("--keep-state", is_flag=True, help="Do not clear /var/lib/unified.")
@pass_ctx
def recover(ctx: Ctx, yes: bool, profile_name: str, keep_state: bool) -> None:
    """Complete recovery: stop everything, clear state, start a profile with LOG_LEVEL=DEBUG
    (an override until `unified-ctl overrides clear` or reboot)."""
    import shutil

    from unified_core import paths

    state_dir = paths.state_dir()
    if not yes:
        what = "stop all agents" + ("" if keep_state else f", DELETE all state in {state_dir}")
        click.confirm(f"Recovery will {what} and start profile {profile_name} with LOG_LEVEL=DEBUG. Continue?",
                      abort=True)
    _refuse_other_catalog(ctx, profile_name)
    profiles.require_known(ctx.catalog, profile_name)
    with ctx.fleet_lock():
        left = emergency_stop_all(ctx)
        if left:
            raise UnifiedError("could not stop: " + ", ".join(left))
        if not keep_state and os.path.isdir(state_dir):
            for entry in os.listdir(state_dir):
                p = os.path.join(state_dir, entry)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
            click.echo(f"cleared {state_dir}")
        result = switch(ctx, profile_name, env={"LOG_LEVEL": "DEBUG"})
    if result is not None and not result.ok:
        sys.exit(1)


# -- overrides (the runbook's variables given to a launch) --------------------------------
@click.group()
def overrides() -> None:
    """Show or clear the overrides a launch left for every agent (LOG_LEVEL=DEBUG ...)."""


@overrides.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def overrides_show(as_json: bool) -> None:
    """List the overrides in force and where they are stored."""
    now = runtime.overrides_in_force()
    if as_json:
        emit_json({"overrides": now, "file": runtime.launch_environment_file() if now else None,
                   "auto_restart": not runtime.auto_restart_disabled()})
        return
    _print_overrides(now)
    if not now:
        click.echo("no overrides: every agent runs on the catalog's settings")
    if runtime.auto_restart_disabled():
        click.echo("auto-restart is disabled until reboot: `unified-ctl auto-restart enable` turns it back on")


def _print_overrides(now: dict) -> None:
    if now:
        click.echo(f"overrides in force until reboot ({runtime.launch_environment_file()}): "
                   + " ".join(f"{k}={v}" for k, v in now.items())
                   + "; `unified-ctl overrides clear` returns to the catalog's settings")


@overrides.command("clear")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def overrides_clear(ctx: Ctx, as_json: bool) -> None:
    """Remove every override: agents return to the catalog's settings (the running ones
    restart behind their sockets; dormant ones take it at their next start)."""
    was = runtime.overrides_in_force()
    restarted = 0
    if runtime.set_launch_environment({}):
        ctx.sd.daemon_reload()
        restarted = _restart_running(ctx, ctx.catalog, sorted(fleet.running_agents(ctx.catalog, ctx.sd)))
    if as_json:
        emit_json({"cleared": was, "restarted": restarted})
    elif was:
        click.echo(f"cleared {' '.join(f'{k}={v}' for k, v in was.items())}; restarted the {restarted} running "
                   "agents: they run on the catalog's settings")
    else:
        click.echo("no overrides were in force")


@click.group("auto-restart")
def auto_restart() -> None:
    """Turn systemd's automatic restart of crashed agents off or on (until reboot)."""


@auto_restart.command("disable")
@pass_ctx
def auto_restart_disable(ctx: Ctx) -> None:
    """Crashed agents stay down (Restart=no) until `auto-restart enable` or reboot."""
    if runtime.set_auto_restart(False):
        ctx.sd.daemon_reload()
    click.echo("auto-restart disabled until reboot; `unified-ctl auto-restart enable` turns it back on")


@auto_restart.command("enable")
@pass_ctx
def auto_restart_enable(ctx: Ctx) -> None:
    """Restore Restart=on-failure for every agent."""
    if runtime.set_auto_restart(True):
        ctx.sd.daemon_reload()
    click.echo("auto-restart enabled (Restart=on-failure)")


@auto_restart.command("status")
def auto_restart_status() -> None:
    """Say whether auto-restart is on."""
    click.echo("disabled (until reboot)" if runtime.auto_restart_disabled() else "enabled")


COMMANDS = (apply, status, agent, logs, emergency_stop, recover, overrides, auto_restart,)
