"""DynamicIdentityAgent (5802/6802, task `identity`): the assistant's persona, changeable at
run time and kept across restarts (identity.db).

    POST /task {"type": "identity", "op": "get"}
      → {"name": "Ada", "style": "friendly", "voice": "slt", "version": 3, "updated"}
    POST /task {"type": "identity", "op": "set", "name"?, "style"?, "voice"?}
      → the persona after the change (each change is logged with its old and new value)
    POST /task {"type": "identity", "op": "history", "limit"?} → the last changes

Who uses it: AdvancedCommandHandler words greetings, thanks and goodbyes in the persona's
name and style; Responder speaks replies (ask --reply-audio) and the handler its timer
reminders in the persona's voice (a TTSService/StreamingTTSAgent voice: flite's rms, slt,
kal, awb, or an espeak-ng voice; TTS refuses an unknown one with a 400 naming the voices).

Styles: friendly, concise, formal. Defaults (until the first `set`): IDENTITY_NAME (Ada),
IDENTITY_STYLE (friendly), IDENTITY_VOICE (empty: the TTS agent's own default).
"""
from __future__ import annotations

import re
import time

from unified_agents import Agent, ConfigError, HTTPError
from unified_agents.store import agent_store
from unified_agents.validate import field_int

STYLES = ("friendly", "concise", "formal")
FIELDS = ("name", "style", "voice")
NAME = re.compile(r"^[\w][\w .'-]{0,39}$")
VOICE = re.compile(r"^[A-Za-z0-9_+.-]{0,40}$")
MIGRATIONS = [
    """
    CREATE TABLE persona(field TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE changes(id INTEGER PRIMARY KEY, ts REAL NOT NULL, field TEXT NOT NULL,
                         old TEXT, new TEXT NOT NULL);
    """,
]


def check(field: str, value) -> str:
    if not isinstance(value, str):
        raise HTTPError(400, f'"{field}" must be a string')
    if field == "name" and not NAME.match(value):
        raise HTTPError(400, f'"name"={value[:60]!r}; allowed: 1-40 letters, digits, spaces, '
                             ". ' -, starting with a letter or digit")
    if field == "style" and value not in STYLES:
        raise HTTPError(400, f'"style"={value[:60]!r}; allowed: ' + ", ".join(STYLES))
    if field == "voice" and not VOICE.match(value):
        raise HTTPError(400, f'"voice"={value[:60]!r}; allowed: a TTS voice name (0-40 of '
                             "A-Z a-z 0-9 _ + . -), empty for the TTS default")
    return value


class DynamicIdentityAgent(Agent):
    version = "1.0.0"
    task_types = ("identity",)

    def on_start(self) -> None:
        env = self.config.env
        self.defaults = {}
        for field, var, default in (("name", "IDENTITY_NAME", "Ada"),
                                    ("style", "IDENTITY_STYLE", "friendly"),
                                    ("voice", "IDENTITY_VOICE", "")):
            value = env.string(var, default)
            try:
                self.defaults[field] = check(field, value)
            except HTTPError as e:
                raise ConfigError(f"{var}: {e}") from None
        self.store = agent_store(self.config, "identity.db", MIGRATIONS, log=self.log, max_mb=16)

    def on_stop(self) -> None:
        self.store.close()

    def persona(self) -> dict:
        out = dict(self.defaults)
        out.update({r["field"]: r["value"] for r in self.store.query("SELECT * FROM persona")})
        row = self.store.query("SELECT COUNT(*), MAX(ts) FROM changes")[0]
        out["version"], out["updated"] = row[0], row[1]
        return out

    def handle_task(self, task: dict):
        op = task.get("op", "get")
        if op == "get":
            return self.persona()
        if op == "history":
            limit = field_int(task, "limit", default=20, lo=1, hi=1000)
            rows = self.store.query("SELECT * FROM changes ORDER BY id DESC LIMIT ?", (limit,))
            return {"changes": [dict(r) for r in rows]}
        if op != "set":
            raise HTTPError(400, f"op {op!r} is invalid; allowed: get, set, history")
        new = {f: check(f, task[f]) for f in FIELDS if f in task}
        if not new:
            raise HTTPError(400, "set needs at least one of: " + ", ".join(FIELDS))
        old = self.persona()
        now = time.time()

        def tx(c):
            for f, v in new.items():
                if old[f] == v:
                    continue
                c.execute("INSERT INTO persona(field, value) VALUES (?, ?) ON CONFLICT(field) "
                          "DO UPDATE SET value = excluded.value", (f, v))
                c.execute("INSERT INTO changes(ts, field, old, new) VALUES (?, ?, ?, ?)",
                          (now, f, old[f], v))
        self.store.write(tx)
        out = self.persona()
        self.log.info("persona changed", **{f: v for f, v in new.items()})
        return out

    def health_checks(self) -> dict:
        return {"database": self.store.health()}

    def health_info(self) -> dict:
        p = self.persona()
        return {"persona": {f: p[f] for f in FIELDS}, "persona_version": p["version"]}
