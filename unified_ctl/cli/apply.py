"""unified-ctl apply: make the installed catalog live (operations.apply does it)."""
from __future__ import annotations

import click

from .context import Ctx, emit_json, pass_ctx


@click.command()
@click.option("--restart", "restart", is_flag=True,
              help="Also restart the running agents whose settings changed (sockets keep queueing).")
@click.option("--dry-run", is_flag=True, help="Say what would change and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def apply(ctx: Ctx, restart: bool, dry_run: bool, as_json: bool) -> None:
    """Validate the catalog and make it live (systemctl daemon-reload)."""
    from .. import operations

    if dry_run:
        d = operations.apply_preview(ctx.sd, ctx.catalog)
        if as_json:
            emit_json(d)
            return
        click.echo(f"would make {d['catalog']} live: {d['agents']} agents, profile {d['profile']}; "
                   "nothing changed (--dry-run)")
        click.echo("  it differs from the live catalog" if d["changed"] else "  it is the live catalog already")
        for name, why in d["stale"].items():
            click.echo(f"  {name}: would {'restart' if restart else 'stay on the old settings'} ({why})")
        if d["trial"]:
            click.echo(f"  note: a catalog is on trial ({d['trial']}): it would stay live until promote/abort")
        return
    with ctx.fleet_lock():
        _apply(ctx, restart, as_json)


def _apply(ctx: Ctx, restart: bool, as_json: bool) -> None:
    from .. import operations

    r = operations.apply(ctx.sd, ctx.catalog, restart)  # ctx.catalog raises CatalogInvalid: nothing is touched
    if as_json:
        emit_json(r.to_dict())
        return
    gen = r.generator
    click.echo(f"applied {r.catalog}: {r.agents} agents, profile {r.profile} "
               f"({gen.get('files', '?')} units rendered in {gen.get('seconds', '?')} s)")
    for name, why in r.stale.items():
        click.echo(f"  {name}: {'restarted' if restart else 'still on the old settings'} ({why})")
    if r.stale and not restart:
        click.echo("restart them to use the new settings: `unified-ctl apply --restart` "
                   "(or `unified-ctl agent restart NAME`)")
    if r.trial:
        click.echo(f"note: a catalog is on trial ({r.trial}): it stays live until `unified-ctl config abort` "
                   "(then this one is) or `unified-ctl config promote` (which replaces this one)")


COMMANDS = (apply,)
