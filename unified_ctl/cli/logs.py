"""unified-ctl logs [AGENT]...: agents' logs from journald (the journal's maintenance
commands, vacuum|rotate|usage, join the group from cli/ops.py)."""
from __future__ import annotations

import click

from .context import Ctx, complete_agents, pass_ctx


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


COMMANDS = (logs,)
