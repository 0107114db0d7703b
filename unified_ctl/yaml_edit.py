"""Edit another package's YAML file (prometheus.yml, alertmanager.yml) keeping what the
operator wrote: ruamel.yaml's round-trip mode (python3-ruamel.yaml) keeps comments, key order
and quoting; PyYAML would drop every comment.

    data = load(text)             CommentedMap (a dict) or None; the merge functions change a copy
    text = dump(merged, text)     the new file, laid out like the old one

Two things round-trip mode does not do by itself, done here:
- indentation: ruamel writes one indentation for the whole file; of the usual two layouts of
  a list under a key ("key:\\n- a" and "key:\\n  - a") the one keeping more of the old lines
  as they were is chosen (Debian's prometheus.yml uses both);
- the comment block that ends the file (commented-out jobs, say) belongs to the file, not to
  its last value: it is kept aside, so that an item appended to the last list goes before it.
"""
from __future__ import annotations

import copy
import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

__all__ = ["load", "dump", "split_tail", "YAMLError"]   # YAMLError: callers catch it from here

def _yaml(mapping: int = 2, offset: int = 0) -> YAML:
    # Any: ruamel 0.17 initialises these settings to None, so mypy infers them as None
    y: Any = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096          # never fold a long line the operator wrote on one
    y.indent(mapping=mapping, sequence=mapping + offset, offset=offset)
    return y


def split_tail(text: str) -> tuple[str, str]:
    """(body, the comment and blank lines that end the file)."""
    lines = text.splitlines(keepends=True)
    i = len(lines)
    while i > 0 and (not lines[i - 1].strip() or lines[i - 1].lstrip().startswith("#")):
        i -= 1
    return "".join(lines[:i]), "".join(lines[i:])


def load(text: str) -> Any:
    """The document (without the file's closing comments); YAMLError when it does not parse."""
    return _yaml().load(split_tail(text)[0])


def dump(data: Any, like: str = "") -> str:
    """`data` as YAML text, laid out as `like` (the file it came from) was.

    Each layout is checked: it must read back as `data` (ruamel 0.17 writes invalid YAML for
    a comment before the first item of an indented list: Debian's prometheus.yml has one)
    and keep the comments; of those that do, the one keeping more old lines wins."""
    import yaml as pyyaml

    body, tail = split_tail(like)
    old = set(body.splitlines())
    comments = sum(1 for ln in body.splitlines() if ln.lstrip().startswith("#"))
    indent = _mapping_indent(body)
    best, best_score = None, None
    for offset in (indent, 0):
        out = io.StringIO()
        # a copy each time: dumping moves ruamel's comment tokens (a second dump of the
        # same document put `- ` on the line of its key: measured)
        _yaml(indent, offset).dump(copy.deepcopy(data), out)
        text = out.getvalue()
        try:
            if pyyaml.safe_load(text) != data:
                continue
        except pyyaml.YAMLError:
            continue
        lines = text.splitlines()
        score = (sum(1 for ln in lines if ln.lstrip().startswith("#")) >= comments,
                 sum(1 for ln in lines if ln in old))
        if best_score is None or score > best_score:
            best, best_score = text, score
    if best is None:
        raise YAMLError("the edited file cannot be written back in its own layout")
    if tail and not best.endswith("\n"):
        best += "\n"
    return best + tail


def _mapping_indent(text: str) -> int:
    """The indentation of the first nested key (2 when there is none)."""
    for ln in text.splitlines():
        m = re.match(r"( +)[^\s#-]", ln)
        if m:
            return len(m.group(1))
    return 2
