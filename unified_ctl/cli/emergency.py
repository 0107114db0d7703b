"""unified-ctl emergency-stop and recover: the runbook's emergency procedures
(operations.emergency_stop and operations.recover do them)."""
from __future__ import annotations

import sys

import click

from .context import Ctx, complete_profiles, emit_json, pass_ctx


@click.command("emergency-stop")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def emergency_stop(ctx: Ctx, yes: bool) -> None:
    """Stop every agent and socket of unified-system now; the rest of the host is untouched.

    Never waits for the fleet lock: a fleet change in progress (a switch, apply ...) is ended
    first, and commands waiting for it give up."""
    if not yes:
        click.confirm("Stop ALL unified-system agents and sockets now?", abort=True)
    from .. import operations

    r = operations.emergency_stop(ctx.sd)
    if r.ended:
        click.echo(f"ended {r.ended}, which was changing the fleet")
    click.echo(f"all unified-system agents and sockets stopped in {r.seconds:.2f} s; "
               "start again with `unified-ctl profile switch core`")


@click.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--profile", "profile_name", default="core", show_default=True, shell_complete=complete_profiles,
              help="Profile to start afterwards.")
@click.option("--keep-state", is_flag=True, help="Do not clear /var/lib/unified.")
@click.option("--dry-run", is_flag=True, help="Say what would be stopped, deleted and started; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print it as JSON.")
@pass_ctx
def recover(ctx: Ctx, yes: bool, profile_name: str, keep_state: bool, dry_run: bool, as_json: bool) -> None:
    """Complete recovery: stop everything, clear state, start a profile with LOG_LEVEL=DEBUG
    (an override until `unified-ctl overrides clear` or reboot)."""
    from unified_core import paths, profiles

    from .. import operations
    from .profile import refuse_other_catalog, run_switch

    state_dir = paths.state_dir()
    refuse_other_catalog(ctx, profile_name)  # before asking: a refusal needs no confirmation
    from ..rollout import choose_catalog

    ctx.use_catalog(choose_catalog(None)[0])  # the live catalog: the trial when there is one
    if dry_run:
        _print_preview(operations.recover_preview(ctx.sd, ctx.catalog, profile_name, keep_state), as_json)
        return
    if as_json:
        raise click.UsageError("--json goes with --dry-run (recover prints its progress as text)")
    profiles.require_known(ctx.catalog, profile_name)
    if not yes:
        what = "stop all agents" + ("" if keep_state else f", DELETE all state in {state_dir}")
        click.confirm(f"Recovery will {what} and start profile {profile_name} with LOG_LEVEL=DEBUG. Continue?",
                      abort=True)
    with ctx.fleet_lock():
        result = run_switch(ctx, profile_name, env=None, start=lambda **callbacks: operations.recover(
            ctx.sd, ctx.catalog, profile_name, keep_state, on_cleared=lambda d: click.echo(f"cleared {d}"),
            **callbacks).switch)
    if not result.ok:
        sys.exit(1)


def _print_preview(d: dict, as_json: bool) -> None:
    if as_json:
        emit_json(d)
        return
    click.echo("recover would, changing nothing now (--dry-run):")
    click.echo(f"  stop {len(d['stop'])} units of unified-system" + (f": {' '.join(d['stop'])}" if d["stop"] else ""))
    if d["clear"]:
        click.echo(f"  DELETE everything in {d['state_dir']}: {len(d['delete'])} entries"
                   + (f" ({', '.join(d['delete'][:10])}{' …' if len(d['delete']) > 10 else ''})" if d["delete"] else ""))
    else:
        click.echo(f"  keep {d['state_dir']} (--keep-state)")
    click.echo(f"  start profile {d['profile']} ({len(d['start'])} agents) with LOG_LEVEL=DEBUG (an override until "
               "`unified-ctl overrides clear` or reboot)")


COMMANDS = (emergency_stop, recover,)
