"""Small pure converters for config values.

Each takes a raw value (from YAML or the environment) and returns the typed value or raises
ValueError whose message names the bad value and what is allowed (like supervisor's
datatypes.py). The catalog adds file, line and field.
"""
from __future__ import annotations

import re

PORT_MIN, PORT_MAX = 1024, 65535
# systemd instance names may hold more, but '-' nests slices and is unescaped to '/' by
# %I, and '.'/'@'/':' confuse unit-name parsing in our tools: keep agent names plain.
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def integer(value: object, lo: int | None = None, hi: int | None = None) -> int:
    allowed = _range_text(lo, hi, "an integer")
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not an integer; allowed: {allowed}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        n = int(value)
    else:
        raise ValueError(f"{_show(value)} is not an integer; allowed: {allowed}")
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise ValueError(f"{n} is out of range; allowed: {allowed}")
    return n


def _range_text(lo: float | None, hi: float | None, what: str) -> str:
    if lo is not None and hi is not None:
        return f"{what} {lo}-{hi}"
    if lo is not None:
        return f"{what} >= {lo}"
    if hi is not None:
        return f"{what} <= {hi}"
    return what


def port(value: object) -> int:
    return integer(value, PORT_MIN, PORT_MAX)


def percent(value: object) -> int:
    return integer(value, 1, 100)


def positive_int(value: object) -> int:
    return integer(value, 1, None)


def non_negative_int(value: object) -> int:
    return integer(value, 0, None)


def fraction(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_show(value)} is not a number; allowed: a number 0.0-1.0")
    try:
        f = float(value)
    except ValueError:
        raise ValueError(f"{_show(value)} is not a number; allowed: a number 0.0-1.0") from None
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"{f} is out of range; allowed: a number 0.0-1.0")
    return f


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{_show(value)} is not a boolean; allowed: true/false (also yes/no, on/off, 1/0)")


def duration(value: object) -> float:
    """Seconds, from a number or '300ms', '30s', '5m', '1h'."""
    allowed = "seconds as a number >= 0, or a string like '500ms', '30s', '5m', '1h'"
    if isinstance(value, bool):
        raise ValueError(f"{_show(value)} is not a duration; allowed: {allowed}")
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):  # YAML .nan / .inf
            raise ValueError(f"{value} is not a duration; allowed: {allowed}")
        if value < 0:
            raise ValueError(f"{value} is negative; allowed: {allowed}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"{_show(value)} is not a duration; allowed: {allowed}")


def agent_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(
            f"{_show(value)} is not a valid agent (systemd instance) name; allowed: a letter, then "
            "letters, digits or '_' (at most 64 characters; no '-', '.', '@' or spaces)"
        )
    return value


def identifier(value: object) -> str:
    """Group, profile, model and task-type names: lower-case snake_case."""
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", value):
        raise ValueError(
            f"{_show(value)} is not a valid name; allowed: lower-case letters, digits and '_', "
            "starting with a letter (at most 64 characters)"
        )
    return value


def log_level(value: object) -> str:
    if isinstance(value, str) and value.strip().upper() in LOG_LEVELS:
        return value.strip().upper()
    raise ValueError(f"{_show(value)} is not a log level; allowed: {', '.join(LOG_LEVELS)}")


def string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{_show(value)} is not a non-empty string; allowed: a non-empty string")
    return value


def bind_address(value: object) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(string(value)))
    except ValueError:
        raise ValueError(
            f"{_show(value)} is not an IP address; allowed: an IPv4 or IPv6 address such as 127.0.0.1"
        ) from None


def choice(value: object, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    raise ValueError(f"{_show(value)} is not allowed; allowed: {', '.join(allowed)}")
