"""unified-ctl operations commands (maintenance and emergency procedures of the runbook):
config history|rollback|promote|abort, backup create|restore|verify, report weekly|capacity,
logs vacuum|rotate|usage, debug capture."""
from __future__ import annotations

import os
import re
import sys

import click

from unified_core.errors import NeedsRoot, UnifiedError

from .context import Ctx, emit_json, fleet_change, pass_ctx
from .logs import logs  # the logs group (`logs [AGENT]...`): vacuum, rotate and usage join it here


def _print_follow(result, as_json: bool, extra: dict, headline: str) -> None:
    from ..rollout import follow_dict

    d = follow_dict(result)
    if as_json:
        emit_json({**extra, **d})
    else:
        click.echo(headline)
        click.echo(f"  profile {d['profile']}: restarted {len(d['restarted'])}"
                   + (f" ({', '.join(d['restarted'])})" if 0 < len(d['restarted']) <= 8 else "")
                   + f", started {len(d['started'])}, stopped {len(d['stopped'])}"
                   + (f", sockets re-bound {', '.join(d['sockets_restarted'])}" if d["sockets_restarted"] else ""))
        for n in d["notes"]:
            click.echo(f"  note: {n}")
        if "seconds" in d:
            if result.ok:
                click.echo(f"  all agents of {d['profile']} ready in {d['seconds']:.2f} s")
            else:
                click.echo(f"  not ready after {d['seconds']:.1f} s:", err=True)
                for a in d["not_ready"]:
                    click.echo(f"    {a['agent']}: {a['state']} {a['reason']}", err=True)
    if not result.ok:
        sys.exit(1)


# -- config history, rollback, staged rollout ----------------------------------------------
@click.group()
def config() -> None:
    """Catalog history, rollback and staged rollout (trial → promote)."""


@config.command("history")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def config_history_cmd(as_json: bool) -> None:
    """List the catalogs that were live, newest last, and the catalog on trial."""
    import time

    from .. import config_history as h
    from .. import rollout
    from unified_core import paths

    entries = h.entries()
    trial = h.trial_catalog()
    unapplied = rollout.unapplied_edits()
    if as_json:
        emit_json({"entries": [e.to_dict() for e in entries], "live": entries[-1].id if entries else None,
                   "trial": {"catalog": trial, **h.trial_meta()} if trial else None,
                   "unapplied_edits": unapplied is not None})
        return
    if not entries:
        click.echo(f"no catalog history yet ({paths.history_dir()})")
    for e in entries:
        mark = "live" if e is entries[-1] else ""
        drop = len(e.files) - 1
        click.echo(f"{e.id:>4}  {e.to_dict()['when']}  {e.reason:<16} {e.digest[:12]}"
                   f"  {drop} drop-in{'s' if drop != 1 else ''}  {mark}".rstrip())
    if trial:
        m = h.trial_meta()
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["time"])) if "time" in m else "?"
        click.echo(f"on trial: {m.get('source', '?')} (since {since}); "
                   "`unified-ctl config promote` keeps it, `unified-ctl config abort` drops it")
    if unapplied:
        click.echo(f"note: {paths.catalog_file()} has edits that are not live yet (`unified-ctl apply`)")


@config.command("rollback")
@click.option("--to", "entry_id", type=int, default=None, metavar="ID",
              help="History entry to restore (default: the catalog live before the current one).")
@click.option("--force", is_flag=True, help="Set unapplied edits of /etc/unified aside instead of refusing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the profile to be ready.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def config_rollback(ctx: Ctx, entry_id: int | None, force: bool, no_wait: bool, as_json: bool) -> None:
    """Restore the previous catalog (kept at every apply) and make the running profile follow it."""
    from .. import rollout

    result, info = rollout.rollback(ctx.sd, entry_id, force=force, wait=not no_wait)
    to = info["to"]
    head = f"rolled back to catalog {to['id']} of {to['when']} ({to['reason']}); it is live"
    if info["removed_dropins"]:
        head += f"; removed drop-ins not in it: {', '.join(info['removed_dropins'])}"
    _print_follow(result, as_json, info, head)


@config.command("promote")
@click.option("--force", is_flag=True, help="Set unapplied edits of /etc/unified aside instead of refusing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the profile to be ready.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def config_promote(ctx: Ctx, force: bool, no_wait: bool, as_json: bool) -> None:
    """Make the catalog on trial permanent: copy it to /etc/unified (kept in history)."""
    from .. import rollout
    from unified_core import paths

    result, info = rollout.promote(ctx.sd, force=force, wait=not no_wait)
    head = f"promoted {info['source']} to {paths.catalog_file()} (history entry {info['history']['id']})"
    if info["removed_dropins"]:
        head += f"; removed drop-ins it did not have: {', '.join(info['removed_dropins'])}"
    _print_follow(result, as_json, info, head)


@config.command("abort")
@click.option("--no-wait", is_flag=True, help="Do not wait for the profile to be ready.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@fleet_change
def config_abort(ctx: Ctx, no_wait: bool, as_json: bool) -> None:
    """Drop the catalog on trial and return to the permanent one (as a reboot would)."""
    from .. import rollout
    from unified_core import paths

    result = rollout.abort(ctx.sd, wait=not no_wait)
    _print_follow(result, as_json, {"catalog": paths.catalog_file()},
                  f"trial dropped; {paths.catalog_file()} is live again")


# -- backup and restore ---------------------------------------------------------------------
@click.group()
def backup() -> None:
    """Back up and restore configuration and state (SQLite copied live, with checksums)."""


@backup.command("create")
@click.argument("path", required=False, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def backup_create(path: str | None, as_json: bool) -> None:
    """Write one archive of /etc/unified and /var/lib/unified (default: /var/backups/unified/)."""
    from .. import backup as b

    m = b.create(path)
    if as_json:
        emit_json(m)
        return
    dbs = sum(1 for f in m["files"] if f.get("sqlite"))
    by = {k: sum(1 for f in m["files"] if f["kind"] == k) for k in ("config", "state")}
    click.echo(f"{m['path']}: {m['bytes'] / 1024:.1f} KiB, {by['config']} config files, {by['state']} state files "
               f"({dbs} SQLite databases, copied consistently), profile {m['profile'] or '-'}, "
               f"{m['seconds']:.2f} s")


@backup.command("verify")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--other-host", is_flag=True, help="Accept an archive made on another host.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def backup_verify(path: str, other_host: bool, as_json: bool) -> None:
    """Check an archive completely (checksums, catalog, databases) without restoring it."""
    from .. import backup as b

    v = b.verify(path, allow_other_host=other_host)
    v.cleanup()
    m = v.manifest
    if as_json:
        emit_json({"ok": True, "path": path, "host": m["host"], "created": m["created"], "files": len(m["files"]),
                   "format_version": m["format_version"], "profile": m.get("profile")})
    else:
        click.echo(f"OK {path}: {len(m['files'])} files from {m['host']} at {m['created']} "
                   f"(unified-system {m.get('unified_version')}, profile {m.get('profile') or '-'})")


@backup.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def backup_list(as_json: bool) -> None:
    """List the archives in /var/backups/unified."""
    from unified_core import paths

    d = paths.backup_dir()
    rows = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        p = os.path.join(d, name)
        if name.endswith(".tar.gz") and os.path.isfile(p):
            rows.append({"path": p, "bytes": os.path.getsize(p), "mtime": os.path.getmtime(p)})
    if as_json:
        emit_json(rows)
        return
    import time

    for r in rows:
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(r['mtime']))}  {r['bytes'] / 1024:9.1f} KiB  "
                   f"{r['path']}")
    if not rows:
        click.echo(f"no archives in {d}")


@backup.command("restore")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--other-host", is_flag=True, help="Accept an archive made on another host.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the profile to be ready.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def backup_restore(ctx: Ctx, path: str, yes: bool, other_host: bool, no_wait: bool, as_json: bool) -> None:
    """Verify an archive, then restore its configuration and state (agents holding state restart)."""
    from .. import backup as b
    from unified_core import paths
    from .. import restore as r

    if not yes:
        v = b.verify(path, allow_other_host=other_host)  # refuse a bad archive before asking
        v.cleanup()
        click.confirm(f"Replace the catalog and the state in {paths.state_dir()} with {path} "
                      f"({v.manifest['created']})?", abort=True)
    with ctx.fleet_lock():
        res = r.restore(path, ctx.sd, allow_other_host=other_host, wait=not no_wait)
    if as_json:
        emit_json(res)
    else:
        click.echo(f"restored {path} (from {res['archive_host']}, {res['created']}): "
                   f"{res['installed']['config']} config files, {res['installed']['state']} state files; "
                   f"restarted holders of state: {', '.join(res['stopped']) or 'none'}")
        if res["other_holders"]:
            click.echo("  warning: other processes had state files open: " + ", ".join(res["other_holders"]))
        if res["kept_not_in_archive"]:
            click.echo(f"  kept {len(res['kept_not_in_archive'])} state files the archive does not have")
        f = res["follow"]
        click.echo(f"  profile {res['profile']}: " + ("ready" if res["ok"] else
                   "NOT ready: " + ", ".join(a["agent"] for a in f.get("not_ready", []))))
    if not res["ok"]:
        sys.exit(1)


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


# -- emergency: capture state ------------------------------------------------------------------
@click.group()
def debug() -> None:
    """Diagnostics for emergencies."""


@debug.command("capture")
@click.option("-o", "--output", "out", metavar="FILE", default=None,
              help="Where to write (default /var/tmp/unified-capture-HOST-TIME.json; - for stdout).")
@click.option("-n", "--lines", type=click.IntRange(0, 100000), default=300, show_default=True,
              help="Journal lines of our units.")
@pass_ctx
def debug_capture(ctx: Ctx, out: str | None, lines: int) -> None:
    """Capture hub /debug/state, systemd state and the journal into one JSON file.

    Works with the hub down (then systemd and the journal only) and with a broken catalog."""
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
    png, note = None, "no plot: --no-plot"
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


@report.command("weekly")
@click.option("--days", type=click.FloatRange(0.01, 366), default=7, show_default=True, help="Length of the window.")
@click.option("--out-dir", metavar="DIR", help="Where to write (default /var/lib/unified-system/reports).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@click.option("--print", "show", is_flag=True, help="Also print the Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@pass_ctx
def report_weekly(ctx: Ctx, days: float, out_dir: str | None, no_plot: bool, show: bool, as_json: bool) -> None:
    """Availability, restarts, slow loads, alerts, memory/VRAM peaks and routing split of the week."""
    import socket
    import time

    from .. import reports

    data = reports.weekly(ctx.catalog, ctx.sd, days=days)
    try:
        reports.keep_sample(reports.sample_now(ctx.catalog, ctx.sd))  # feeds the capacity trend
    except OSError:
        pass
    stem = f"weekly-{socket.gethostname()}-{time.strftime('%Y-%m-%d', time.localtime(data['until']))}"
    _report_out(_write_report("weekly", data, out_dir, not no_plot, stem), as_json, show, data)


@report.command("capacity")
@click.option("--days", type=click.FloatRange(1, 3660), default=90, show_default=True, help="History to read.")
@click.option("--out-dir", metavar="DIR", help="Where to write (default /var/lib/unified-system/reports).")
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@click.option("--print", "show", is_flag=True, help="Also print the Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@pass_ctx
def report_capacity(ctx: Ctx, days: float, out_dir: str | None, no_plot: bool, show: bool, as_json: bool) -> None:
    """Growth trend of memory, state and journal; when limits are reached; profile fit."""
    import socket
    import time

    from .. import reports

    data = reports.capacity(ctx.catalog, ctx.sd, days=days)
    stem = f"capacity-{socket.gethostname()}-{time.strftime('%Y-%m-%d', time.localtime(data['until']))}"
    _report_out(_write_report("capacity", data, out_dir, not no_plot, stem), as_json, show, data)


COMMANDS = (config, backup, debug, report,)
