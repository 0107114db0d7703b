"""What every unified-ctl command module shares: the context object (catalog, systemd seam,
fleet lock), completion, JSON/table output, and the one place where library errors become
Click's (UnifiedGroup, the root group's class)."""
from __future__ import annotations

import json
import os
import sys

import click

from unified_core.catalog import catalog_path, load_catalog
from unified_core.errors import UnifiedError


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
            from ..config_history import trial_catalog

            self.config = trial_catalog() or catalog_path(None)
        self._catalog = None
        self._sd = None
        self.lock_timeout = lock_timeout

    def fleet_lock(self):
        """Hold the fleet lock for a command that changes the fleet (fleetlock.py)."""
        from .. import fleetlock

        def waiting(holder):
            click.echo(f"waiting for {holder or 'another fleet operation'} to finish (up to "
                       f"{self.timeout_s:g} s; --lock-timeout) ...", err=True)

        return fleetlock.hold(timeout=self.timeout_s, on_wait=waiting)

    @property
    def timeout_s(self) -> float:
        from ..fleetlock import DEFAULT_TIMEOUT

        return DEFAULT_TIMEOUT if self.lock_timeout is None else self.lock_timeout

    @property
    def sd(self):
        if self._sd is None:
            from unified_core.systemd import Systemd

            self._sd = Systemd()
        return self._sd

    def use_catalog(self, path: str, cat=None) -> None:
        """Read `path` from now on (a switch chose it: the trial, a staged rollout's FILE);
        cat: that catalog, already loaded."""
        self.config, self._catalog = path, cat

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
        names = {"agents": cat.agents, "profiles": cat.profiles, "groups": cat.groups}[kind]
        return [n for n in names if n.lower().startswith(incomplete.lower())]

    return complete


complete_agents = _complete("agents")
complete_profiles = _complete("profiles")
complete_groups = _complete("groups")


def group_option(f):
    """--group NAME (repeatable) for every command that takes agents (selection.py)."""
    return click.option("--group", "groups", multiple=True, metavar="NAME", shell_complete=complete_groups,
                        help="The agents of catalog group NAME (repeatable).")(f)


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def console():
    from rich.console import Console  # rich costs ~100 ms to import: only when printing tables

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(highlight=False, width=width)


def console_err():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class CliError(click.ClickException):
    """A UnifiedError at the CLI edge: printed by Click ("Error: ..."), exits with its code."""

    def __init__(self, error: UnifiedError):
        super().__init__(str(error))
        self.error = error
        self.exit_code = error.exit_code


class UnifiedGroup(click.Group):
    """The root group's class: every command runs inside its invoke(), so this is the one place
    where library errors become Click's (under main() and under click.testing alike)."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except UnifiedError as e:
            raise CliError(e) from e

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UnifiedError as e:
            raise CliError(e) from e
