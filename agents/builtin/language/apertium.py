"""Machine translation with Debian's Apertium: one `apertium` pipeline per call (subprocess).

The installed pairs are the mode files of the data directory (/usr/share/apertium/modes/
eng-spa.mode, ...: one per direction, installed by a pair package such as apertium-eng-spa).
A call runs `apertium -d DIR PAIR` with the text on stdin; a crash or a hang of the pipeline
stays out of the agent (the timeout kills it). Apertium's persistent null-flush mode (-z) was
tried and hangs with the eng-spa pipeline, so every call pays the pipeline's start (~0.25 s,
docs/LANGUAGE.md).

Apertium marks a word it does not know with "*" (and "#"/"@" for generation/transfer gaps);
the marks are taken out of the text and the words listed in "unknown_words".
"""
from __future__ import annotations

import os
import re
import subprocess

from . import languages

PAIR_HINT = ("install the Debian package of the pair (`apt-cache search apertium-` lists "
             "them; apertium-eng-spa is English-Spanish)")
_MARK = re.compile(r"(?<![\w*#@])[*#@](?=\w)")
_UNKNOWN = re.compile(r"(?<![\w*#@])[*#@](\w[\w'-]*)")


class TranslationFailed(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Pair:
    __slots__ = ("mode", "source", "target", "variant")

    def __init__(self, mode: str, source: str, target: str, variant: str):
        self.mode = mode  # the mode's name: what `apertium` is given ("spa-eng_US")
        self.source = source  # 639-3 codes
        self.target = target
        self.variant = variant  # "US" of spa-eng_US, else ""

    def describe(self) -> dict:
        return {"pair": self.mode, "source": self.source, "target": self.target,
                **({"variant": self.variant} if self.variant else {})}


def read_pairs(data_dir: str) -> list[Pair]:
    """The translation directions installed under `data_dir`/modes, sorted by name. A mode
    whose language codes are not known (a tagger or analyser mode such as eng-spa-tagger)
    is not a translation direction and is left out."""
    modes = os.path.join(data_dir, "modes")
    try:
        names = sorted(f[:-5] for f in os.listdir(modes) if f.endswith(".mode"))
    except FileNotFoundError:
        return []
    out = []
    for mode in names:
        parts = mode.split("-")
        if len(parts) != 2:
            continue
        tgt, _, variant = parts[1].partition("_")
        src3, tgt3 = languages.canonical(parts[0]), languages.canonical(tgt)
        if src3 and tgt3 and src3 != tgt3:
            out.append(Pair(mode, src3, tgt3, variant))
    return out


class Apertium:
    name = "apertium"

    def __init__(self, program: str, data_dir: str):
        self.program = program
        self.data_dir = data_dir
        self.pairs = read_pairs(data_dir)
        self.version = self._version()

    def _version(self) -> str:
        try:
            p = subprocess.run([self.program, "-V"], capture_output=True, text=True, timeout=10,
                               check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return (p.stdout.strip() or p.stderr.strip() or "unknown").splitlines()[0]

    def installed(self) -> list[str]:
        return [p.mode for p in self.pairs]

    def find(self, source: str, target: str) -> Pair:
        """The installed direction from `source` to `target` (codes or names; a mode's own
        name as the target picks a variant), or TranslationFailed 400 naming what is there."""
        for p in self.pairs:
            if p.mode == f"{source}-{target}":
                return p
        src, tgt = languages.canonical(source), languages.canonical(target)
        for lang, field in ((src, f'"source"={source!r}'), (tgt, f'"target"={target!r}')):
            if lang is None:
                raise TranslationFailed(400, f"{field} is not a language code or name known "
                                             f"here; {self.available()}")
        assert src is not None and tgt is not None  # refused just above
        if src == tgt:
            raise TranslationFailed(400, f'"source" and "target" are both {languages.name(src)}'
                                         f" ({src}); allowed: two different languages")
        found = [p for p in self.pairs if p.source == src and p.target == tgt]
        if not found:
            raise TranslationFailed(400, f"no Apertium pair {src}-{tgt} ({languages.name(src)} "
                                         f"to {languages.name(tgt)}) is installed; "
                                         f"{self.available()}; {PAIR_HINT}")
        # a variant named in the target ("eng_US") if installed, else the plain direction (a
        # region such as "en_GB" with no mode of its own is ignored)
        variant = target.replace("-", "_").partition("_")[2].lower()
        return min(found, key=lambda p: (p.variant.lower() != variant, p.variant != "", p.mode))

    def available(self) -> str:
        have = ", ".join(self.installed()) or "none"
        return f"installed pairs: {have} (in {self.data_dir}/modes)"

    def translate(self, pair: Pair, text: str, timeout: float) -> dict:
        argv = [self.program, "-d", self.data_dir, pair.mode]
        try:
            p = subprocess.run(argv, input=text.encode(), capture_output=True, timeout=timeout,
                               check=False, env=_env())
        except subprocess.TimeoutExpired:
            raise TranslationFailed(504, f"apertium {pair.mode} ran past {timeout:g} s "
                                         "(TRANSLATION_TIMEOUT_S)") from None
        except OSError as e:
            raise TranslationFailed(500, f"cannot run {self.program}: {e}") from None
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            raise TranslationFailed(500, f"apertium {pair.mode} failed (exit {p.returncode}): "
                                         f"{err[0] if err else 'no message'}")
        raw = p.stdout.decode(errors="replace")
        unknown = list(dict.fromkeys(_UNKNOWN.findall(raw)))
        return {"text": _MARK.sub("", raw).strip(), "unknown_words": unknown}


def _env() -> dict:
    # the pipeline's programs need no more than PATH, a locale and a temporary directory
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env.setdefault("LANG", "C.UTF-8")
    return env
