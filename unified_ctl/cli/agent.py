"""unified-ctl agent start|stop|restart|load: one agent (and what it depends on) at a time."""
from __future__ import annotations

import click

from unified_core import fleet, profiles
from unified_core.errors import UnifiedError

from .. import ports
from .context import Ctx, complete_agents, emit_json, fleet_change, pass_ctx


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


COMMANDS = (agent,)
