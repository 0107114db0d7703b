"""unified-ctl validate: check a catalog (the profile group is cli/profile.py)."""
from __future__ import annotations

import sys

import click

from unified_core.catalog import load_catalog

from .context import Ctx, emit_json, pass_ctx


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
    per_profile = {p.name: len(p.agents) for p in cat.profiles.values()}
    summary = {
        "ok": True, "path": path, "sources": list(cat.sources), "agents": len(cat.agents),
        "essential": len(cat.essential), "optional": len(cat.optional),
        "profiles": per_profile,
        "warnings": [{"file": w.source, "line": w.line, "field": w.where, "message": w.message}
                     for w in cat.warnings],
    }
    if as_json:
        emit_json(summary)
        return
    profiles = ", ".join(f"{n} {k}" for n, k in per_profile.items())
    click.echo(f"OK {path}: {summary['agents']} agents ({summary['essential']} essential, "
               f"{summary['optional']} optional), {len(cat.profiles)} profiles ({profiles})")
    if len(cat.sources) > 1:
        click.echo("  drop-ins: " + ", ".join(cat.sources[1:]))
    for w in cat.warnings:  # valid, so exit 0; on stderr so that scripts reading stdout see them apart
        click.echo(f"warning: {w}", err=True)


COMMANDS = (validate,)
