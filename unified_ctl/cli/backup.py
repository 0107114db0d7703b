"""unified-ctl backup create|verify|list|restore (backup.py and restore.py do the work)."""
from __future__ import annotations

import os
import sys

import click

from .context import Ctx, emit_json, pass_ctx


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
    rows: list[dict] = []
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
@click.option("--dry-run", is_flag=True, help="Verify the archive, say what would change and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def backup_restore(ctx: Ctx, path: str, yes: bool, other_host: bool, no_wait: bool, dry_run: bool,
                   as_json: bool) -> None:
    """Verify an archive, then restore its configuration and state (agents holding state restart)."""
    from .. import backup as b
    from unified_core import paths
    from .. import restore as r

    if dry_run:
        _print_preview(r.preview(path, ctx.sd, allow_other_host=other_host), path, as_json)
        return
    if not yes:
        v = b.verify(path, allow_other_host=other_host)  # refuse a bad archive before asking
        v.cleanup()
        click.confirm(f"Replace the catalog and the state in {paths.state_dir()} with {path} "
                      f"({v.manifest['created']})?", abort=True)
    from .progress import shown

    with ctx.fleet_lock(), shown("restore: profile", quiet=as_json or no_wait) as progress:
        res = r.restore(path, ctx.sd, allow_other_host=other_host, wait=not no_wait, progress=progress)
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


def _print_preview(d: dict, path: str, as_json: bool) -> None:
    if as_json:
        emit_json(d)
        return
    from .config import print_follow_preview

    click.echo(f"{path} verified (from {d['archive_host']}, {d['created']}); would restore it, nothing changed "
               "(--dry-run):")
    for kind in ("config", "state"):
        click.echo(f"  would install {len(d['install'][kind])} {kind} files"
                   + (f": {', '.join(d['install'][kind])}" if kind == "config" else ""))
    if d["removed_dropins"]:
        click.echo(f"  would remove drop-ins the archive does not have: {', '.join(d['removed_dropins'])}")
    click.echo(f"  would stop and start again the agents holding state: {', '.join(d['stop']) or 'none'}")
    if d["other_holders"]:
        click.echo("  warning: other processes have state files open: " + ", ".join(d["other_holders"]))
    if d["kept_not_in_archive"]:
        click.echo(f"  would keep {len(d['kept_not_in_archive'])} state files the archive does not have")
    if d["trial_ended"]:
        click.echo("  would end the catalog on trial")
    print_follow_preview(d["follow"])


COMMANDS = (backup,)
