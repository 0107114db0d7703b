"""Responder (5637/6637): one conversation turn, one answer, from the cheapest tier that can.

    POST /task {"type": "respond", "text": "remind me in five minutes", "session"?: "s1",
                "now"?: ISO 8601}
    POST /task {"type": "respond", "audio_wav_b64": "<a WAV>", "wake"?: false,
                "reply_audio"?: true, ...}
      (spoken: preprocessed, the wake word checked when "wake" is true, then STTService's
       transcript is the text: "transcript", "speech_s" and "wake" in the answer, stages in
       hearing.py; with "reply_audio" the reply comes back as a WAV too,
       "reply_audio_wav_b64", TTSService)
      → {"text", "session", "turn_id", "intent", "confidence", "slots",
         "tier": "confirmation" | "command" | "memory" | "knowledge" | "chitchat" | "llm" | "none",
         "reply", "agent", "data", "skipped": [{"tier", "why"}],
         "timings_ms": {"nlu", "command", ..., "total"}}

Tiers, in order, each through RequestCoordinator by task type (peers.py):
  confirmation  a yes/no while IntentionValidatorAgent holds a question for this session
  command       NLUAgent (`nlu`) gives the intent; AdvancedCommandHandler (`command`)
                executes it (its answer names the tier: command, memory or knowledge)
  knowledge     a sentence with no intent (Fallback): the knowledge base searched with it
  chitchat      `simple_chat` (ChitchatAgent)
  llm           `llm_generate` (ModelManagerSuite), only when the catalog declares a model
                (models.declared) and RESPONDER_LLM is true; its failure skips the tier
  none          nobody could: the reply says so (the first tier's own "I do not remember
                anything about X" when there is one). Never a made-up answer.
A tier whose agent is missing, not in the profile, failing or only the reference agent is
skipped, with the reason in "skipped". With a session, both sides of the turn are stored in
SessionMemoryAgent (`session_memory`); "turn_id" is the stored reply's id (what a rating or
correction refers to). "No, I meant X" in a session stores a correction of the previous
answer with FeedbackHandler (`feedback`, "correction" in the answer) and answers X.

Settings: RESPONDER_MAX_CHARS (1000: longer is a 413), RESPONDER_LLM (true),
RESPONDER_LLM_TIMEOUT_S (20), DIALOGUE_COORDINATOR_URL (http://127.0.0.1:7201),
DIALOGUE_TIMEOUT_S (30).
"""
from __future__ import annotations

import re
import time

from unified_agents import Agent, HTTPError

from . import hearing
from .peers import DEFAULT_URL, Peers, Unavailable, pass_4xx, text_field
from .validator import yes_or_no

CORRECTION = re.compile(r"^\s*(?:no|nope|not that)\W+(?:i\s+)?(?:meant|mean|said)\W+(.+\w.*)$",
                        re.IGNORECASE | re.DOTALL)
SESSION_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-"
REPLY_FIELDS = ("reply", "response", "text", "answer")


def _reply_of(result: dict) -> str | None:
    for k in REPLY_FIELDS:
        v = result.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


class Responder(Agent):
    """Responder (task `respond`) and TieredResponder (pc2_core, task `tiered_response`, the
    learning and tutoring profiles' name for the same tiers) run this class: the task types
    are the catalog's."""

    version = "1.0.0"

    def on_start(self) -> None:
        env = self.config.env
        self.max_chars = env.integer("RESPONDER_MAX_CHARS", 1000, 1, 100_000)
        self.peers = Peers(env.string("DIALOGUE_COORDINATOR_URL", DEFAULT_URL),
                           env.number("DIALOGUE_TIMEOUT_S", 30.0, 0.1, 600))
        self.llm_timeout = env.number("RESPONDER_LLM_TIMEOUT_S", 20.0, 0.1, 600)
        self.llm_models: list[str] = []
        if env.boolean("RESPONDER_LLM", True):
            try:
                from unified_core.catalog import load_catalog

                self.llm_models = sorted(m.name for m in load_catalog(self.config.catalog,
                                                                    env={}).models.declared)
            except Exception as e:  # no catalog (run by hand): no LLM tier, said in /health
                self.log.warning(f"no LLM tier: cannot read the catalog's models: {e}")
        # a spoken turn carries its WAV in base64: up to RESPONDER_MAX_AUDIO_S of 16-bit
        # 48 kHz stereo (STTService has the same bound on what it recognises)
        self.max_body_bytes = int(env.number("RESPONDER_MAX_AUDIO_S", 30.0, 1, 600)
                                  * 48000 * 4 * 4 / 3) + 65536
        self.turns = 0
        self.by_tier: dict[str, int] = {}

    # ------------------------------------------------------------ a turn
    def handle_task(self, task: dict):
        t_start = time.perf_counter()
        timings: dict = {}
        skipped: list[dict] = []
        heard = None
        if task.get("audio_wav_b64") is not None:
            # a spoken turn: the words first (hearing.py), then the same turn as typed text
            if not isinstance(task["audio_wav_b64"], str):
                raise HTTPError(400, '"audio_wav_b64" must be a string: a WAV file in base64')
            wake = task.get("wake", False)
            if not isinstance(wake, bool):
                raise HTTPError(400, f'"wake"={wake!r}; allowed: true or false')
            heard = hearing.hear(self.peers, task["audio_wav_b64"], wake, timings, skipped)
            task = dict(task, text=heard["transcript"])
        text = text_field(task, "text", self.max_chars, setting="RESPONDER_MAX_CHARS")
        session = task.get("session")
        if session is not None and (not isinstance(session, str) or not 1 <= len(session) <= 128
                                    or any(ch not in SESSION_CHARS for ch in session)):
            raise HTTPError(400, f'"session"={session!r}; allowed: 1-128 characters of A-Z a-z '
                                 "0-9 _ . : @ -")
        now = task.get("now")
        out: dict = {"text": text, "session": session, "intent": None, "confidence": None,
               "slots": {}, "data": {}, "agent": None}
        m = CORRECTION.match(text) if session else None
        if m:
            # "no, I meant X": the previous answer's correction goes to FeedbackHandler with
            # that turn's id, and X is this turn
            out["correction"] = self._correct(str(session), m.group(1).strip(), timings,
                                              skipped)
            text = m.group(1).strip()
        answer = self._confirmation(text, session, timings, skipped) if session else None
        if answer is None:
            answer = self._tiers(text, session, now, out, timings, skipped)
        out.update(answer)
        out["skipped"] = skipped
        if session:
            out["turn_id"] = self._remember_turn(session, text, out, timings)
        else:
            out["turn_id"] = None
        if heard is not None:
            out["transcript"] = heard["transcript"]
            out["speech_s"] = heard["speech_s"]
            if heard["wake"] is not None:
                out["wake"] = heard["wake"]
        if task.get("reply_audio"):
            out["reply_audio_wav_b64"] = self._speak(out, timings)
        timings["total"] = round((time.perf_counter() - t_start) * 1000, 2)
        out["timings_ms"] = timings
        self.turns += 1
        self.by_tier[out["tier"]] = self.by_tier.get(out["tier"], 0) + 1
        self.log.info(f"turn: {out['intent'] or '-'} -> tier {out['tier']}",
                      session=session or "-", total_ms=timings["total"])
        return out

    def _confirmation(self, text, session, timings, skipped) -> dict | None:
        if yes_or_no(text) is None:
            return None
        try:
            r, agent = self.peers.task("intention_validation",
                                       {"op": "answer", "session": session, "text": text},
                                       timings, "validate")
        except Unavailable as e:
            skipped.append({"tier": "confirmation", "why": e.why})
            return None
        if r.get("decision") == "none":
            return None
        return {"tier": "confirmation", "reply": r.get("reply"), "agent": agent, "data": r}

    def _tiers(self, text, session, now, out, timings, skipped) -> dict:
        nlu_body = {"text": text}
        if now is not None:
            nlu_body["now"] = now
        try:
            nlu, _ = self.peers.task("nlu", nlu_body, timings, "nlu")
        except Unavailable as e:
            pass_4xx(e)
            raise HTTPError(502, f"no answer: NLU failed: {e.why}") from None
        intent = nlu["intent"]
        out.update(intent=intent, confidence=nlu.get("confidence"), slots=nlu.get("slots", {}))
        first_no: str | None = None   # the first tier's own "I do not know X", kept for the end
        if intent != "Fallback":
            r = self._command({"intent": intent, "slots": nlu.get("slots", {}), "ask_back": True,
                               "session": session, "now": now}, timings, skipped, "command")
            if r is not None:
                if r.get("answered"):
                    return self._answer(r, r.get("tier", "command"))
                first_no = r.get("reply")
                skipped.append({"tier": r.get("tier", "command"), "why": r.get("reply")})
        else:
            best = (nlu.get("alternatives") or [{}])[0]
            skipped.append({"tier": "command", "why": "no command intent (Fallback; closest "
                            f"{best.get('intent')} at {best.get('confidence')})"})
            r = self._command({"intent": "KnowledgeQuery", "slots": {"query": {"value": text}},
                               "ask_back": True, "session": session, "now": now},
                              timings, skipped, "knowledge")
            if r is not None and (r.get("data") or {}).get("missing_slot"):
                # only small words ("is it"): nothing to look up, and no question to ask back
                skipped.append({"tier": "knowledge", "why": "nothing to look up"})
            elif r is not None:
                if r.get("answered"):
                    return self._answer(r, "knowledge")
                skipped.append({"tier": "knowledge", "why": r.get("reply")})
        # small talk
        try:
            r, agent = self.peers.task("simple_chat", {"text": text, "session": session},
                                       timings, "chitchat")
            reply = _reply_of(r)
            if reply:
                return {"tier": "chitchat", "reply": reply, "agent": agent, "data": r}
            skipped.append({"tier": "chitchat", "why": f"{agent} gave no reply"})
        except Unavailable as e:
            skipped.append({"tier": "chitchat", "why": e.why})
        # a generative model, only where one is configured
        if not self.llm_models:
            skipped.append({"tier": "llm", "why": "no model declared in the catalog "
                                                  "(models.declared) or RESPONDER_LLM=false"})
        else:
            try:
                r, agent = self.peers.task("llm_generate", {"data": {
                    "prompt": text, "max_tokens": 200, "task_type": "simple_chat"}},
                                           timings, "llm", timeout=self.llm_timeout)
                reply = _reply_of(r) or _reply_of((r.get("choices") or [{}])[0]
                                                  if isinstance(r.get("choices"), list) else {})
                if reply:
                    return {"tier": "llm", "reply": reply, "agent": agent, "data": r}
                skipped.append({"tier": "llm", "why": f"{agent} gave no text"})
            except Unavailable as e:
                skipped.append({"tier": "llm", "why": e.why})
        return {"tier": "none", "agent": None,
                "reply": first_no or "Sorry, I cannot answer that: no tier could (see skipped)."}

    def _command(self, body, timings, skipped, tier) -> dict | None:
        try:
            r, agent = self.peers.task("command", body, timings, tier)
        except Unavailable as e:
            pass_4xx(e)
            skipped.append({"tier": tier, "why": e.why})
            return None
        r["_agent"] = agent
        return r

    @staticmethod
    def _answer(r: dict, tier: str) -> dict:
        agents = r.get("agents") or []
        return {"tier": tier, "reply": r.get("reply"),
                "agent": agents[-1] if agents else r.get("_agent"),
                "data": dict(r.get("data") or {}, handled_by=r.get("_agent"),
                             agent_timings_ms=r.get("timings_ms"))}

    def _speak(self, out: dict, timings: dict) -> str | None:
        """The reply as a WAV (TTSService), base64; None (and a "skipped" entry) if no voice."""
        body = {"text": str(out.get("reply") or "")[:1000]}
        try:   # the persona's voice, when DynamicIdentityAgent runs and sets one
            p, _ = self.peers.task("identity", {"op": "get"}, timings, "identity")
            if p.get("voice"):
                body["voice"] = p["voice"]
        except Unavailable:
            pass
        try:
            r, _ = self.peers.task("tts", body, timings, "tts")
            return r.get("audio_wav_b64")
        except Unavailable as e:
            out["skipped"].append({"tier": "tts", "why": f"no spoken reply: {e.why}"})
            return None

    def _correct(self, session: str, meant: str, timings: dict, skipped: list) -> dict | None:
        try:
            s, _ = self.peers.task("session_memory", {"data": {"op": "get", "session": session,
                                                               "limit": 2}}, timings, "session")
            last = next((t for t in reversed(s.get("history") or [])
                         if t.get("role") == "assistant"), None)
            if last is None:
                skipped.append({"tier": "feedback", "why": "no earlier answer to correct"})
                return None
            r, _ = self.peers.task("feedback", {"op": "correct", "session": session,
                                                "turn_id": last["id"], "text": meant},
                                   timings, "feedback")
            return {"feedback_id": r.get("id"), "turn_id": last["id"]}
        except Unavailable as e:
            skipped.append({"tier": "feedback", "why": f"correction not stored: {e.why}"})
            return None

    # ------------------------------------------------------------ the session
    def _remember_turn(self, session, text, out, timings) -> int | None:
        t0 = time.perf_counter()
        meta = {"intent": out["intent"], "tier": out["tier"]}
        try:
            self._append(session, "user", text[:32768], None)
            return self._append(session, "assistant", str(out.get("reply") or ""), meta)
        except Unavailable as e:
            out["skipped"].append({"tier": "session", "why": f"turn not stored: {e.why}"})
            return None
        finally:
            timings["session"] = round((time.perf_counter() - t0) * 1000, 2)

    def _append(self, session, role, content, meta) -> int | None:
        data = {"op": "append", "session": session, "role": role, "content": content}
        if meta:
            data["meta"] = meta
        try:
            r, _ = self.peers.task("session_memory", {"data": data})
        except Unavailable as e:
            if e.status != 404:
                raise
            self.peers.task("session_memory", {"data": {"op": "create", "session": session}})
            r, _ = self.peers.task("session_memory", {"data": data})
        return r.get("id")

    def health_info(self) -> dict:
        return {"turns": self.turns, "by_tier": self.by_tier, "coordinator": self.peers.url,
                "llm_models": self.llm_models or None}
