"""unified-ctl commands that only read the catalog: validate, profile list|show (profile
current|switch drive systemd: cli/fleet.py adds them to the same group)."""
from __future__ import annotations

import sys

import click

from unified_core.catalog import load_catalog

from .context import Ctx, complete_profiles, console, emit_json, pass_ctx


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--no-dropins", is_flag=True, help="Ignore conf.d/*.yaml beside FILE.")
@pass_ctx
def validate(ctx: Ctx, file: str | None, as_json: bool, no_dropins: bool) -> None:
    """Check a catalog: syntax, keys, types, ports, dependencies and profiles."""
    from unified_core.errors import CatalogInvalid

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


@click.group()
def profile() -> None:
    """List, show and switch profiles."""


@profile.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def profile_list(ctx: Ctx, as_json: bool) -> None:
    """List the catalog's profiles."""
    from ..views import profile_rows

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
    from ..views import profile_detail

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
    from unified_core.profiles import current_profile

    return current_profile(ctx.catalog)


COMMANDS = (validate, profile)
