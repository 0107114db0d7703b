"""Small validators of request fields shared by the state agents (memory, sessions, knowledge,
twin): each raises HTTPError 400 (413 for too long) naming the field, what was wrong and what
is allowed, so a handler reads its input in one line per field.

    d = need_object(request.json())
    session = field_str(d, "session", max_len=128, allowed=NAME_CHARS)
    limit = query_int(request, "limit", 100, 1, 10000)
"""
from __future__ import annotations

from .server import HTTPError



def need_object(body, what: str = "the request body") -> dict:
    if not isinstance(body, dict):
        raise HTTPError(400, f"{what} must be a JSON object, got {_jtype(body)}")
    return body


def field_str(d: dict, name: str, *, required: bool = True, max_len: int = 256,
              min_len: int = 1, default=None, allowed: str | None = None):
    v = d.get(name, None)
    if v is None:
        if required:
            raise HTTPError(400, f'"{name}" is missing; allowed: a string of {min_len}-{max_len}'
                                 " characters")
        return default
    if not isinstance(v, str):
        raise HTTPError(400, f'"{name}" must be a string, got {_jtype(v)}')
    if not min_len <= len(v) <= max_len:
        raise HTTPError(413 if len(v) > max_len else 400,
                        f'"{name}" has {len(v)} characters; allowed: {min_len}-{max_len}')
    if allowed is not None and any(ch not in allowed for ch in v):
        raise HTTPError(400, f'"{name}"={v[:80]!r} has characters outside {_describe(allowed)}')
    return v


def field_int(d: dict, name: str, *, default=None, lo=None, hi=None, required=False):
    v = d.get(name, None)
    if v is None:
        if required:
            raise HTTPError(400, f'"{name}" is missing; allowed: an integer {lo}-{hi}')
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
        raise HTTPError(400, f'"{name}" must be an integer, got {_jtype(v)}')
    v = int(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise HTTPError(400, f'"{name}"={v} is out of range; allowed: {lo}-{hi}')
    return v


def field_tags(d: dict, name: str = "tags", *, max_count: int = 32, max_len: int = 64) -> list:
    v = d.get(name, None)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise HTTPError(400, f'"{name}" must be a list of strings, got {_jtype(v)}')
    if len(v) > max_count:
        raise HTTPError(413, f'"{name}" has {len(v)} entries; allowed: at most {max_count}')
    out = []
    for t in v:
        t = t.strip()
        if not 1 <= len(t) <= max_len or any(ch.isspace() or ord(ch) < 32 for ch in t):
            raise HTTPError(400, f'tag {t[:80]!r} in "{name}": allowed 1-{max_len} characters, '
                                 "no spaces")
        if t not in out:
            out.append(t)
    return out


def query_int(request, name: str, default: int, lo: int, hi: int) -> int:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    if not v.lstrip("-").isdigit():
        raise HTTPError(400, f"?{name}={v!r} is not an integer; allowed: {lo}-{hi}")
    n = int(v)
    if not lo <= n <= hi:
        raise HTTPError(400, f"?{name}={n} is out of range; allowed: {lo}-{hi}")
    return n


def check_query(request, allowed: tuple) -> dict:
    q = request.query
    for k in q:
        if k not in allowed:
            raise HTTPError(400, f"unknown query parameter ?{k}=; allowed: "
                                 + (", ".join(allowed) or "none"))
    return q


def json_body(request, *, optional: bool = False):
    """The body as JSON; with optional=True an empty body is None (e.g. `curl -X POST`)."""
    if optional and not request.body.strip():
        return None
    return request.json()


def object_body(request) -> dict:
    """The body as a JSON object; an empty body (curl -X POST with no data) is {}."""
    body = json_body(request, optional=True)
    return {} if body is None else need_object(body)


def vram_limit_mb(body: dict) -> int | None:
    """POST /vram/limit's {"mb": N | null} (ModelManagerSuite owns the limit; VRAMOptimizer
    forwards it and refuses a bad one before the call)."""
    if "mb" not in body:
        raise HTTPError(400, 'POST /vram/limit needs {"mb": N} (MB, >= 0), or {"mb": null} '
                             "to return to VRAM_LIMIT_MB")
    mb = body["mb"]
    if mb is not None and (isinstance(mb, bool) or not isinstance(mb, int) or mb < 0):
        raise HTTPError(400, f"mb {mb!r} is invalid; allowed: an integer >= 0, or null")
    return mb


def _jtype(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _describe(allowed: str) -> str:
    return "letters, digits and " + " ".join(repr(c) for c in allowed
                                             if not c.isalnum())
