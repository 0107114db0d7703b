"""What the generators of scripts/dev share (agents_table, catalog_doc, man_page,
completions): a generated block between two markers of a hand-written file, and writing a
generated file or, with --check, failing when the committed one is stale."""
from __future__ import annotations

import sys


def splice(text: str, block: str, begin: str, end: str, where: str) -> str:
    """`text` with what lies between the marker lines `begin` and `end` replaced by `block`."""
    try:
        head, rest = text.split(begin + "\n", 1)
        _, tail = rest.split(end, 1)
    except ValueError:
        raise SystemExit(f"{where}: the markers {begin!r} and {end!r} are missing") from None
    return head + begin + "\n" + block + end + tail


def update(path: str, wanted: str, check: bool, how: str) -> bool:
    """Write `wanted` to `path` when it differs; with check, write nothing and say how to
    regenerate it. → whether the file was current."""
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = None
    if current == wanted:
        return True
    if check:
        print(f"{path} is stale; run {how}", file=sys.stderr)
    else:
        with open(path, "w") as f:
            f.write(wanted)
    return False
