"""Which agents a command acts on: names, shell-style globs ('Memory*'), --group NAME, `all`.

One rule for every command that takes agents (status, logs, agent start|stop|restart, agent
list): a name is that agent (an unknown one is an error naming close ones); a glob is every
agent whose name it matches (case-sensitive, as systemctl's globs; one that matches nothing is
an error listing close names); --group adds a group's agents; `all` is every agent, or, for a
command that acts on processes (restart, stop), every running one: the caller says what `all`
means. Agents come back in catalog order, each once.
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Iterable

from unified_core.errors import UnifiedError
from unified_core.model import Catalog

GLOB_CHARS = "*?["
ALL = "all"


def is_glob(word: str) -> bool:
    return any(c in word for c in GLOB_CHARS)


def is_pattern(words: Iterable[str], groups: Iterable[str] = ()) -> bool:
    """True when the selection names agents by pattern (a glob, a group or `all`), not by name."""
    return bool(tuple(groups)) or any(is_glob(w) or w == ALL for w in words)


def _close_to_glob(cat: Catalog, pattern: str) -> list[str]:
    """Names an operator probably meant by a glob that matched nothing."""
    names = list(cat.agents)
    folded = [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]
    if folded:  # 'memory*': the same glob with other case
        return folded[:5]
    stem = pattern.strip("*?").split("*")[0].split("?")[0].split("[")[0]
    if not stem:
        return []
    starts = [n for n in names if n.lower().startswith(stem.lower()[:3])]
    return (difflib.get_close_matches(stem, names, n=5, cutoff=0.5) or starts)[:5]


def match_glob(cat: Catalog, pattern: str) -> list[str]:
    found = [n for n in cat.agents if fnmatch.fnmatchcase(n, pattern)]
    if found:
        return found
    close = _close_to_glob(cat, pattern)
    hint = (f"; close names: {', '.join(close)}" + (" (names are case-sensitive)" if any(
        fnmatch.fnmatchcase(n.lower(), pattern.lower()) for n in close) else "")) if close else ""
    raise UnifiedError(f"no agent matches {pattern!r}{hint}; `unified-ctl agent list` lists all "
                       f"{len(cat.agents)}")


def group_agents(cat: Catalog, group: str) -> list[str]:
    groups = cat.groups
    if group in groups:
        return list(groups[group])
    close = difflib.get_close_matches(group, list(groups), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UnifiedError(f"unknown group {group!r}{hint}; allowed: {', '.join(sorted(groups))}")


def select(cat: Catalog, words: Iterable[str], groups: Iterable[str] = (),
           all_means: Iterable[str] | None = None, all_refused: str = "") -> list[str]:
    """The agents `words` and `groups` name, in catalog order. all_means: the agents `all`
    stands for (default every agent); all_refused: a reason `all` is refused here."""
    chosen: set[str] = set()
    for w in words:
        if w in cat.agents:  # a name first: an agent could be called `all`
            chosen.add(w)
        elif w == ALL:
            if all_refused:
                raise UnifiedError(all_refused)
            chosen.update(cat.agents if all_means is None else all_means)
        elif is_glob(w):
            chosen.update(match_glob(cat, w))
        else:
            chosen.add(cat.agent(w).name)  # unknown: the catalog's error, with close names
    for g in groups:
        chosen.update(group_agents(cat, g))
    return [n for n in cat.agents if n in chosen]


def running_processes(cat: Catalog, sd) -> set[str]:
    """Agents whose process runs or is starting (a dormant agent's socket alone does not count)."""
    out = set()
    for row in sd.list_units(["unified-agent@*.service"]):
        if row["active"] in ("active", "activating", "reloading"):
            name = row["unit"][len("unified-agent@"):].rsplit(".", 1)[0]
            if name in cat.agents:
                out.add(name)
    return out
