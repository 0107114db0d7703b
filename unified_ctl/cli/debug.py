"""unified-ctl debug capture: state for an emergency, into one JSON file."""
from __future__ import annotations

import os

import click

from unified_core.errors import UnifiedError

from .context import Ctx, pass_ctx


# -- emergency: capture state ------------------------------------------------------------------
@click.group()
def debug() -> None:
    """Diagnostics for emergencies."""


@debug.command("capture")
@click.option("-O", "--output-file", "out", metavar="FILE", default=None,
              help="Where to write (default /var/tmp/unified-capture-HOST-TIME.json; - for stdout).")
@click.option("--output", "old_out", metavar="FILE", default=None, hidden=True,
              help="The old name of --output-file (kept for scripts).")
@click.option("-o", "old_o", metavar="FILE", default=None, hidden=True,
              help="The old short name of -O (kept working, with a note).")
@click.option("-n", "--lines", type=click.IntRange(0, 100000), default=300, show_default=True,
              help="Journal lines of our units.")
@pass_ctx
def debug_capture(ctx: Ctx, out: str | None, old_out: str | None, old_o: str | None, lines: int) -> None:
    """Capture hub /debug/state, systemd state and the journal into one JSON file.

    Works with the hub down (then systemd and the journal only) and with a broken catalog."""
    if old_o is not None:  # still works (scripts, older runbooks), and says what to type now
        click.echo("note: `debug capture -o FILE` is now -O FILE (--output-file): -o is an output format "
                   "elsewhere (`unified-ctl logs -o`, as journalctl's)", err=True)
    out = out or old_out or old_o
    from .. import capture, rollout

    try:
        cat = ctx.catalog
    except UnifiedError:
        try:
            cat = rollout.load_live()
        except UnifiedError:
            cat = None
    data = capture.capture(cat, ctx.sd, lines=lines)
    if out == "-":
        import json

        click.echo(json.dumps(data, indent=1, default=str))
        return
    path = capture.write(data, out or capture.default_path())
    hub = data.get("hub") or {}
    hub_note = ("hub state included" if not ({"skipped", "error"} & set(hub)) else
                f"hub: {hub.get('skipped') or hub.get('error')}")
    click.echo(f"{path}: {os.path.getsize(path) / 1024:.1f} KiB in {data['seconds']:.2f} s ({hub_note})")


COMMANDS = (debug,)
