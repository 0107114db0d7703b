"""The merged catalog document, kept in /run/unified/catalog.cache for the agents' starts.

Every agent that reads the catalog parsed it again at start: PyYAML's import and the
77-agent parse are ~40 ms of CPU each, and a profile's agents start together on 2 CPUs.
The generator (root, at every daemon-reload) stores what it parsed together with the bytes
it parsed (the catalog and each conf.d drop-in); a reader reads the files, as it would to
parse them, and takes the stored document only when they are byte for byte the same, else
it parses them. Comparing content, not file times, leaves no window in which an edit goes
unseen. Validation always runs on what was loaded: the cache skips the YAML, never the checks.

marshal (built in, no import cost) keeps the document's Python types as they are. It is
not meant for untrusted data, so the file is read only when root or the reader itself owns
it and nobody else can write it.
"""
from __future__ import annotations

import marshal
import os
import stat
import sys
from typing import Any

from . import paths
from .yamlsrc import dropin_paths

FORMAT = 2


def cache_file() -> str:
    return os.path.join(paths.run_dir(), "catalog.cache")


def key(path: str) -> tuple | None:
    """((format, Python, marshal), (file, bytes), ...): the catalog and its drop-ins in the
    order the loader merges them, as read now. The parse uses these very bytes
    (catalog._parse_merged), so a stored document always matches its key. None when a file
    cannot be read: the parse then reads it again and says why."""
    conf_d = os.path.join(os.path.dirname(os.path.abspath(path)), "conf.d")
    parts: list[tuple] = [(FORMAT, sys.version_info[:2], marshal.version)]
    try:
        for p in [path, *dropin_paths(conf_d)]:
            with open(p, "rb") as f:
                parts.append((p, f.read()))
    except OSError:
        return None
    return tuple(parts)


def load(key: tuple) -> tuple[Any, dict, list[str]] | None:
    """(data, marks, sources) as catalog.load_merged returns them, or None: parse the files."""
    try:
        with open(cache_file(), "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid not in (0, os.geteuid()) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
            stored_key, data, marks, sources = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None  # none yet, unreadable, or another format: the files are the truth
    if stored_key != key:
        return None
    return data, marks, list(sources)


def pack(key: tuple, data: Any, marks: dict, sources: list[str]) -> bytes | None:
    """The cache's bytes, taken before validation looks at the document; None if a value
    cannot be kept (then nothing is stored)."""
    try:
        return marshal.dumps((key, data, marks, tuple(sources)))
    except ValueError:
        return None


def write(blob: bytes) -> bool:
    """Replace the cache atomically (a reader sees the old file or the new one). False when
    it cannot be written (read-only /run, early boot): readers then parse the files."""
    target = cache_file()
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True
