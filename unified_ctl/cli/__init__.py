"""unified-ctl: one CLI for the unified-system agent fleet.

Commands are thin: they parse options, call library code and print. Library code raises
UnifiedError (a plain exception with an exit code) for anything the operator can fix; the root
group turns it into a ClickException (context.UnifiedGroup), once, and main() prints it.

A package: context.py is what the command modules share; every other module is one command
or group of commands (catalog.py: validate; profile.py; apply.py; status.py; agent.py;
logs.py; emergency.py: emergency-stop, recover; overrides.py; auto_restart.py; config.py;
backup.py; debug.py; report.py; monitoring.py: monitoring, health; ask.py). Each defines its commands without
knowing the root group, which adds them here with add_command (so each module imports on its
own; tests/unit/test_layers.py checks it). The work itself is library code (operations.py,
rollout.py, ...): a command parses, calls it and prints the result.
"""
from __future__ import annotations

import os
import sys

import click

from .. import __version__
from . import (agent, apply, ask, auto_restart, backup, catalog, config, debug, emergency, logs, monitoring, overrides,
               profile, report, status)
from .context import CliError, Ctx, UnifiedGroup  # noqa: F401  (Ctx: the tests' seam)


@click.group(cls=UnifiedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", metavar="FILE",
              help="Catalog to read (default /etc/unified/unified.yaml, or the one on trial). To try "
                   "a catalog on the running fleet: CONFIG=FILE unified-ctl profile switch NAME.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="How long a command that changes the fleet waits for another one to finish "
                   "(default 300; 0: refuse at once, naming it).")
@click.version_option(__version__, prog_name="unified-ctl")
@click.pass_context
def cli(ctx: click.Context, config: str | None, lock_timeout: float | None) -> None:
    """Run the unified-system agent fleet on systemd."""
    ctx.obj = Ctx(config, lock_timeout)


# the order of `unified-ctl --help` is click's (alphabetical), not this one
for _module in (catalog, profile, apply, ask, status, agent, logs, emergency, overrides, auto_restart, config, backup,
                debug, report, monitoring):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def command_path(argv: list[str]) -> str:
    """`unified-ctl backup create` for argv ["-c", "x.yaml", "backup", "create", "/tmp/b"]."""
    words, i = ["unified-ctl"], 0
    cmd: click.Command = cli
    while i < len(argv) and isinstance(cmd, click.Group):
        word = argv[i]
        if word.startswith("-"):
            # a group's option that takes a value (-c FILE, --lock-timeout S) skips it too,
            # unless given as --opt=value
            takes_value = {o for p in cmd.params if isinstance(p, click.Option) and not p.is_flag
                           and not p.count for o in p.opts}
            i += 2 if word in takes_value else 1
            continue
        sub = cmd.commands.get(word)
        if sub is None:
            break
        words.append(word)
        cmd, i = sub, i + 1
    return " ".join(words)


def _needs_root(argv: list[str], why: str) -> int:
    """One line for a command that only root may run (EXIT STATUS 77 in the man page)."""
    from unified_core.errors import EXIT_NOPERM

    what = command_path(argv)
    if os.geteuid() == 0:  # root refused too: a read-only mount, an immutable file, a LSM
        click.echo(f"Error: {what}: {why}, even as root", err=True)
    else:
        click.echo(f"Error: {what}: needs root ({why}): run it with sudo", err=True)
    return EXIT_NOPERM


def main(argv: list[str] | None = None) -> int:
    """Entry point: Click's own handling of usage errors, our errors (CliError), never a traceback.
    Exit statuses: errors.EXIT_STATUS (and the man page's EXIT STATUS section)."""
    from unified_core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, NeedsRoot

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = cli.main(args=argv, prog_name="unified-ctl", standalone_mode=False)
    except SystemExit as e:  # a command's sys.exit(n): a result, not an error
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except CliError as e:
        if isinstance(e.error, NeedsRoot):
            return _needs_root(argv, e.error.message)
        e.show()
        return e.exit_code
    except PermissionError as e:  # writing /etc, /run/systemd, /var/backups... as a user
        return _needs_root(argv, f"{e.strerror}: {e.filename}" if e.filename else str(e))
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug of ours: say so in one line, keep the traceback for developers
        if os.environ.get("UNIFIED_DEBUG"):
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (set UNIFIED_DEBUG=1 for the traceback; "
                   "please report it)", err=True)
        return EXIT_INTERNAL
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
