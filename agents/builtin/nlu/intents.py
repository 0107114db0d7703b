"""Intent files (/etc/unified/intents.d/*.yaml, docs/NLU.md): load, validate, expand.

    lists:                          # optional: value lists usable as slot types
      language: [english, spanish, {german: [deutsch]}]   # a value, or value: [synonyms]
    intents:
      SetTimer:
        description: start a countdown           # optional
        slots: {duration: duration}              # slot name: type
        examples:                                # templates: (a|b) one of, [a] optional,
          - "(set|start) a timer for {duration}"  #   {slot} a slot of the intent

Slot types: number, duration, date, time, agent and profile (names from the catalog), text
(free words), and every list. Files are read in name order; an intent or list defined again
in a later file replaces the earlier one (an operator overrides a shipped intent with a
file sorting after it, e.g. 50-local.yaml). Errors name file:line, the field, the bad value
and what is allowed, with the catalog's YAML reader (unified_core.yamlsrc).
"""
from __future__ import annotations

import os
import re

from unified_core.errors import CatalogInvalid, Problem
from unified_core.yamlsrc import dotted, dropin_paths, load_file

from .text import norm_words

BUILTIN_TYPES = ("number", "duration", "date", "time", "agent", "profile", "text")
FALLBACK = "Fallback"
MAX_EXPANSIONS = 2000  # sentences one template may stand for
_INTENT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
INTENT_KEYS = ("description", "slots", "examples")


class IntentsInvalid(CatalogInvalid):
    """Intent files with problems; str() lists each as file:line: field: message."""


class Intent:
    __slots__ = ("name", "slots", "examples", "description", "source")

    def __init__(self, name, slots, examples, description, source):
        self.name: str = name
        self.slots: dict[str, str] = slots  # slot name -> type
        self.examples: list[tuple[str, list[tuple]]] = examples  # (template, expansions)
        self.description: str = description
        self.source: str = source  # file:line


class IntentSet:
    """Everything the files define: intents by name, lists (type -> phrase -> value)."""

    def __init__(self, intents: dict[str, Intent], lists: dict[str, dict[str, str]],
                 files: list[str]):
        self.intents = intents
        self.lists = lists
        self.files = files


# --------------------------------------------------------------------------- templates
class TemplateError(ValueError):
    pass


def parse_template(text: str, slots: dict[str, str]) -> list[tuple]:
    """Expand a template into its sentences: tuples of words and ("slot", name) pairs."""
    toks = re.findall(r"[()\[\]|]|\{[^{}]*\}|[^\s()\[\]|{}]+|[{}]", text)
    pos = 0

    def seq(closer: str | None) -> list[list[tuple]]:
        """Alternatives up to `closer`; each alternative a list of expanded sentences."""
        nonlocal pos
        alts: list[list[tuple]] = []
        current: list[tuple] = [()]
        while pos < len(toks):
            t = toks[pos]
            pos += 1
            if t in ("(", "["):
                inner = seq(")" if t == "(" else "]")
                options = [s for alt in inner for s in alt]
                if t == "[":
                    options = [()] + options
                current = [a + b for a in current for b in options]
            elif t == "|":
                if closer is None:
                    raise TemplateError("'|' outside ( ) or [ ]; allowed: (a|b) for one of, "
                                        "[a|b] for optionally one of")
                alts.append(current)
                current = [()]
            elif t in (")", "]"):
                if t != closer:
                    raise TemplateError(f"unexpected {t!r}" + (f" (expected {closer!r})"
                                                                if closer else ""))
                alts.append(current)
                if any(s == () for alt in alts for s in alt) and t == ")":
                    raise TemplateError("an empty choice in ( ); allowed: [a] for an "
                                        "optional part")
                return alts
            elif t.startswith("{"):
                name = t[1:-1].strip()
                if name not in slots:
                    allowed = ", ".join(sorted(slots)) or "none declared under 'slots'"
                    raise TemplateError(f"unknown slot {{{name}}}; allowed: {allowed}")
                current = [s + (("slot", name),) for s in current]
            elif t in ("{", "}"):
                raise TemplateError(f"unbalanced {t!r}; allowed: {{slot}} with a slot name")
            else:
                words = tuple(norm_words(t))
                current = [s + words for s in current]
            if len(current) > MAX_EXPANSIONS:
                raise TemplateError(f"expands to more than {MAX_EXPANSIONS} sentences; "
                                    "allowed: fewer optional parts, or several templates")
        if closer is not None:
            raise TemplateError(f"{'(' if closer == ')' else '['} is never closed; allowed: "
                                "balanced ( ) and [ ]")
        alts.append(current)
        return alts

    out = [s for alt in seq(None) for s in alt]
    out = list(dict.fromkeys(s for s in out if s))
    if not out:
        raise TemplateError("the template has no words; allowed: words, (a|b), [a], {slot}")
    return out


# --------------------------------------------------------------------------- files
def load_dir(path: str) -> IntentSet:
    """Read every *.yaml in `path` (name order); raise IntentsInvalid listing all problems."""
    files = dropin_paths(path)
    problems: list[Problem] = []
    if not files:
        problems.append(Problem(path, None, "", "no intent files (*.yaml) in this directory; "
                                "allowed: a directory with at least one intent file"))
        raise IntentsInvalid(problems)
    return load_files(files, problems)


def load_files(files: list[str], problems: list[Problem] | None = None) -> IntentSet:
    problems = [] if problems is None else problems
    intents: dict[str, Intent] = {}
    lists: dict[str, dict[str, str]] = {}
    raw_intents: list[tuple[str, str, object, dict]] = []
    for f in files:
        data, marks = load_file(f, problems)
        if data is None:
            continue
        v = _FileValidator(f, marks, problems)
        got = v.top(data)
        if got is None:
            continue
        file_lists, file_intents = got
        lists.update(file_lists)
        for name, spec in file_intents.items():
            raw_intents.append((f, name, spec, marks))
    for f, name, spec, marks in raw_intents:  # lists first: any file's list is a slot type
        v = _FileValidator(f, marks, problems)
        it = v.intent(name, spec, lists)
        if it is not None:
            intents[name] = it
    if problems:
        raise IntentsInvalid(problems)
    if not intents:
        raise IntentsInvalid([Problem(files[0], None, "intents", "no intents defined; "
                                      "allowed: at least one intent")])
    return IntentSet(intents, lists, list(files))


class _FileValidator:
    def __init__(self, path: str, marks: dict, problems: list[Problem]):
        self.path = path
        self.marks = marks
        self.problems = problems

    def bad(self, at: tuple, message: str) -> None:
        line = None
        for n in range(len(at), -1, -1):
            mk = self.marks.get(at[:n])
            if mk is not None:
                line = mk[1]
                break
        self.problems.append(Problem(self.path, line, dotted(at), message))

    def top(self, data) -> tuple[dict, dict] | None:
        if not isinstance(data, dict):
            self.bad((), f"{_show(data)} is not a mapping; allowed: a mapping with 'intents' "
                         "and optionally 'lists'")
            return None
        for k in data:
            if k not in ("intents", "lists"):
                self.bad((k,), f"unknown key {k!r}; allowed: intents, lists")
        lists = self.lists(data.get("lists", {}))
        intents = data.get("intents", {})
        if not isinstance(intents, dict):
            self.bad(("intents",), f"{_show(intents)} is not a mapping; allowed: intent name: "
                                   "{slots, examples}")
            intents = {}
        return lists, intents

    def lists(self, data) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if not isinstance(data, dict):
            self.bad(("lists",), f"{_show(data)} is not a mapping; allowed: list name: "
                                 "[values]")
            return out
        for name, values in data.items():
            at = ("lists", name)
            if not isinstance(name, str) or not _IDENT.match(name) or name in BUILTIN_TYPES:
                self.bad(at, f"list name {name!r} is invalid; allowed: lower-case letters, "
                             f"digits and '_', not a built-in type ({', '.join(BUILTIN_TYPES)})")
                continue
            if isinstance(values, dict):
                values = [{k: v} for k, v in values.items()]
            if not isinstance(values, list) or not values:
                self.bad(at, f"{_show(values)} is not a non-empty list; allowed: [value, "
                             "{value: [synonym, ...]}, ...]")
                continue
            phrases: dict[str, str] = {}
            for i, item in enumerate(values):
                if isinstance(item, str) and item.strip():
                    phrases[" ".join(norm_words(item))] = item
                elif (isinstance(item, dict) and len(item) == 1
                      and isinstance(next(iter(item.values())), (list, type(None)))):
                    value, syns = next(iter(item.items()))
                    for s in [value] + list(syns or []):
                        if not isinstance(s, str) or not s.strip():
                            self.bad(at + (i,), f"{_show(s)} is not a phrase; allowed: text")
                            continue
                        phrases[" ".join(norm_words(s))] = str(value)
                else:
                    self.bad(at + (i,), f"{_show(item)} is invalid; allowed: a value, or "
                                        "{value: [synonym, ...]}")
            out[name] = phrases
        return out

    def intent(self, name, spec, lists: dict) -> Intent | None:
        at = ("intents", name)
        if not isinstance(name, str) or not _INTENT_NAME.match(name) or name == FALLBACK:
            self.bad(at, f"intent name {name!r} is invalid; allowed: a CamelCase name "
                         f"(letters and digits, upper-case first), not {FALLBACK!r}")
            return None
        if not isinstance(spec, dict):
            self.bad(at, f"{_show(spec)} is not a mapping; allowed: {{slots, examples, "
                         "description}")
            return None
        ok = True
        for k in spec:
            if k not in INTENT_KEYS:
                self.bad(at + (k,), f"unknown key {k!r}; allowed: {', '.join(INTENT_KEYS)}")
                ok = False
        types = BUILTIN_TYPES + tuple(sorted(lists))
        slots = spec.get("slots") or {}
        if not isinstance(slots, dict):
            self.bad(at + ("slots",), f"{_show(slots)} is not a mapping; allowed: slot name: "
                                      "type")
            return None
        for sname, stype in slots.items():
            if not isinstance(sname, str) or not _IDENT.match(sname):
                self.bad(at + ("slots", sname), f"slot name {sname!r} is invalid; allowed: "
                                               "lower-case letters, digits and '_'")
                ok = False
            elif stype not in types:
                self.bad(at + ("slots", sname), f"unknown slot type {stype!r}; allowed: "
                                               f"{', '.join(types)}")
                ok = False
        examples = spec.get("examples")
        if not isinstance(examples, list) or not examples:
            self.bad(at + ("examples",), f"{_show(examples)} is not a non-empty list; "
                                         "allowed: a list of example sentences or templates")
            return None
        expanded = []
        used: set[str] = set()
        for i, tpl in enumerate(examples):
            if not isinstance(tpl, str) or not tpl.strip():
                self.bad(at + ("examples", i), f"{_show(tpl)} is not a sentence; allowed: "
                                               "text with (a|b), [optional] and {slot}")
                ok = False
                continue
            try:
                sentences = parse_template(tpl, slots if ok else dict(slots))
            except TemplateError as e:
                self.bad(at + ("examples", i), f"template {tpl!r}: {e}")
                ok = False
                continue
            used.update(it[1] for s in sentences for it in s if isinstance(it, tuple))
            expanded.append((tpl, sentences))
        for sname in slots:
            if ok and sname not in used:
                self.bad(at + ("slots", sname), f"slot {sname!r} is used by no example; "
                                               "allowed: slots that some example fills")
                ok = False
        desc = spec.get("description", "")
        if not isinstance(desc, str):
            self.bad(at + ("description",), f"{_show(desc)} is not text; allowed: text")
            ok = False
        if not ok:
            return None
        line = self.marks.get(at, (self.path, None))[1]
        return Intent(name, dict(slots), expanded, desc, f"{self.path}:{line}")


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def default_dir() -> str:
    return os.environ.get("NLU_INTENTS_DIR") or "/etc/unified/intents.d"
