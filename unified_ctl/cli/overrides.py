"""unified-ctl overrides show|clear: the runbook's variables a launch left for every agent."""
from __future__ import annotations

import click

from unified_core import runtime

from .context import Ctx, emit_json, fleet_change, pass_ctx


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
    print_overrides(now)
    if not now:
        click.echo("no overrides: every agent runs on the catalog's settings")
    if runtime.auto_restart_disabled():
        click.echo("auto-restart is disabled until reboot: `unified-ctl auto-restart enable` turns it back on")


def print_overrides(now: dict) -> None:
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
    from .. import operations

    cleared = operations.clear_overrides(ctx.sd, ctx.catalog)
    was, restarted = cleared.was, cleared.restarted
    if as_json:
        emit_json({"cleared": was, "restarted": restarted})
    elif was:
        click.echo(f"cleared {' '.join(f'{k}={v}' for k, v in was.items())}; restarted the {restarted} running "
                   "agents: they run on the catalog's settings")
    else:
        click.echo("no overrides were in force")


COMMANDS = (overrides,)
