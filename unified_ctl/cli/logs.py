"""unified-ctl logs [AGENT]... and logs vacuum|rotate|usage: agents' logs from journald,
and the journal's maintenance."""
from __future__ import annotations

import re

import click

from unified_core.errors import NeedsRoot, UnifiedError

from .context import Ctx, complete_agents, group_option, pass_ctx


# -- logs ---------------------------------------------------------------------------------
PASSTHROUGH = "unified.journalctl_args"  # ctx.meta key: what follows `--`


class LogsGroup(click.Group):
    """`logs [AGENT]... [options] [-- JOURNALCTL-ARGS]` shows logs; `logs vacuum|rotate|usage`
    (below) maintain the journal. Anything but a subcommand name goes to `logs show`, so
    agent names (never lower-case verbs) and the maintenance verbs share one command (an
    agent named like a verb: `logs show NAME`)."""

    def parse_args(self, ctx, args):
        if "--" in args:  # journalctl's own options, passed through (Click would take them as agents)
            i = args.index("--")
            args, ctx.meta[PASSTHROUGH] = args[:i], args[i + 1:]
        if not (args and (args[0] in self.commands or args[0] in ("-h", "--help"))):
            args = ["show", *args]
        if ctx.meta.get(PASSTHROUGH) and args[0] != "show":
            raise click.UsageError("`-- JOURNALCTL-ARGS` goes with `logs [AGENT]...` only", ctx)
        return super().parse_args(ctx, args)

    def format_options(self, ctx, formatter):
        """`logs --help` shows the options of `logs [AGENT]...` too: it is what logs mostly is."""
        show = self.commands["show"]
        records = [r for p in show.get_params(ctx) if p.name != "help" and (r := p.get_help_record(ctx))]
        with formatter.section("Options of logs [AGENT]... (logs show)"):
            formatter.write_dl(records)
        super().format_options(ctx, formatter)


@click.group(cls=LogsGroup)
def logs() -> None:
    """Show agents' logs from journald, or maintain the journal.

    \b
      unified-ctl logs [AGENT]... [-f] [-p err] [--since T] [--until T] [-g RE] [-n N] [-o FMT] [-- ARGS]
      unified-ctl logs vacuum --keep 7d     (journalctl --rotate --vacuum-time=7d)
    """


@logs.command("show")
@click.argument("agents", nargs=-1, shell_complete=complete_agents)
@group_option
@click.option("-f", "--follow", is_flag=True, help="Follow new lines.")
@click.option("-p", "--priority", metavar="PRIO", help="Minimum priority: emerg..debug or 0..7 (e.g. err).")
@click.option("-S", "--since", metavar="TIME", help="journalctl --since (e.g. '1 hour ago', today).")
@click.option("-U", "--until", metavar="TIME", help="journalctl --until (e.g. '10 min ago', '2025-01-31 12:00').")
@click.option("-g", "--grep", metavar="REGEX", help="Only messages matching REGEX (journalctl --grep).")
@click.option("-n", "--lines", type=int, default=None, help="Number of lines (default 200 without --since).")
@click.option("-o", "--output", metavar="FORMAT", help="journalctl output format (short-iso, json, cat …).")
@pass_ctx
def logs_show(ctx: Ctx, agents, groups, follow, priority, since, until, grep, lines, output) -> None:
    """Show agents' logs from journald (all agents when none is named; the default).

    AGENTS: names, globs ('Memory*', quoted) or all. Options after `--` go to journalctl as
    they are (e.g. `unified-ctl logs Hub -- --reverse --output-fields=MESSAGE`)."""
    from .. import selection

    cat = ctx.catalog
    if (agents or groups) and tuple(agents) != (selection.ALL,):
        chosen = selection.select(cat, agents, groups)
        units = [cat.agents[a].service for a in chosen] + [cat.agents[a].socket for a in chosen]
    else:
        units = ["unified-agent@*", "unified-profile-*", "unified.target"]
    args = ctx.sd.journal_args(units, follow=follow, priority=priority, since=since, until=until, grep=grep,
                               lines=lines if lines is not None else (None if since else 200), output=output,
                               extra=click.get_current_context().meta.get(PASSTHROUGH, ()))
    ctx.sd.journal_exec(args)


# -- journal maintenance (logs vacuum|rotate|usage) -------------------------------------------

_SPAN = re.compile(r"^\d+(s|sec|m|min|h|d|days?|w|weeks?|M|months?|y|years?)$")
_SIZE = re.compile(r"^\d+[KMGT]?$")


def _journal_usage(ctx: Ctx) -> str:
    proc = ctx.sd.journal_run([ctx.sd.journalctl, "--disk-usage"], timeout=60)
    return (proc.stdout or proc.stderr).strip()


def _journal_change(ctx: Ctx, args: list[str], timeout: float):
    """journalctl --rotate/--vacuum-*: journald's files and its socket are root's."""
    proc = ctx.sd.journal_run(args, timeout=timeout)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        if "Permission denied" in msg or "insufficient permissions" in msg:
            raise NeedsRoot(f"journald refused `journalctl {' '.join(args[1:])}`")
        raise UnifiedError(f"journalctl {' '.join(args[1:])} failed: {msg}")
    return proc


@logs.command("vacuum")
@click.option("--keep", metavar="SPAN", default=None, help="Remove archived journal files older than SPAN (7d, 2weeks, 1month).")
@click.option("--max-size", metavar="SIZE", default=None, help="Shrink archived journal files to SIZE in all (500M, 2G).")
@pass_ctx
def logs_vacuum(ctx: Ctx, keep: str | None, max_size: str | None) -> None:
    """Rotate the journal, then delete archived files beyond --keep / --max-size.

    journald keeps every unit's logs in the same files, so this acts on the whole journal
    (journald's own limits: SystemMaxUse=, MaxRetentionSec= in journald.conf)."""
    if not keep and not max_size:
        raise click.UsageError("say what to keep: --keep 7d and/or --max-size 1G")
    if keep and not _SPAN.match(keep):
        raise click.BadParameter(f"{keep!r} is not a time span; allowed: a number with s, min, h, d, w, M, y "
                                 "(e.g. 7d, 2weeks)", param_hint="--keep")
    if max_size and not _SIZE.match(max_size):
        raise click.BadParameter(f"{max_size!r} is not a size; allowed: a number with K, M, G or T (e.g. 500M)",
                                 param_hint="--max-size")
    before = _journal_usage(ctx)
    args = [ctx.sd.journalctl, "--rotate"]
    args += [f"--vacuum-time={keep}"] if keep else []
    args += [f"--vacuum-size={max_size}"] if max_size else []
    proc = _journal_change(ctx, args, timeout=300)
    freed = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.startswith("Vacuuming done")]
    click.echo(f"before: {before}")
    click.echo("; ".join(freed) or "nothing to vacuum")
    click.echo(f"after:  {_journal_usage(ctx)}")


@logs.command("rotate")
@pass_ctx
def logs_rotate(ctx: Ctx) -> None:
    """Archive the active journal files now (journalctl --rotate)."""
    _journal_change(ctx, [ctx.sd.journalctl, "--rotate"], timeout=120)
    click.echo(f"journal rotated; {_journal_usage(ctx)}")


@logs.command("usage")
@pass_ctx
def logs_usage(ctx: Ctx) -> None:
    """Disk space of the journal (journalctl --disk-usage)."""
    click.echo(_journal_usage(ctx))


COMMANDS = (logs,)
