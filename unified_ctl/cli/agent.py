"""unified-ctl agent list|show|start|stop|restart|load (selection.py: which agents a command names)."""
from __future__ import annotations

import click

from unified_core import fleet, profiles
from unified_core.errors import UnifiedError

from .. import ports, selection
from .context import Ctx, complete_agents, group_option, console, emit_json, fleet_change, pass_ctx


# -- agents -------------------------------------------------------------------------------
@click.group()
def agent() -> None:
    """List, show, start, stop, restart or load agents.

    \b
    Agents are named, matched by a glob ('Memory*', quoted for the shell), or chosen by
    --group NAME; `all` is every agent (restart and stop: every running one). A pattern,
    a group or `all` acts on the running agents it matches (start: on every match)."""


def _check_ports(ctx: Ctx, agents, doing: str) -> None:
    running = fleet.running_agents(ctx.catalog, ctx.sd)
    ports.check(ctx.catalog, [n for n in agents if n not in running], doing)


def agents_argument(f):
    """NAMES... (names, globs, `all`) and --group NAME, shared by the commands that act on agents."""
    return click.argument("names", nargs=-1, shell_complete=complete_agents)(group_option(f))


def _chosen(ctx: Ctx, names, groups, running=None, all_refused: str = "") -> list[str]:
    """The agents named; with a pattern (glob, group, all), only those running() returns
    when given (asked only once the names, globs and groups are known to be good)."""
    if not names and not groups:
        raise click.UsageError("name the agents: NAME, a glob such as 'Memory*', all, or --group NAME")
    if running is None:
        return selection.select(ctx.catalog, names, groups, all_refused=all_refused)
    chosen = selection.select(ctx.catalog, names, groups, all_means=())  # a bad name: said before asking systemd
    if not selection.is_pattern(names, groups):
        return chosen
    up = running()
    named = {n for n in names if n in ctx.catalog.agents}
    return [n for n in selection.select(ctx.catalog, names, groups, all_means=up) if n in up or n in named]


def _said(names, groups) -> str:
    return " ".join([*names, *(f"--group {g}" for g in groups)])


def _states(ctx: Ctx, names: list[str]) -> dict[str, str] | None:
    """{agent: state} from systemd; None (said on stderr) where systemd cannot be asked."""
    try:
        return {r.agent: r.state for r in fleet.agent_states(ctx.catalog, ctx.sd, names)}
    except UnifiedError as e:
        click.echo(f"note: no states ({e})", err=True)
        return None


@agent.command("list")
@agents_argument
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def agent_list(ctx: Ctx, names: tuple[str, ...], groups: tuple[str, ...], as_json: bool) -> None:
    """List the catalog's agents (all, or those named/matched): group, profiles, port, state."""
    from ..views import agent_rows

    cat = ctx.catalog
    chosen = selection.select(cat, names, groups) if names or groups else list(cat.agents)
    rows = agent_rows(cat, chosen, _states(ctx, chosen))
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} of {len(cat.agents)} agents")
    for col in ("agent", "group", "profiles", "port", "health", "state"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"] + ("" if r["required"] else " (opt)"), r["group"], ", ".join(r["profiles"]) or "-",
                      str(r["port"]), str(r["health_port"]), r["state"] or "?")
    console().print(table)


@agent.command("show")
@click.argument("name", shell_complete=complete_agents)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def agent_show(ctx: Ctx, name: str, as_json: bool) -> None:
    """Show one agent: its catalog entry (drop-ins merged), the files it comes from, its units, state."""
    from unified_core.catalog import load_merged
    from ..views import agent_entry

    cat = ctx.catalog
    a = cat.agent(name)
    _, marks, _ = load_merged(cat.path, dropins=len(cat.sources) > 1)
    files = {mk[0] for p, mk in marks.items() if p[:2] == ("agents", a.name)}
    entry = agent_entry(cat, a.name)
    detail: dict = {"name": a.name, "agent": a.name, "catalog": entry,
                    "defined_in": "{}:{}".format(*marks[("agents", a.name)]),
                    "sources": [f for f in cat.sources if f in files]}
    try:
        props = ctx.sd.show([a.service, a.socket], ("Id", "LoadState", "ActiveState", "SubState", "FragmentPath",
                                                    "DropInPaths"))
        detail["units"] = {u: {k: props.get(u, {}).get(k) for k in ("LoadState", "ActiveState", "SubState",
                                                                     "FragmentPath", "DropInPaths")}
                           for u in (a.service, a.socket)}
        detail["state"] = fleet.agent_states(cat, ctx.sd, [a.name])[0].to_dict()
    except UnifiedError as e:
        detail["units"], detail["state"] = {a.service: None, a.socket: None}, None
        click.echo(f"note: no unit state ({e})", err=True)
    if as_json:
        emit_json(detail)
        return
    import yaml

    click.echo(f"{a.name}: group {a.group}, {'essential' if a.required else 'optional'}, port {a.port}, "
               f"health {a.health_port}")
    click.echo(f"  defined in {detail['defined_in']}" + (
        f"; changed by {', '.join(detail['sources'][1:])}" if len(detail["sources"]) > 1 else ""))
    st = detail["state"]
    if st:
        click.echo(f"  state {st['state']} (service {st['service']}, socket {st['socket']}"
                   + (f", pid {st['pid']}" if st["pid"] else "") + ")")
    for u, p in detail["units"].items():
        if p:
            click.echo(f"  {u}: {p['FragmentPath'] or '-'}" + (f" + {p['DropInPaths']}" if p["DropInPaths"] else ""))
    click.echo("catalog entry:")
    click.echo("  " + yaml.safe_dump(entry, sort_keys=False, default_flow_style=False).rstrip().replace("\n", "\n  "))


@agent.command("start")
@agents_argument
@pass_ctx
@fleet_change
def agent_start(ctx: Ctx, names: tuple[str, ...], groups: tuple[str, ...]) -> None:
    """Start agents now (socket and service; systemd pulls in their dependencies)."""
    agents = _chosen(ctx, names, groups, all_refused=(
        f"`agent start all` would start all {len(ctx.catalog.agents)} agents outside any profile; "
        "start a profile instead (`unified-ctl profile switch full`), or name agents, globs or --group"))
    _check_ports(ctx, agents, "start " + ", ".join(agents))
    units = profiles.units_of(ctx.catalog, agents)
    ctx.sd.reset_failed(units)
    ctx.sd.start(units)
    click.echo("started " + ", ".join(agents))


@agent.command("stop")
@agents_argument
@pass_ctx
@fleet_change
def agent_stop(ctx: Ctx, names: tuple[str, ...], groups: tuple[str, ...]) -> None:
    """Stop agents: service and socket, so no connection wakes them again."""
    agents = _chosen(ctx, names, groups, lambda: fleet.running_agents(ctx.catalog, ctx.sd))
    if not agents:
        click.echo(f"no running agent matches {_said(names, groups)}: nothing stopped")
        return
    ctx.sd.stop(profiles.units_of(ctx.catalog, agents))
    click.echo(f"stopped {', '.join(agents)} (service and socket; `unified-ctl agent start` brings them back)")


@agent.command("restart")
@agents_argument
@pass_ctx
@fleet_change
def agent_restart(ctx: Ctx, names: tuple[str, ...], groups: tuple[str, ...]) -> None:
    """Restart agents' processes; their sockets keep queueing connections meanwhile.

    A name restarts that agent (starting it if it was stopped); a glob, --group or `all`
    restarts the matching agents whose process runs (dormant and stopped ones stay so)."""
    pattern = selection.is_pattern(names, groups)
    agents = _chosen(ctx, names, groups, lambda: selection.running_processes(ctx.catalog, ctx.sd))
    if not agents:
        click.echo(f"no running agent matches {_said(names, groups)}: nothing restarted")
        return
    services = [ctx.catalog.agents[n].service for n in agents]
    ctx.sd.reset_failed(services)
    ctx.sd.restart(services)
    click.echo("restarted " + ", ".join(agents) + (" (the running ones matching)" if pattern else ""))


@agent.command("load")
@click.argument("name", shell_complete=complete_agents)
@click.option("--timeout", type=float, default=None, help="Seconds (default: lazy_loader.load_timeout).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def agent_load(ctx: Ctx, name: str, timeout: float | None, as_json: bool) -> None:
    """Activate an agent now with its dependencies and wait until it is healthy (a progress
    bar on a terminal meanwhile)."""
    from .. import operations
    from .progress import shown

    cat = ctx.catalog
    a = cat.agent(name)
    with shown(f"load {a.name}", quiet=as_json) as progress:
        r = operations.load(ctx.sd, cat, a.name, timeout, progress)
    if as_json:
        emit_json({"name": r.agent, "agent": r.agent, "ok": r.ok, "seconds": r.seconds, "loaded": list(r.chain),
                   "not_ready": r.not_ready})
    elif r.ok:
        click.echo(f"{r.agent} healthy in {r.seconds:.2f} s (with {len(r.chain) - 1} dependencies)")
    if not r.ok:
        limit = timeout if timeout is not None else cat.lazy_loader.load_timeout_s
        lines = ctx.sd.journal_tail([cat.agents[n].service for n in r.not_ready], 10)
        states = ", ".join(f"{i.agent} ({i.state}{': ' + i.reason if i.reason else ''})"
                           for i in r.items if not i.ready)
        # (the wait ends early once every agent still missing has failed)
        raise UnifiedError(f"not healthy after {r.seconds:.1f} s (limit {limit:g} s, --timeout): {states}\n"
                           + "\n".join(lines))


COMMANDS = (agent,)
