"""The request being handled by the current thread or task (for logs and client calls)."""
from __future__ import annotations

from contextvars import ContextVar

_current: ContextVar = ContextVar("unified_request", default=None)


def current_request():
    """The `Request` this thread/task is handling, or None outside a handler."""
    return _current.get()


def current_request_id() -> str | None:
    req = _current.get()
    return req.request_id if req is not None else None
