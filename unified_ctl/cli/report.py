"""unified-ctl report weekly|capacity: Markdown + JSON + PNG (reports.py gathers the data)."""
from __future__ import annotations

import os

import click

from .context import Ctx, emit_json, pass_ctx


# -- reports ----------------------------------------------------------------------------------
@click.group()
def report() -> None:
    """Weekly performance review and capacity planning (Markdown + JSON + PNG)."""


def _write_report(kind: str, data: dict, out_dir: str | None, plot: bool, stem: str) -> dict:
    import json

    from .. import report_render
    from unified_core import paths

    out_dir = out_dir or paths.reports_dir()
    os.makedirs(out_dir, mode=0o750, exist_ok=True)
    base = os.path.join(out_dir, stem)
    png: str | None = None
    note: str | None = "no plot: --no-plot"
    if plot:
        draw = report_render.weekly_png if kind == "weekly" else report_render.capacity_png
        note = draw(data, base + ".png")
        png = None if note else base + ".png"
    md = (report_render.weekly_markdown if kind == "weekly" else report_render.capacity_markdown)(
        data, os.path.basename(png) if png else None, note)
    with open(base + ".md", "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        json.dump({**data, "plot": png, "plot_note": note}, f, indent=1, default=str)
        f.write("\n")
    return {"markdown": base + ".md", "json": base + ".json", "png": png, "plot_note": note, "text": md}


def _report_out(files: dict, as_json: bool, show: bool, data: dict) -> None:
    if as_json:
        emit_json({**{k: v for k, v in files.items() if k != "text"}, "missing": data["missing"]})
    elif show:
        click.echo(files["text"], nl=False)
    else:
        click.echo(f"{files['markdown']}\n{files['json']}")
        click.echo(files["png"] or f"({files['plot_note']})")
        for m in data["missing"]:
            click.echo(f"  not in the report: {m}")


def _written_options(f):
    """The options both reports share: where to write, the plot, what to print."""
    for opt in reversed((
            click.option("--out-dir", metavar="DIR", help="Where to write (default /var/lib/unified-system/reports)."),
            click.option("--no-plot", is_flag=True, help="Skip the PNG."),
            click.option("--print", "show", is_flag=True, help="Also print the Markdown."),
            click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON."))):
        f = opt(f)
    return f


def _write_and_say(kind: str, data: dict, out_dir: str | None, no_plot: bool, show: bool, as_json: bool) -> None:
    import socket
    import time

    stem = f"{kind}-{socket.gethostname()}-{time.strftime('%Y-%m-%d', time.localtime(data['until']))}"
    _report_out(_write_report(kind, data, out_dir, not no_plot, stem), as_json, show, data)


@report.command("weekly")
@click.option("--days", type=click.FloatRange(0.01, 366), default=7, show_default=True, help="Length of the window.")
@_written_options
@pass_ctx
def report_weekly(ctx: Ctx, days: float, out_dir: str | None, no_plot: bool, show: bool, as_json: bool) -> None:
    """Availability, restarts, slow loads, alerts, memory/VRAM peaks and routing split of the week."""
    from .. import reports

    data = reports.weekly(ctx.catalog, ctx.sd, days=days)
    try:
        reports.keep_sample(reports.sample_now(ctx.catalog, ctx.sd))  # feeds the capacity trend
    except OSError:
        pass
    _write_and_say("weekly", data, out_dir, no_plot, show, as_json)


@report.command("capacity")
@click.option("--days", type=click.FloatRange(1, 3660), default=90, show_default=True, help="History to read.")
@_written_options
@pass_ctx
def report_capacity(ctx: Ctx, days: float, out_dir: str | None, no_plot: bool, show: bool, as_json: bool) -> None:
    """Growth trend of memory, state and journal; when limits are reached; profile fit."""
    from .. import reports

    data = reports.capacity(ctx.catalog, ctx.sd, days=days)
    _write_and_say("capacity", data, out_dir, no_plot, show, as_json)


COMMANDS = (report,)
