"""unified-ctl: one CLI for the unified-system agent fleet.

Commands are thin: they parse options, call library code and print. Library code raises
UnifiedError (a ClickException) for anything the operator can fix; it is printed once here.
"""
from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .catalog import catalog_path, load_catalog


class Ctx:
    """Built once in the root group; commands take what they need from it lazily."""

    def __init__(self, config: str | None, lock_timeout: float | None = None):
        # -c FILE only chooses what to read. During a staged rollout (CONFIG=new.yaml profile
        # switch) the trial is what runs: status, profile show and friends read it until
        # `config promote` or `config abort`.
        self.config_given = config
        if config:
            self.config = catalog_path(config)
        else:
            from .config_history import trial_catalog

            self.config = trial_catalog() or catalog_path(None)
        self._catalog = None
        self._sd = None
        self.lock_timeout = lock_timeout

    def fleet_lock(self):
        """Hold the fleet lock for a command that changes the fleet (fleetlock.py)."""
        from . import fleetlock

        def waiting(holder):
            click.echo(f"waiting for {holder or 'another fleet operation'} to finish (up to "
                       f"{self.timeout_s:g} s; --lock-timeout) ...", err=True)

        return fleetlock.hold(timeout=self.timeout_s, on_wait=waiting)

    @property
    def timeout_s(self) -> float:
        from .fleetlock import DEFAULT_TIMEOUT

        return DEFAULT_TIMEOUT if self.lock_timeout is None else self.lock_timeout

    @property
    def sd(self):
        if self._sd is None:
            from .systemd import Systemd

            self._sd = Systemd()
        return self._sd

    @property
    def catalog(self):
        if self._catalog is None:
            self._catalog = load_catalog(self.config)
        return self._catalog


pass_ctx = click.make_pass_decorator(Ctx)


def fleet_change(f):
    """For a command that changes the fleet (under @pass_ctx): run it holding the fleet lock."""
    import functools

    @functools.wraps(f)
    def locked(ctx: Ctx, *args, **kwargs):
        with ctx.fleet_lock():
            return f(ctx, *args, **kwargs)

    return locked


def _complete(kind: str):
    """Shell completion of agent/profile names from the catalog (silent when it can't load)."""

    def complete(ctx, param, incomplete):
        try:
            cat = load_catalog(catalog_path((ctx.find_root().params or {}).get("config")))
        except Exception:
            return []
        names = cat.agents if kind == "agents" else cat.profiles
        return [n for n in names if n.lower().startswith(incomplete.lower())]

    return complete


complete_agents = _complete("agents")
complete_profiles = _complete("profiles")


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def console():
    from rich.console import Console  # rich costs ~100 ms to import: only when printing tables

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(highlight=False, width=width)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-dropins", is_flag=True, help="Ignore conf.d/*.yaml beside FILE.")
@pass_ctx
def validate(ctx: Ctx, file: str | None, as_json: bool, no_dropins: bool) -> None:
    """Check a catalog: syntax, keys, types, ports, dependencies and profiles."""
    from .errors import CatalogInvalid

    path = file or ctx.config
    try:
        cat = load_catalog(path, dropins=not no_dropins)
    except CatalogInvalid as e:
        if as_json:
            emit_json({"ok": False, "path": path, "problems": [
                {"file": p.source, "line": p.line, "field": p.where, "message": p.message} for p in e.problems]})
            sys.exit(1)
        raise
    summary = {
        "ok": True, "path": path, "sources": list(cat.sources), "agents": len(cat.agents),
        "essential": len(cat.essential), "optional": len(cat.optional),
        "profiles": {p.name: len(p.agents) for p in cat.profiles.values()},
        "warnings": [{"file": w.source, "line": w.line, "field": w.where, "message": w.message}
                     for w in cat.warnings],
    }
    if as_json:
        emit_json(summary)
        return
    profiles = ", ".join(f"{n} {k}" for n, k in summary["profiles"].items())
    click.echo(f"OK {path}: {summary['agents']} agents ({summary['essential']} essential, "
               f"{summary['optional']} optional), {len(cat.profiles)} profiles ({profiles})")
    if len(cat.sources) > 1:
        click.echo("  drop-ins: " + ", ".join(cat.sources[1:]))
    for w in cat.warnings:  # valid, so exit 0; on stderr so that scripts reading stdout see them apart
        click.echo(f"warning: {w}", err=True)


@cli.group()
def profile() -> None:
    """List, show and switch profiles."""


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_list(ctx: Ctx, as_json: bool) -> None:
    """List the catalog's profiles."""
    from .views import profile_rows

    rows = profile_rows(ctx.catalog, _selected(ctx))
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title="profiles")
    for col in ("", "profile", "agents", "essential", "optional", "autoload", "CPU", "memory", "description"):
        table.add_column(col)
    for r in rows:
        res = r["resources"] or {}
        table.add_row("*" if r["selected"] else "", r["name"], str(r["agents"]), str(r["essential"]),
                      str(r["optional"]), ", ".join(r["autoload"]) or "-",
                      f"{res['cpu_percent']} %" if res else "-", f"{res['memory_mb']} MB" if res else "-",
                      r["description"])
    console().print(table)


@profile.command("show")
@click.argument("name", shell_complete=complete_profiles)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_show(ctx: Ctx, name: str, as_json: bool) -> None:
    """Show the agents of profile NAME and why each is in it."""
    from .views import profile_detail

    detail = profile_detail(ctx.catalog, ctx.catalog.profile(name))
    if as_json:
        emit_json(detail)
        return
    from rich.table import Table

    table = Table(title=f"profile {name}: {detail['count']} agents "
                        f"({len(detail['via_dependency'])} via dependencies)")
    for col in ("agent", "group", "kind", "starts as", "port", "health", "why"):
        table.add_column(col)
    for a in detail["agents"]:
        table.add_row(a["name"], a["group"], "essential" if a["required"] else "optional", a["start"],
                      str(a["port"]), str(a["health_port"]), a["why"])
    console().print(table)


def _selected(ctx: Ctx) -> str:
    from .profiles import current_profile

    return current_profile(ctx.catalog)


from . import cli_fleet  # noqa: E402,F401  (registers the systemd-facing commands)
from . import cli_ops  # noqa: E402,F401  (backup, config history, reports, debug capture)
from . import cli_monitoring  # noqa: E402,F401  (monitoring setup, health)


def command_path(argv: list[str]) -> str:
    """`unified-ctl backup create` for argv ["-c", "x.yaml", "backup", "create", "/tmp/b"]."""
    words, cmd, i = ["unified-ctl"], cli, 0
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
    from .errors import EXIT_NOPERM

    what = command_path(argv)
    if os.geteuid() == 0:  # root refused too: a read-only mount, an immutable file, a LSM
        click.echo(f"Error: {what}: {why}, even as root", err=True)
    else:
        click.echo(f"Error: {what}: needs root ({why}): run it with sudo", err=True)
    return EXIT_NOPERM


def main(argv: list[str] | None = None) -> int:
    """Entry point: Click's own handling of usage errors and ClickExceptions, never a traceback.
    Exit statuses: errors.EXIT_STATUS (and the man page's EXIT STATUS section)."""
    from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, NeedsRoot

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = cli.main(args=argv, prog_name="unified-ctl", standalone_mode=False)
    except SystemExit as e:  # a command's sys.exit(n): a result, not an error
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except NeedsRoot as e:
        return _needs_root(argv, e.message)
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
