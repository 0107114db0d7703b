"""Load YAML files keeping the file and line of every value, and merge drop-ins.

The catalog's error messages must name file and line; PyYAML's constructed objects forget
both, so build plain Python values from the composed node tree ourselves and remember
where each path came from.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import Problem

if TYPE_CHECKING:
    import yaml
# PyYAML is imported by the first parse, not with this module (~20 ms): an agent's start
# usually takes the parsed catalog from catalog_cache.py.

Path = tuple  # ("agents", "TutorAgent", "port")
Marks = dict  # Path -> (file, line)

# Values a file may expand to. YAML aliases re-use a node, so a few lines of nested aliases
# ("billion laughs") expand to billions of values: found by the catalog fuzz test, 7 lines
# took 17 s and the generator runs at boot. The 77-agent catalog is ~3,000 values and a
# synthetic 1,000-agent one ~40,000.
MAX_VALUES = 200_000


class _TooBig(Exception):
    pass


def load_file(path: str, problems: list[Problem], raw: bytes | None = None) -> tuple[Any, Marks]:
    """Return (data, marks); syntax errors, duplicate keys and unreadable files go to problems.
    raw: the file's bytes when the caller has read them already."""
    marks: Marks = {}
    try:
        if raw is None:
            with open(path, "rb") as f:
                raw = f.read()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(Problem(path, None, "", f"cannot read file: {e}"))
        return None, marks
    import yaml

    # libyaml parses the 77-agent catalog ~5x faster than the pure-Python parser; marks are kept.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(e, "problem", None) or str(e)
        ctx = getattr(e, "context", None)
        cmark = getattr(e, "context_mark", None)
        if ctx and cmark is not None and mark is not None and cmark.line != mark.line:
            ctx += f" started at line {cmark.line + 1}"  # e.g. where the unclosed '[' is
        problems.append(Problem(path, line, "", f"YAML syntax error: {what}" + (f" ({ctx})" if ctx else "")))
        return None, marks
    if node is None:
        return None, marks
    builder = _Builder(path, marks, problems)
    try:
        return builder.build(node, ()), marks
    except _TooBig:
        problems.append(Problem(path, None, "", f"the file expands to more than {MAX_VALUES} "
                                "values (YAML aliases nested in aliases?); allowed: a "
                                "catalog written out, aliases only for small shared parts"))
        return None, {}


class _Builder:
    def __init__(self, path: str, marks: Marks, problems: list[Problem]):
        self.path = path
        self.marks = marks
        self.problems = problems
        import yaml

        self.yaml = yaml
        self.scalars = yaml.SafeLoader("")
        self.count = 0

    def build(self, node: yaml.Node, at: Path) -> Any:
        yaml = self.yaml
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooBig
        self.marks.setdefault(at, (self.path, node.start_mark.line + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    self.problems.append(Problem(self.path, knode.start_mark.line + 1, dotted(at),
                                                 "a key must be a plain value, not a list or mapping"))
                    continue
                if knode.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(Problem(self.path, knode.start_mark.line + 1, dotted(at),
                                                 "YAML merge keys ('<<') are not supported; write the keys out"))
                    continue
                try:
                    key = self.scalars.construct_object(knode)
                    hash(key)
                except (yaml.YAMLError, TypeError) as e:  # `!!python/... key:` (fuzz test)
                    self.problems.append(Problem(self.path, knode.start_mark.line + 1,
                                                 dotted(at), f"bad key: {e}"))
                    continue
                if key in out:
                    self.problems.append(Problem(
                        self.path, knode.start_mark.line + 1, dotted(at + (key,)),
                        f"duplicate key {key!r} (first at line {self.marks[at + (key,)][1]}); "
                        "allowed: each key once per mapping"))
                    continue
                self.marks[at + (key,)] = (self.path, knode.start_mark.line + 1)
                out[key] = self.build(vnode, at + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, at + (i,)) for i, item in enumerate(node.value)]
        try:
            return self.scalars.construct_object(node)
        except yaml.YAMLError as e:
            self.problems.append(Problem(self.path, node.start_mark.line + 1, dotted(at), f"bad value: {e}"))
            return None


def merge(base: Any, over: Any, base_marks: Marks, over_marks: Marks, at: Path = ()) -> Any:
    """Deep-merge a drop-in over the base: mappings merge key by key, anything else replaces.

    Marks follow the values: what the drop-in replaces or adds points into the drop-in, a
    mapping both define keeps pointing at the base (a key missing there is the base's fault).
    """
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if k in base:
                out[k] = merge(base[k], v, base_marks, over_marks, at + (k,))
            else:
                out[k] = v
                _take_marks(at + (k,), base_marks, over_marks)
        return out
    _take_marks(at, base_marks, over_marks)
    return over


def _take_marks(at: Path, base_marks: Marks, over_marks: Marks) -> None:
    """The value at `at` now comes from the drop-in: so do the marks of it and below it."""
    n = len(at)
    for p in [p for p in base_marks if p[:n] == at]:
        del base_marks[p]
    for p, mk in over_marks.items():
        if p[:n] == at:
            base_marks[p] = mk


def dropin_paths(conf_dir: str) -> list[str]:
    """conf.d/*.yaml in name order (like systemd drop-ins); missing dir means none."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".yaml", ".yml")))
    except FileNotFoundError:
        return []
    return [os.path.join(conf_dir, n) for n in names]


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
