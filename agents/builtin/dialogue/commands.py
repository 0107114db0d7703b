"""AdvancedCommandHandler (5710/6710): executes an intent through the agent that owns it.

    POST /task {"type": "command", "intent": "SetTimer", "slots": {"duration": {"value": 300}},
                "session"?: "s1", "text"?: "...", "now"?: ISO 8601}
    POST /task {"type": "command", "text": "set a timer for five minutes"}   (asks NLU first)
      → {"intent", "slots", "answered": bool, "tier": "command" | "memory" | "knowledge",
         "reply": "Timer t3 set for 5 minutes.", "data": {...}, "agents": [...],
         "timings_ms": {"nlu"?, "memory"?, ...}}
  A slot missing or out of range ("set a timer", a timer of 0 s) is a 400 naming the slot;
  with "ask_back": true (what Responder sends: a conversation) it is answered with the
  question a person would ask back ("For how long should I set the timer?",
  data.missing_slot / data.rejected_slot).

Who does what (each by task type through RequestCoordinator, peers.py):
  GetTime, GetDate     this agent's clock (COMMAND_TIMEZONE, default the host's)
  SetTimer, CancelTimer  this agent: timers.db (timers.py), fired by this process even after
                       a restart; "timer ID fired" in the journal and a spoken reminder
                       through the COMMAND_REMINDER_TASK task (streaming_tts: StreamingTTSAgent)
  Remember, Recall     MemoryClient (`memory`), namespace COMMAND_FACTS_NAMESPACE ("facts"):
                       durable and searchable (FTS5), a fact outlives the conversation
  KnowledgeQuery       KnowledgeBase (`knowledge_search`)
  SystemStatus         ObservabilityHub (`observability`, the summary)
  Translate            `translation` (TranslationService)
  Define               WordNet's files (Debian wordnet-base), read here (wordnet.py)
  SwitchProfile        IntentionValidatorAgent (`intention_validation`): a confirmation turn
  Greeting, Thanks, Goodbye  short replies in the persona's name and style
                       (DynamicIdentityAgent, `identity`; concise without it)
An intent the handler cannot answer truthfully (nothing remembered, nothing in the knowledge
base, an owner agent missing) is `"answered": false` with the reason in "reply": the
Responder then tries its next tier. It never invents an answer.
"""
from __future__ import annotations

import datetime as dt
import re
import time

from unified_agents import Agent, HTTPError
from unified_agents.store import agent_store

from . import timers, wordnet
from .peers import DEFAULT_URL, Peers, Unavailable, pass_4xx, text_field

LANG_CODES = {"english": "en", "spanish": "es", "french": "fr", "german": "de",
              "italian": "it", "portuguese": "pt", "catalan": "ca"}
# words that carry no topic ("what did I tell you about my car": car)
STOP = frozenset("a an the my your our his her their its this that these those of to in on "
                 "at for about is are was were be i me you it".split())
MAX_TIMER_S = 7 * 86400
INTENTS = ("GetTime", "GetDate", "SetTimer", "CancelTimer", "Remember", "Recall",
           "KnowledgeQuery", "SystemStatus", "Translate", "Define", "SwitchProfile",
           "Greeting", "Thanks", "Goodbye")


def say_duration(seconds: float) -> str:
    s = int(round(seconds))
    parts = []
    for unit, n in (("hour", 3600), ("minute", 60), ("second", 1)):
        if s >= n:
            k, s = divmod(s, n)
            parts.append(f"{k} {unit}{'s' if k != 1 else ''}")
    return " and ".join(parts[:2]) if parts else "0 seconds"


def slot(slots: dict, name: str):
    v = slots.get(name)
    return v.get("value") if isinstance(v, dict) else v


class AdvancedCommandHandler(Agent):
    version = "1.0.0"
    task_types = ("command",)

    def on_start(self) -> None:
        env = self.config.env
        self.max_chars = env.integer("COMMAND_MAX_CHARS", 1000, 1, 100_000)
        self.facts_ns = env.string("COMMAND_FACTS_NAMESPACE", "facts")
        self.reminder_task = env.string("COMMAND_REMINDER_TASK", "streaming_tts")
        tz = env.string("COMMAND_TIMEZONE", "")
        self.tz = None
        if tz:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            from unified_agents import ConfigError
            try:
                self.tz = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"COMMAND_TIMEZONE={tz!r} is not a time zone; allowed: a "
                                  "name of /usr/share/zoneinfo, e.g. Europe/Madrid") from None
        self.peers = Peers(env.string("DIALOGUE_COORDINATOR_URL", DEFAULT_URL),
                           env.number("DIALOGUE_TIMEOUT_S", 30.0, 0.1, 600))
        self.dictionary = wordnet.open_default(env.string("COMMAND_WORDNET_DIR",
                                                          wordnet.DEFAULT_DIR))
        self.store = agent_store(self.config, "timers.db", timers.MIGRATIONS, log=self.log,
                                 max_mb=16)
        self.timers = timers.Timers(self.store, self._fired, self.log).start()
        pending = self.timers.pending()
        if pending:
            self.log.info(f"{len(pending)} pending timers loaded",
                          timers=",".join(t["id"] for t in pending))

    def on_stop(self) -> None:
        self.timers.stop()
        self.store.close()

    # ------------------------------------------------------------ the task
    def handle_task(self, task: dict):
        timings: dict = {}
        session = task.get("session")
        if session is not None and (not isinstance(session, str) or not 1 <= len(session) <= 128):
            raise HTTPError(400, '"session" must be a string of 1-128 characters')
        intent = task.get("intent")
        slots = task.get("slots") or {}
        now = self._now(task.get("now"))
        if intent is None:
            text = text_field(task, "text", self.max_chars, setting="COMMAND_MAX_CHARS")
            try:
                nlu, _ = self.peers.task("nlu", {"text": text}, timings, "nlu")
            except Unavailable as e:
                pass_4xx(e)
                raise HTTPError(502, f"no intent: NLU failed: {e.why}") from None
            intent, slots = nlu["intent"], nlu["slots"]
        if intent not in INTENTS:
            raise HTTPError(422, f'"intent"={intent!r} is not a command; allowed: '
                                 + ", ".join(INTENTS), answered=False)
        if not isinstance(slots, dict):
            raise HTTPError(400, '"slots" must be a JSON object {name: {"value": ...}}')
        agents: list[str] = []
        try:
            out = getattr(self, "do_" + intent)(slots, session, now, timings, agents)
        except Unavailable as e:   # the owner is missing or failing: say so, invent nothing
            out = self._unanswered(f"I cannot do that now: {e.why}", e,
                                   agent=e.agent)
        bad_slot = (out.get("data") or {}).get("missing_slot") or \
            (out.get("data") or {}).get("rejected_slot")
        if bad_slot and task.get("ask_back") is not True:
            # a caller that named the intent and its slots gets an error; a conversation
            # (Responder: "ask_back") gets the question as the answer
            raise HTTPError(400, f'{intent}: slot "{bad_slot}"'
                            + (f"={slot(slots, bad_slot)!r}" if slot(slots, bad_slot) is not None
                               else " is missing") + f"; {out['reply']}")
        out.setdefault("tier", "command")
        out.setdefault("data", {})
        out.update({"intent": intent, "slots": slots, "agents": agents, "timings_ms": timings})
        return out

    def _now(self, given) -> dt.datetime:
        if given is not None:
            try:
                t = dt.datetime.fromisoformat(str(given))
            except ValueError:
                raise HTTPError(400, f'"now"={given!r} is invalid; allowed: ISO 8601, e.g. '
                                     "2026-12-03T10:00:00") from None
            return t
        return dt.datetime.now(self.tz) if self.tz else dt.datetime.now().astimezone()

    def _ask(self, ttype, body, timings, stage, agents):
        try:
            result, agent = self.peers.task(ttype, body, timings, stage)
        except Unavailable as e:
            pass_4xx(e)
            raise
        agents.append(agent)
        return result

    @staticmethod
    def _unanswered(why: str, e: Unavailable | None = None, **data) -> dict:
        if e is not None:
            data.update(error=e.why, status=e.status)
        return {"answered": False, "reply": why, "data": data}

    # ------------------------------------------------------------ clock
    def do_GetTime(self, slots, session, now, timings, agents):
        return {"answered": True, "reply": f"It is {now:%H:%M}.",
                "data": {"time": f"{now:%H:%M:%S}", "timezone": now.tzname() or "local"}}

    def do_GetDate(self, slots, session, now, timings, agents):
        d = slot(slots, "date")
        if d:
            day = dt.date.fromisoformat(d)
            reply = f"{day:%A}, {day.day} {day:%B %Y}."
        else:
            day = now.date()
            reply = f"Today is {day:%A}, {day.day} {day:%B %Y}."
        return {"answered": True, "reply": reply, "data": {"date": day.isoformat(),
                                                            "weekday": f"{day:%A}"}}

    # ------------------------------------------------------------ timers
    def do_SetTimer(self, slots, session, now, timings, agents):
        seconds = slot(slots, "duration")
        if seconds is None:
            return self._missing("duration", "For how long should I set the timer?")
        if not isinstance(seconds, (int, float)) or not 1 <= seconds <= MAX_TIMER_S:
            return {"answered": True, "reply": "A timer can be from one second to seven days.",
                    "data": {"rejected_slot": "duration", "value": seconds}}
        label = say_duration(seconds)
        t = self.timers.add(float(seconds), label, session)
        self.log.info(f"timer {t['id']} set", seconds=seconds, session=session or "-")
        return {"answered": True, "reply": f"Timer {t['id']} set for {label}.", "data": t}

    def do_CancelTimer(self, slots, session, now, timings, agents):
        gone = self.timers.cancel(session)
        for t in gone:
            self.log.info(f"timer {t['id']} cancelled", session=session or "-")
        if not gone:
            return {"answered": True, "reply": "There is no timer running.",
                    "data": {"cancelled": []}}
        names = ", ".join(t["id"] for t in gone)
        n = len(gone)
        return {"answered": True, "reply": f"Cancelled {n} timer{'s' if n > 1 else ''} ({names}).",
                "data": {"cancelled": gone}}

    def _fired(self, t: dict, late_s: float) -> None:
        late = f" ({late_s:.0f} s late: the agent was down)" if late_s >= 2 else ""
        self.log.info(f"timer {t['id']} fired{late}", label=t["label"], session=t["session"] or "-")
        if not self.reminder_task:
            return
        text = f"Your {t['label']} timer is done."
        body = {"text": text}
        voice = self._persona().get("voice")
        if voice:
            body["voice"] = voice   # the persona's voice (DynamicIdentityAgent)
        try:
            r, agent = self.peers.task(self.reminder_task, body)
            self.log.info(f"timer {t['id']} reminder spoken by {agent}",
                          playback=r.get("playback_id") or "-")
        except Unavailable as e:
            self.log.warning(f"timer {t['id']} reminder not spoken: {e}")

    @staticmethod
    def _missing(slot_name: str, question: str) -> dict:
        """The intent was understood without what it acts on ("switch to the ... profile",
        half heard): the answer is the question, not an error, as a person would ask."""
        return {"answered": True, "reply": question, "data": {"missing_slot": slot_name}}

    # ------------------------------------------------------------ memory
    def do_Remember(self, slots, session, now, timings, agents):
        fact = (slot(slots, "fact") or "").strip()
        if not fact:
            return self._missing("fact", "What should I remember?")
        key = f"{time.time_ns():x}"
        self._ask("memory", {"data": {"op": "put", "namespace": self.facts_ns, "key": key,
                                      "value": {"fact": fact, "session": session,
                                                "at": now.isoformat(timespec="seconds")},
                                      "tags": ["fact"]}}, timings, "memory", agents)
        return {"answered": True, "tier": "memory", "reply": f"OK, I will remember that {fact}.",
                "data": {"namespace": self.facts_ns, "key": key, "fact": fact}}

    def do_Recall(self, slots, session, now, timings, agents):
        topic = (slot(slots, "topic") or "").strip()
        words = [w for w in re.findall(r"[A-Za-z0-9']+", topic.lower()) if w not in STOP]
        if not words:
            return self._missing("topic", "What should I recall?")
        hits: list = []
        for mode in ("all", "any"):   # every topic word first; then the best partial match
            r = self._ask("memory", {"data": {"op": "search", "namespace": self.facts_ns,
                                              "q": " ".join(words), "mode": mode, "limit": 3}},
                          timings, "memory", agents)
            hits = r.get("hits") or []
            if hits:
                break
        if not hits:
            return dict(self._unanswered(f"I do not remember anything about {topic}."),
                        tier="memory")
        facts = [h.get("value", {}).get("fact") for h in hits if isinstance(h.get("value"), dict)]
        facts = [f for f in facts if f]
        if not facts:
            return dict(self._unanswered(f"I do not remember anything about {topic}."),
                        tier="memory")
        return {"answered": True, "tier": "memory", "reply": f"You told me that {facts[0]}.",
                "data": {"facts": facts, "mode": mode}}

    def do_KnowledgeQuery(self, slots, session, now, timings, agents):
        query = (slot(slots, "query") or "").strip()
        words = [w for w in re.findall(r"[A-Za-z0-9']+", query.lower()) if w not in STOP]
        if not words:
            return self._missing("query", "What should I look up?")
        r = self._ask("knowledge_search", {"data": {"query": " ".join(words), "limit": 3}},
                      timings, "knowledge", agents)
        hits = r.get("hits") or []
        if not hits:
            return dict(self._unanswered(f"The knowledge base has nothing about {query}."),
                        tier="knowledge")
        top = hits[0]
        body = re.sub(r"\s+", " ", re.sub(r"</?mark>|\[|\]", "", str(top.get("snippet") or "")))
        reply = f"{top.get('title')}: {body.strip()}" if body.strip() else str(top.get("title"))
        return {"answered": True, "tier": "knowledge", "reply": reply,
                "data": {"hits": [{"id": h.get("id"), "title": h.get("title")} for h in hits]}}

    # ------------------------------------------------------------ the system
    def do_SystemStatus(self, slots, session, now, timings, agents):
        s = self._ask("observability", {"data": "summary"}, timings, "status", agents)
        name = slot(slots, "agent")
        if name:
            row = next((r for r in s.get("agents", []) if r.get("name") == name), None)
            if row is None:
                return {"answered": True, "reply": f"{name} is not in profile {s.get('profile')} "
                                                   "and not running.", "data": {"agent": name}}
            extra = f", pid {row['pid']}" if row.get("pid") else ""
            return {"answered": True, "reply": f"{name} is {row.get('state')}{extra}.",
                    "data": {"agent": name, "state": row.get("state"), "pid": row.get("pid")}}
        ess = s.get("essential") or {}
        alerts = s.get("alerts") or []
        down = ess.get("down") or []
        reply = (f"Profile {s.get('profile')}: {ess.get('up')} of {ess.get('total')} essential "
                 f"agents up" + (f" ({', '.join(down)} down)" if down else "")
                 + f"; health score {s.get('health_score')}; "
                 + (f"{len(alerts)} alerts ({', '.join(a['name'] for a in alerts)})." if alerts
                    else "no alerts."))
        return {"answered": True, "reply": reply,
                "data": {"status": s.get("status"), "profile": s.get("profile"),
                         "health_score": s.get("health_score"), "essential": ess,
                         "alerts": [a["name"] for a in alerts]}}

    def do_SwitchProfile(self, slots, session, now, timings, agents):
        profile = slot(slots, "profile")
        if not profile:
            return self._missing("profile", "Which profile should I switch to?")
        r = self._ask("intention_validation", {"op": "request", "action": "switch_profile",
                                               "args": {"profile": profile}, "session": session},
                      timings, "validate", agents)
        return {"answered": True, "reply": r["reply"], "data": r}

    # ------------------------------------------------------------ language
    def do_Translate(self, slots, session, now, timings, agents):
        text, lang = slot(slots, "text"), slot(slots, "language")
        if not text or not lang:
            return self._missing("language" if text else "text",
                                 "Into which language?" if text else "What should I translate?")
        target = LANG_CODES.get(str(lang).lower())
        if target is None:
            return {"answered": True, "reply": f"I cannot translate into {lang}; I know "
                                               + ", ".join(sorted(LANG_CODES)) + ".",
                    "data": {"rejected_slot": "language", "value": lang}}
        try:
            r = self._ask("translation", {"text": text, "source": "en", "target": target},
                          timings, "translation", agents)
        except Unavailable as e:
            return self._unanswered(f"I cannot translate now: {e.why}", e)
        return {"answered": True, "reply": str(r.get("text")),
                "data": {"target": target, "engine": r.get("engine")}}

    def do_Define(self, slots, session, now, timings, agents):
        word = (slot(slots, "word") or "").strip().strip("?.!\"'")
        if not word:
            return self._missing("word", "Which word should I define?")
        if self.dictionary is None:
            return self._unanswered("I have no dictionary: install the Debian package "
                                    "wordnet-base (COMMAND_WORDNET_DIR).")
        t0 = time.perf_counter()
        senses = self.dictionary.define(word)
        timings["dictionary"] = round((time.perf_counter() - t0) * 1000, 2)
        if not senses:
            return self._unanswered(f"WordNet has no entry for {word!r}.")
        pos, gloss = senses[0]
        return {"answered": True, "reply": f"{word} ({pos}): {gloss}.",
                "data": {"word": word, "senses": [{"pos": p, "gloss": g} for p, g in senses[:5]],
                         "source": "WordNet 3.0"}}

    # ------------------------------------------------------------ small talk
    def _persona(self, timings=None) -> dict:
        """DynamicIdentityAgent's persona; without it, no name and the concise style."""
        try:
            p, _ = self.peers.task("identity", {"op": "get"}, timings, "identity")
        except Unavailable:
            return {"name": None, "style": "concise", "voice": ""}
        return p

    def _small_talk(self, kind: str, part: str, timings, agents) -> dict:
        p = self._persona(timings)   # consulted, not the one answering
        name, style = p.get("name"), p.get("style")
        words = {
            "greeting": {"friendly": f"Good {part}! I'm {name}. How can I help?",
                         "formal": f"Good {part}. This is {name}; how may I assist you?",
                         "concise": f"Good {part}."},
            "thanks": {"friendly": "You're welcome!", "formal": "You are most welcome.",
                       "concise": "You are welcome."},
            "goodbye": {"friendly": "Goodbye, talk to you soon!",
                        "formal": "Goodbye. It was a pleasure to help.", "concise": "Goodbye."},
        }[kind]
        reply = words.get(style or "concise") if name else words["concise"]
        return {"answered": True, "reply": reply or words["concise"],
                "data": {"persona": {"name": name, "style": style}}}

    def do_Greeting(self, slots, session, now, timings, agents):
        part = "morning" if now.hour < 12 else "afternoon" if now.hour < 18 else "evening"
        return self._small_talk("greeting", part, timings, agents)

    def do_Thanks(self, slots, session, now, timings, agents):
        return self._small_talk("thanks", "", timings, agents)

    def do_Goodbye(self, slots, session, now, timings, agents):
        return self._small_talk("goodbye", "", timings, agents)

    # ------------------------------------------------------------ health
    def holds_work(self) -> bool:
        """A pending timer keeps this process up: the SDK's idle exit waits for it."""
        return self.timers.n_pending > 0

    def health_checks(self) -> dict:
        return {"database": self.store.health(),
                "timers": {"status": "ok" if self.timers.thread.is_alive() else "fail"}}

    def health_info(self) -> dict:
        return {"timers_pending": len(self.timers.pending()), "timers_fired": self.timers.fired,
                "dictionary": self.dictionary.describe() if self.dictionary else None,
                "reminder_task": self.reminder_task or None,
                "coordinator": self.peers.url}
