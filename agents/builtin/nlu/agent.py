"""NLUAgent: intent and slots of a sentence, from operator-editable intent files (docs/NLU.md).

    POST /task {"type": "nlu" | "command_parsing", "text": "set a timer for five minutes",
                "now"?: "2026-12-03T10:00:00"}
      → {"intent": "SetTimer", "slots": {"duration": {"value": 300, "text": "five minutes"}},
         "confidence": 0.93, "alternatives": [{"intent", "confidence"}, ...],
         "model_version": "unified-nlu-1+…"}

Below the fallback score the intent is "Fallback", its confidence the best intent's score and
that intent first in "alternatives". "now" (ISO 8601, optional) is the reference for relative
dates ("tomorrow"); the agent's clock by default.

Settings (environment, the catalog entry's comment): NLU_INTENTS_DIR (/etc/unified/intents.d),
NLU_MAX_CHARS (1000: longer text is a 413), NLU_ALTERNATIVES (3). Agent and profile names come
from the catalog (UNIFIED_CATALOG). The model is trained in on_start(), before READY=1: a
broken intent file fails the start with exit 2 and the file:line message (the unit template
does not restart exit 2), never a 500 on the first task.
"""
from __future__ import annotations

import datetime as dt
import os
import time

from unified_agents import Agent, HTTPError
from unified_agents.config import ConfigError

from ..fields import text_field
from . import IntentsInvalid, TrainingData, catalog_names, load_dir, train


class NLUAgent(Agent):
    version = "1.0.0"
    task_types = ("nlu", "command_parsing")

    def on_start(self) -> None:
        env = self.config.env
        self.intents_dir = env.string("NLU_INTENTS_DIR", "/etc/unified/intents.d")
        self.max_chars = env.integer("NLU_MAX_CHARS", 1000, 1, 1_000_000)
        self.n_alternatives = env.integer("NLU_ALTERNATIVES", 3, 0, 20)
        t0 = time.perf_counter()
        try:
            intents = load_dir(self.intents_dir)
        except IntentsInvalid as e:
            # one line: what the journal shows as the reason of the failed start
            raise ConfigError(f"NLU_INTENTS_DIR={self.intents_dir}: invalid intent files: "
                              + "; ".join(str(p) for p in e.problems)) from None
        self.catalog_state = "ok"
        agents: list[str] = []
        profiles: list[str] = []
        if os.path.exists(self.config.catalog):
            try:
                agents, profiles = catalog_names(self.config.catalog)
            except Exception as e:  # the catalog's own errors name file, line and field
                raise ConfigError(f"UNIFIED_CATALOG={self.config.catalog}: cannot read agent "
                                  f"and profile names: {e}") from None
        else:
            # no catalog (an agent run by hand): agent/profile slots match nothing; /health
            # says so
            self.catalog_state = f"missing: {self.config.catalog}"
            self.log.warning("no catalog: agent and profile slots will match nothing",
                             catalog=self.config.catalog)
        self.model = train(TrainingData(intents, agents, profiles))
        self.train_s = time.perf_counter() - t0
        self.log.info("intent model trained", model=self.model.version,
                      intents=len(intents.intents), files=len(intents.files),
                      train_s=round(self.train_s, 3))

    def handle_task(self, task: dict):
        text = text_field(task, "text", self.max_chars, "NLU_MAX_CHARS", "a sentence (a string)")
        now = None
        if task.get("now") is not None:
            try:
                now = dt.datetime.fromisoformat(str(task["now"]))
            except ValueError:
                raise HTTPError(400, f'"now"={task["now"]!r} is invalid; allowed: an ISO 8601 '
                                     "date and time, e.g. 2026-12-03T10:00:00") from None
        model = self.model  # one reference: a retrained model may replace it meanwhile
        out = model.parse(text, now, self.n_alternatives)
        out["model_version"] = model.version
        return out

    def health_checks(self) -> dict:
        return {"model": self.model is not None}

    def health_info(self) -> dict:
        d = self.model.describe()
        # "implementation" is the SDK's ("builtin", not "reference")
        return {"engine": d["engine"],
                "engine_version": d["engine_version"], "model_version": d["model_version"],
                "trained_at": d["trained_at"], "train_s": round(self.train_s, 3),
                "intents": d["intents"], "intent_names": sorted(self.model.intents.intents),
                "sentences": d["sentences"], "intents_dir": self.intents_dir,
                "files": d["files"], "catalog": self.catalog_state}
