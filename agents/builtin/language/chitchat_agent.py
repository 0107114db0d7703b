"""ChitchatAgent: small talk with ELIZA (NLTK's script in Debian's python3-nltk), one reply
per turn, a conversation per session (docs/LANGUAGE.md, "ChitchatAgent").

    POST /task {"type": "simple_chat", "text": "I feel tired today", "session"?: "abc"}
      → {"reply": "Good, tell me more about these feelings.", "engine": "eliza",
         "session": "abc", "turn": 3, "new_session": false, "rule": "I feel (.*)"}
    POST /task {"type": "greeting", "session"?: "abc", "text"?: "..."}
      → ELIZA's opening line (a new conversation), or the reply to "text" when given.

"session" is the caller's id (RequestCoordinator's session, any 1-64 characters): the first
turn with a new id opens the conversation, later ones continue it (ELIZA rotates its replies
and remembers "my ..." statements: eliza.py). No "session": a one-turn conversation, kept
nowhere. Conversations are bounded like the streaming agents' sessions (agents/builtin/sessions.py):
CHITCHAT_MAX_SESSIONS at once (429 + Retry-After), CHITCHAT_IDLE_S without a turn (then the
id starts afresh, "new_session": true). Text beyond CHITCHAT_MAX_CHARS (1000) is a 413.
"""
from __future__ import annotations

import threading

from unified_agents import Agent, HTTPError

from .. import deps
from ..sessions import SessionTable
from .eliza import Conversation, Script
from .translation_agent import text_field

OPENING = "Hello. How are you feeling today?"  # nltk.chat.eliza.eliza_chat()'s first line


class ChitchatAgent(Agent):
    version = "1.0.0"
    task_types = ("simple_chat", "greeting")

    def on_start(self) -> None:
        env = self.config.env
        self.max_chars = env.integer("CHITCHAT_MAX_CHARS", 1000, 1, 1_000_000)
        module = deps.need_module(self.name, "nltk.chat.eliza", "python3-nltk",
                                  "NLTK's ELIZA")
        self.script = Script(module)
        self.nltk_version = getattr(__import__("nltk"), "__version__", "unknown")
        self.sessions = SessionTable(
            "conversation", env.integer("CHITCHAT_MAX_SESSIONS", 256, 1, 100_000),
            env.number("CHITCHAT_IDLE_S", 1800.0, 1.0, 86400.0),
            env.number("CHITCHAT_MAX_AGE_S", 86400.0, 1.0, 7 * 86400.0),
            setting="CHITCHAT_MAX_SESSIONS")
        self._open_lock = threading.Lock()  # two first turns of one id open one conversation

    def handle_task(self, task: dict):
        greeting = task.get("type") == "greeting"
        text = None
        if not greeting or task.get("text") not in (None, ""):
            text = text_field(task, self.max_chars, "CHITCHAT_MAX_CHARS")
        sid = task.get("session")
        conv, new = self._conversation(sid)
        with conv.lock:
            if text is None:
                conv.turns += 1
                out = {"reply": OPENING, "rule": "opening"}
            else:
                out = conv.reply(text)
            turn = conv.turns
        return {"reply": out["reply"], "engine": "eliza", "session": sid, "turn": turn,
                "new_session": new, "rule": out["rule"]}

    def _conversation(self, sid) -> tuple[Conversation, bool]:
        if sid is None:
            return Conversation(self.script), True
        if not isinstance(sid, str) or not 1 <= len(sid) <= 64:
            raise HTTPError(400, f'"session"={sid!r}; allowed: an id of 1-64 characters (the '
                                 "caller's session), or none for a one-turn conversation")
        with self._open_lock:
            try:
                return self.sessions.get(sid), False
            except HTTPError as e:
                if e.status != 404:
                    raise
            conv = Conversation(self.script)
            self.sessions.add(conv, sid)
            return conv, True

    def health_checks(self) -> dict:
        return {"engine": bool(self.script.rules)}

    def health_info(self) -> dict:
        return {"engine": "eliza", "engine_version": f"nltk {self.nltk_version}",
                "model": "nltk.chat.eliza", "rules": len(self.script.rules),
                "max_chars": self.max_chars,
                "sessions": {"open": len(self.sessions), "max": self.sessions.max_count,
                             "expired": self.sessions.expired}}
