"""The checks every text-taking agent makes on a task's text field, in one place: a clear
400 when it is missing, empty or holds a NUL, a 413 naming the setting when it is too long."""
from __future__ import annotations

from unified_agents import HTTPError


def text_field(task: dict, name: str, max_chars: int, setting: str,
               allowed: str = "the text (a string)") -> str:
    v = task.get(name)
    if not isinstance(v, str) or not v.strip():
        raise HTTPError(400, f'"{name}" is missing or empty; allowed: {allowed}')
    if len(v) > max_chars:
        raise HTTPError(413, f'"{name}" has {len(v)} characters; allowed: at most {max_chars} '
                             f"({setting})")
    if "\0" in v:
        raise HTTPError(400, f'"{name}" holds a NUL character; allowed: plain text')
    return v
