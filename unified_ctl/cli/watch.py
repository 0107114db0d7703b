"""`status --watch`: redraw the fleet's table until the operator quits, like top.

On a terminal: rich's Live redraws the table in place every interval; keys (read without
echo, one at a time) c, m, n sort by CPU, memory, name, o returns to catalog order, space
reads now, q quits; Ctrl-C quits too. The terminal is restored however it ends (the
keyboard mode in a `finally`, the cursor by Live), and the last table stays on the screen.
Elsewhere (a pipe, a file, a script): one table per read, each after a line with the time,
or with --json one JSON document per line (JSON Lines), so `--iterations N` gives N of them.
The reads are unified_core.fleettop's; this module only draws them and waits."""
from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from typing import Callable, Iterator

import click

from .context import console

KEYS = {"c": "cpu", "m": "mem", "n": "name", "o": None}


def watch(top, sort: str | None, interval: float, iterations: int | None, as_json: bool,
          table: Callable) -> None:
    """top: a fleettop.FleetTop; table(frame, rates=, caption=): the renderable of one read."""
    try:
        if as_json or not sys.stdout.isatty():
            _lines(top, sort, interval, iterations, as_json, table)
        else:
            _live(top, sort, interval, iterations, table)
    except KeyboardInterrupt:  # Ctrl-C is how one leaves a watch: not an error
        pass


def _lines(top, sort, interval, iterations, as_json, table) -> None:
    import json

    n = 0
    while True:
        frame = top.read(sort)
        n += 1
        if as_json:
            click.echo(json.dumps(frame.to_dict(), separators=(",", ":")))
        else:
            click.echo(time.strftime("%H:%M:%S", time.localtime(frame.at))
                       + f"  (every {interval:g} s" + (f", {n}/{iterations}" if iterations else "") + ")")
            console().print(table(frame, rates=True))
        sys.stdout.flush()
        if iterations is not None and n >= iterations:
            return
        time.sleep(interval)


def _live(top, sort, interval, iterations, table) -> None:
    from rich.live import Live

    con = console()
    n = 0
    with _keys() as key, Live(console=con, auto_refresh=False, redirect_stdout=False,
                              redirect_stderr=False) as live:
        while True:
            frame = top.read(sort)
            n += 1
            caption = (time.strftime("%H:%M:%S", time.localtime(frame.at))
                       + f"  every {interval:g} s, sorted by {sort or 'catalog order'}"
                       + (f", {n}/{iterations}" if iterations else "")
                       + "  [dim](c cpu, m memory, n name, o catalog order; q quits)[/]")
            live.update(table(frame, rates=True, caption=caption), refresh=True)
            if iterations is not None and n >= iterations:
                return
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                k = key(left)
                if k in ("q", "Q"):
                    return
                if k in KEYS:
                    sort = KEYS[k]
                    break
                if k == " ":
                    break


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """key(timeout): the next key pressed within timeout s, else None. stdin in cbreak mode
    (no echo, no line buffering; Ctrl-C still interrupts) while the block runs, put back as
    it was afterwards. stdin not a terminal: never a key (only Ctrl-C or --iterations end)."""
    if not sys.stdin.isatty():
        def wait(timeout: float) -> str | None:
            time.sleep(timeout)
            return None

        yield wait
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def key(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return None
        b = os.read(fd, 1)
        return b.decode(errors="replace") if b else None

    try:
        tty.setcbreak(fd)
        yield key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
