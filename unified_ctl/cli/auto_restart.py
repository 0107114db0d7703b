"""unified-ctl auto-restart disable|enable|status: systemd's restart of crashed agents."""
from __future__ import annotations

import click

from unified_core import runtime

from .context import Ctx, pass_ctx


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


COMMANDS = (auto_restart,)
