"""Typed slot values from spoken-style tokens: numbers (digits or words), durations, dates,
times of day. Each parser takes a whole span of normalised tokens and returns the value, or
None when the span is not exactly one such value (the template matcher tries every span).

    number    "twenty five", "25", "one hundred and five", "1.5"    → 25, 25, 105, 1.5
    duration  "an hour and a half", "5 minutes", "2 hours 30 minutes" → seconds (int)
    date      "tomorrow", "on saturday", "december twenty fifth"    → "YYYY-MM-DD"
    time      "5 pm", "17:30", "half past seven", "noon"            → "HH:MM"
"""
from __future__ import annotations

import datetime as dt
import re

UNITS = {"zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
         "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
         "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
         "eighteen": 18, "nineteen": 19}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
        "eighty": 80, "ninety": 90}
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
            "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
            "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
            "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20,
            "thirtieth": 30}
SCALES = {"hundred": 100, "thousand": 1000}
UNIT_SECONDS = {"second": 1, "seconds": 1, "sec": 1, "secs": 1, "minute": 60, "minutes": 60,
                "min": 60, "mins": 60, "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600,
                "day": 86400, "days": 86400}
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]
MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)}
# every word these parsers know: the spelling corrector may fix a typo towards them
VOCABULARY = frozenset(list(UNITS) + list(TENS) + list(ORDINALS) + list(SCALES)
                       + list(UNIT_SECONDS) + WEEKDAYS + MONTHS
                       + ["half", "quarter", "and", "an", "a", "today", "tomorrow", "yesterday",
                          "noon", "midnight", "past", "to", "pm", "am", "o'clock"])

_NUM_RE = re.compile(r"^\d+(\.\d+)?$")
_ORD_RE = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")


def number(toks: list[str]) -> int | float | None:
    """Cardinal number: digits, or words up to the thousands ("two thousand and five")."""
    if not toks:
        return None
    if len(toks) == 1 and _NUM_RE.match(toks[0]):
        return float(toks[0]) if "." in toks[0] else int(toks[0])
    total, current, seen = 0, 0, False
    last = ""  # "unit", "ten", "scale"
    for i, t in enumerate(toks):
        if t in UNITS:
            if last == "unit" or (last == "ten" and not 0 < UNITS[t] < 10):
                return None
            current += UNITS[t]
            last = "unit"
        elif t in TENS:
            if last in ("unit", "ten"):
                return None
            current += TENS[t]
            last = "ten"
        elif t in SCALES:
            if last not in ("unit", "ten"):
                if not (i == 1 and toks[0] in ("a", "an")):
                    return None
                current = 1
            if SCALES[t] == 1000:
                total += current * 1000
                current = 0
            else:
                current *= 100
            last = "scale"
        elif t == "and" and last == "scale" and i + 1 < len(toks):
            continue
        elif t in ("a", "an") and i == 0 and len(toks) > 1 and toks[1] in SCALES:
            continue
        else:
            return None
        seen = True
    return total + current if seen else None


def ordinal(toks: list[str]) -> int | None:
    """Day of month: "3rd", "third", "twenty fifth", "25"."""
    if len(toks) == 1:
        m = _ORD_RE.match(toks[0])
        if m:
            return int(m.group(1))
        if toks[0] in ORDINALS:
            return ORDINALS[toks[0]]
    if len(toks) == 2 and toks[0] in TENS and toks[1] in ORDINALS and ORDINALS[toks[1]] < 10:
        return TENS[toks[0]] + ORDINALS[toks[1]]
    n = number(toks)
    return n if isinstance(n, int) else None


def _amount(toks: list[str]) -> float | None:
    """The amount before a unit: a number, "a"/"an", "one and a half", "half an"."""
    if toks in (["a"], ["an"]):
        return 1
    if toks in (["half", "an"], ["half", "a"]):
        return 0.5
    if len(toks) >= 4 and toks[-3:] == ["and", "a", "half"]:
        n = number(toks[:-3])
        return None if n is None else n + 0.5
    return number(toks)


def duration(toks: list[str]) -> int | None:
    """Seconds in "5 minutes", "an hour and a half", "2 hours 30 minutes", "half an hour"."""
    total, start, found = 0.0, 0, False
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in UNIT_SECONDS:
            amount = _amount(toks[start:i])
            if amount is None:
                return None
            unit = UNIT_SECONDS[t]
            total += amount * unit
            found = True
            i += 1
            if toks[i:i + 3] == ["and", "a", "half"]:
                total += unit / 2
                i += 3
            if i < len(toks) and toks[i] == "and":
                i += 1
            start = i
            continue
        i += 1
    if not found or start != len(toks):
        return None
    return int(round(total))


def date(toks: list[str], today: dt.date) -> str | None:
    """ISO date of "today", "tomorrow", "the day after tomorrow", "[on] saturday" (the next
    one after today), "december 25th", "the 3rd of december", "2026-12-24"."""
    if toks and toks[0] in ("on", "the") and len(toks) > 1:
        return date(toks[1:], today)
    s = " ".join(toks)
    if s == "today":
        d = today
    elif s == "tomorrow":
        d = today + dt.timedelta(days=1)
    elif s == "yesterday":
        d = today - dt.timedelta(days=1)
    elif s == "day after tomorrow":
        d = today + dt.timedelta(days=2)
    elif len(toks) == 1 and toks[0] in WEEKDAYS:
        ahead = (WEEKDAYS.index(toks[0]) - today.weekday()) % 7 or 7
        d = today + dt.timedelta(days=ahead)
    elif len(toks) == 1 and re.match(r"^\d{4}-\d{2}-\d{2}$", toks[0]):
        try:
            d = dt.date.fromisoformat(toks[0])
        except ValueError:
            return None
    else:
        month, day = _month_day(toks)
        if month is None or day is None:
            return None
        try:
            d = dt.date(today.year, month, day)
            if d < today - dt.timedelta(days=180):  # "january 2nd" said in december
                d = dt.date(today.year + 1, month, day)
        except ValueError:
            return None
    return d.isoformat()


def _month(t: str) -> int | None:
    if t in MONTHS:
        return MONTHS.index(t) + 1
    return MONTH_ABBR.get(t)


def _month_day(toks: list[str]) -> tuple[int | None, int | None]:
    if len(toks) >= 2 and _month(toks[0]):  # december 25th / december twenty fifth
        return _month(toks[0]), ordinal(toks[1:])
    if len(toks) >= 3 and toks[-2] == "of" and _month(toks[-1]):  # 25th of december
        return _month(toks[-1]), ordinal(toks[:-2])
    if len(toks) >= 2 and _month(toks[-1]):  # 25 december
        return _month(toks[-1]), ordinal(toks[:-1])
    return None, None


def time_of_day(toks: list[str]) -> str | None:
    """"HH:MM" of "5 pm", "17:30", "seven thirty", "half past seven", "quarter to eight",
    "noon", "midnight", "7 o'clock"."""
    if toks and toks[0] == "at" and len(toks) > 1:
        return time_of_day(toks[1:])
    s = " ".join(toks)
    if s == "noon":
        return "12:00"
    if s == "midnight":
        return "00:00"
    m = re.match(r"^(\d{1,2}):(\d{2})$", s)
    if m:
        hh, mm = int(m.group(1)), int(m.group(2))
        return f"{hh:02d}:{mm:02d}" if hh < 24 and mm < 60 else None
    suffix = None
    if toks and toks[-1] in ("am", "pm", "o'clock"):
        suffix, toks = toks[-1], toks[:-1]
    if not toks:
        return None
    h: int | float | None
    mi: int | float | None = 0
    if len(toks) >= 3 and toks[-2] in ("past", "to"):
        rel: int | float | None = {"half": 30, "quarter": 15}.get(toks[0]) if len(toks) == 3 \
            else None
        if rel is None:
            rel = number(toks[:-2])
        h = number(toks[-1:])
        if rel is None or h is None or rel >= 60:
            return None
        h, mi = (h, rel) if toks[-2] == "past" else (h - 1, 60 - rel)
    else:
        h = number(toks[:1])
        if len(toks) > 1:
            mi = number(toks[1:])
    if not isinstance(h, int) or not isinstance(mi, int) or not (0 <= mi < 60):
        return None
    if suffix == "pm" and h < 12:
        h += 12
    elif suffix == "am" and h == 12:
        h = 0
    if not (0 <= h < 24):
        return None
    return f"{h % 24:02d}:{mi:02d}"
