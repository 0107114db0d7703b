"""Progress of a wait for agents, as the library reports it (unified_core.profiles.Progress),
drawn on stderr: a rich bar on a terminal (ready/total, elapsed, the first agents still
waited for), erased when the wait ends; nothing with --json or when stderr is not a terminal,
where scripts and logs get the outcome alone. Every command that waits (profile switch,
recover, agent load, backup restore, config rollback|promote|abort) draws it the same way."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

from unified_core import profiles

from .context import console_err


class ProgressBar:
    """A rich progress bar on stderr; `update` is the callback (profiles.Progress)."""

    def __init__(self, label: str):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.label = label
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=console_err(), transient=True)
        self.task: Any = None  # rich's TaskID, once the first report gives the total

    def __enter__(self) -> profiles.Progress:
        self.bar.__enter__()
        return self.update

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def update(self, done, total, items) -> None:
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=total)
        waiting = [i.agent for i in items if not i.ready][:3]
        self.bar.update(self.task, completed=done, total=total, description=self.label + (
            f" (waiting: {', '.join(waiting)})" if waiting else ""))


@contextlib.contextmanager
def shown(label: str, quiet: bool = False) -> Iterator[profiles.Progress | None]:
    """The progress callback to give a waiting operation, drawn under `label` while the block
    runs; None (nothing drawn) when quiet (--json, --no-wait) or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    with ProgressBar(label) as update:
        yield update
