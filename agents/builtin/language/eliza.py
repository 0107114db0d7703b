"""ELIZA conversations over NLTK's script (nltk.chat.eliza, Debian python3-nltk), one state per
conversation.

NLTK's Chat picks a reply at random among a rule's reassembly templates and remembers
nothing. Weizenbaum's ELIZA (CACM 9(1), 1966) did two things per conversation that make it
feel like one, and this module restores them over NLTK's rules and reflections:
  - each rule's templates are used in rotation (a repeated topic gets a different reply);
  - "my ..." statements go into a memory; when no keyword matches (NLTK's catch-all rule
    "(.*)") a remembered one comes back ("Earlier you said your dog is ill.").
So a conversation is deterministic given its turns, and two conversations do not share state.
"""
from __future__ import annotations

import re
import threading

MEMORY_MAX = 8  # Weizenbaum's memory held a few entries; older ones are dropped
_MY = re.compile(r"\bmy\s+(.+)", re.IGNORECASE)
MEMORY_REPLIES = ("Earlier you said your %s.", "Does that have anything to do with the fact "
                  "that your %s?", "Let's discuss further why your %s.")


class Script:
    """NLTK's ELIZA rules, compiled once and shared by every conversation (read-only)."""

    def __init__(self, eliza_module):
        self.chat = eliza_module.eliza_chatbot  # nltk.chat.util.Chat(pairs, reflections)
        # Chat's compiled rules and substitution are private attributes; checked here so that
        # an NLTK that renamed them fails the agent's start, not a conversation
        self.rules = list(self.chat._pairs)
        self.reflect = self.chat._substitute
        self.fill = self.chat._wildcards
        self.catch_all = len(self.rules) - 1
        if self.rules[self.catch_all][0].pattern != "(.*)":
            raise RuntimeError("nltk.chat.eliza's last rule is not the catch-all '(.*)'")


class Conversation:
    def __init__(self, script: Script):
        self.script = script
        self.next = [0] * len(script.rules)  # per rule: the template to use next
        self.memory: list[str] = []
        self.turns = 0
        self.lock = threading.Lock()  # one turn at a time (the rotation is state)

    def reply(self, text: str) -> dict:
        said = text.strip().rstrip("!.").strip()
        self.turns += 1
        for i, (pattern, templates) in enumerate(self.script.rules):
            m = pattern.match(said)
            if not m:
                continue
            if i == self.script.catch_all and self.memory:
                remembered = self.memory.pop(0)
                k = self.next[i] % len(MEMORY_REPLIES)
                self.next[i] += 1
                return {"reply": MEMORY_REPLIES[k] % remembered, "rule": "memory"}
            self._remember(said)
            k = self.next[i] % len(templates)
            self.next[i] += 1
            return {"reply": _tidy(self.script.fill(templates[k], m)), "rule": pattern.pattern}
        raise AssertionError("the catch-all rule matches everything")

    def _remember(self, said: str) -> None:
        m = _MY.search(said)
        if m:
            self.memory.append(self.script.reflect(m.group(1)).strip())
            del self.memory[:-MEMORY_MAX]


def _tidy(reply: str) -> str:
    # what NLTK's respond() does to a template's end
    if reply[-2:] == "?.":
        reply = reply[:-2] + "."
    if reply[-2:] == "??":
        reply = reply[:-2] + "?"
    return reply
