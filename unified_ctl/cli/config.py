"""unified-ctl config show|history|rollback|promote|abort: the catalog as it applies, its history
and the staged rollout (rollout.py does the work)."""
from __future__ import annotations

import sys

import click

from .context import Ctx, emit_json, fleet_change, pass_ctx


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


def _progress(as_json: bool, no_wait: bool):
    """While the running profile gets ready on the changed catalog (progress.py)."""
    from unified_core.profiles import read_selected
    from .progress import shown

    return shown(f"profile {read_selected() or ''}".rstrip(), quiet=as_json or no_wait)


# -- config history, rollback, staged rollout ----------------------------------------------
@click.group()
def config() -> None:
    """The merged catalog, its history, rollback and staged rollout (trial → promote)."""


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


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.option("--no-overrides", is_flag=True, help="The files alone: leave out the overrides in force and "
              "the selected profile.")
@pass_ctx
def config_show(ctx: Ctx, as_json: bool, no_overrides: bool) -> None:
    """Print the catalog as it applies: the file with its drop-ins merged, plus the operator's
    overrides in force and the selected profile (as `docker compose config`). The YAML is a
    valid catalog (`unified-ctl validate` reads it); an invalid catalog is refused."""
    from unified_core import profiles, runtime
    from unified_core.catalog import load_merged
    from ..views import merged_document

    cat = ctx.catalog  # validated: the problems of an invalid one, and nothing printed
    data, _, sources = load_merged(cat.path, dropins=len(cat.sources) > 1)
    overrides = {} if no_overrides else runtime.overrides_in_force()
    selected = profiles.current_profile(cat)
    doc = data if no_overrides else merged_document(data, overrides, selected)
    if as_json:
        emit_json({"sources": sources, "overrides": overrides, "selected_profile": selected, "catalog": doc})
        return
    import yaml

    click.echo(f"# unified-ctl config show: {' + '.join(sources)}")
    if not no_overrides:
        click.echo("# overrides in force (settings.*; `unified-ctl overrides clear` drops them): "
                   + (", ".join(f"{k}={v}" for k, v in overrides.items()) or "none"))
        click.echo(f"# selected profile (settings.profile): {selected}")
    click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100), nl=False)


def print_follow_preview(f: dict) -> None:
    """What a catalog change would make the running profile do (rollout.preview_follow)."""
    click.echo(f"  profile {f['profile']}: would start {len(f['start'])}, stop {len(f['stop'])}, "
               f"restart {len(f['restart'])}")
    for what in ("start", "stop"):
        if f[what]:
            click.echo(f"    {what}: {' '.join(f[what])}")
    for name, why in f["restart"].items():
        click.echo(f"    restart {name} ({why})")
    for c in f["port_clashes"]:
        click.echo(f"    would fail: {c}")


@config.command("rollback")
@click.option("--to", "entry_id", type=int, default=None, metavar="ID",
              help="History entry to restore (default: the catalog live before the current one).")
@click.option("--force", is_flag=True, help="Set unapplied edits of /etc/unified aside instead of refusing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the profile to be ready.")
@click.option("--dry-run", is_flag=True, help="Say what would change and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
def config_rollback(ctx: Ctx, entry_id: int | None, force: bool, no_wait: bool, dry_run: bool,
                    as_json: bool) -> None:
    """Restore the previous catalog (kept at every apply) and make the running profile follow it."""
    from .. import rollout

    if dry_run:
        d = rollout.rollback_preview(ctx.sd, entry_id, force=force)
        if as_json:
            emit_json(d)
            return
        to = d["to"]
        click.echo(f"would roll back to catalog {to['id']} of {to['when']} ({to['reason']}); nothing changed "
                   "(--dry-run)")
        if d["removed_dropins"]:
            click.echo(f"  would remove drop-ins not in it: {', '.join(d['removed_dropins'])}")
        if d["set_aside"]:
            click.echo(f"  would set unapplied edits aside: {', '.join(d['set_aside'])}")
        print_follow_preview(d)
        return
    with ctx.fleet_lock():
        _rollback(ctx, entry_id, force, no_wait, as_json)


def _rollback(ctx: Ctx, entry_id: int | None, force: bool, no_wait: bool, as_json: bool) -> None:
    from .. import rollout

    with _progress(as_json, no_wait) as progress:
        result, info = rollout.rollback(ctx.sd, entry_id, force=force, wait=not no_wait, progress=progress)
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

    with _progress(as_json, no_wait) as progress:
        result, info = rollout.promote(ctx.sd, force=force, wait=not no_wait, progress=progress)
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

    with _progress(as_json, no_wait) as progress:
        result = rollout.abort(ctx.sd, wait=not no_wait, progress=progress)
    _print_follow(result, as_json, {"catalog": paths.catalog_file()},
                  f"trial dropped; {paths.catalog_file()} is live again")


COMMANDS = (config,)
