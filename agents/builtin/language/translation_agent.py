"""TranslationService: text from one language to another with Apertium (docs/LANGUAGE.md).

    POST /task {"type": "translation", "text": "Where is the station?", "source": "en",
                "target": "es"}
      → {"text": "Dónde es la estación?", "engine": "apertium", "pair": "eng-spa",
         "source": "eng", "target": "spa", "unknown_words": [], "processing_s": 0.27}
    POST /task {"type": "translation_pairs"}  or  GET /pairs
      → {"engine": "apertium", "pairs": [{"pair": "eng-spa", "source": "eng",
                                         "target": "spa"}, ...]}

"source"/"target" are language codes (ISO 639-1 "en" or 639-3 "eng") or English names
("spanish"), or a mode's own name as the target ("eng_US"). A pair that is not installed is a
400 naming the installed ones and the package to install; empty text a 400; text longer than
TRANSLATION_MAX_CHARS a 413.

Settings (environment): APERTIUM_DATA_DIR (/usr/share/apertium: its modes/ lists the pairs),
TRANSLATION_MAX_CHARS (5000), TRANSLATION_TIMEOUT_S (30). The `apertium` program missing is
a failed start, exit 2, naming the Debian package; no pair installed is one too (naming
apertium-eng-spa): an agent that can translate nothing is not healthy.
"""
from __future__ import annotations

import time

from unified_agents import Agent, ConfigError, HTTPError, route

from .. import deps, fields
from .apertium import PAIR_HINT, Apertium, TranslationFailed


def text_field(task: dict, max_chars: int, setting: str, field: str = "text") -> str:
    return fields.text_field(task, field, max_chars, setting)


def lang_field(task: dict, field: str) -> str:
    v = task.get(field)
    if not isinstance(v, str) or not v.strip() or len(v) > 40:
        raise HTTPError(400, f'"{field}"={v!r}; allowed: a language code ("en", "eng") or '
                             'name ("english")')
    return v.strip()


class ApertiumAgent(Agent):
    """What the three Apertium agents share: the engine, its settings and one translation."""

    def load_apertium(self) -> None:
        env = self.config.env
        self.max_chars = env.integer("TRANSLATION_MAX_CHARS", 5000, 1, 1_000_000)
        self.timeout_s = env.number("TRANSLATION_TIMEOUT_S", 30.0, 1.0, 600.0)
        data_dir = env.string("APERTIUM_DATA_DIR", "/usr/share/apertium")
        program = deps.need_binary(self.name, "apertium", "apertium")
        self.engine = Apertium(program, data_dir)
        if not self.engine.pairs:
            raise ConfigError(f"{self.name}: no Apertium translation pair is installed in "
                              f"APERTIUM_DATA_DIR={data_dir} (no {data_dir}/modes/*.mode); "
                              f"{PAIR_HINT}")
        self.log.info("apertium ready", version=self.engine.version,
                      pairs=",".join(self.engine.installed()))

    def translate(self, text: str, source: str, target: str) -> dict:
        t0 = time.perf_counter()
        try:
            pair = self.engine.find(source, target)
            out = self.engine.translate(pair, text, self.timeout_s)
        except TranslationFailed as e:
            raise HTTPError(e.status, e.message) from None
        return {"text": out["text"], "engine": "apertium", "pair": pair.mode,
                "source": pair.source, "target": pair.target,
                "unknown_words": out["unknown_words"],
                "processing_s": round(time.perf_counter() - t0, 4)}

    def pairs_answer(self) -> dict:
        return {"engine": "apertium", "data_dir": self.engine.data_dir,
                "pairs": [p.describe() for p in self.engine.pairs]}

    def health_checks(self) -> dict:
        return {"engine": bool(self.engine.pairs)}

    def health_info(self) -> dict:
        return {"engine": "apertium", "engine_version": self.engine.version,
                "model": self.engine.data_dir, "pairs": self.engine.installed(),
                "max_chars": self.max_chars}


class TranslationService(ApertiumAgent):
    version = "1.0.0"
    task_types = ("translation", "translation_pairs")

    def on_start(self) -> None:
        self.load_apertium()

    def handle_task(self, task: dict):
        if task.get("type") == "translation_pairs":
            return self.pairs_answer()
        text = text_field(task, self.max_chars, "TRANSLATION_MAX_CHARS")
        return self.translate(text, lang_field(task, "source"), lang_field(task, "target"))

    @route("GET", "/pairs")
    def pairs(self, request):
        return self.pairs_answer()
