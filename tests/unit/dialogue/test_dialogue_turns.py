"""A conversation through the real agents: Responder → NLUAgent → AdvancedCommandHandler →
MemoryClient / KnowledgeBase / IntentionValidatorAgent / TTSService, every call routed by the
real RequestCoordinator (docs/DIALOGUE.md)."""
from __future__ import annotations

import datetime as dt
import time

from ..sdk.harness import sdk_path, spawn  # noqa: F401  (fixtures)
from .conftest import kb_add


def test_a_fact_remembered_is_recalled_two_turns_later(fleet):
    r = fleet.turn("remember that the spare key is under the blue flowerpot", "s-mem")
    assert r["intent"] == "Remember" and r["tier"] == "memory", r
    assert r["agent"] == "MemoryClient" and "spare key is under the blue flowerpot" in r["reply"]
    fleet.turn("what time is it", "s-mem")
    r = fleet.turn("where did i put the spare key", "s-mem")
    assert r["intent"] == "Recall" and r["tier"] == "memory", r
    assert r["reply"] == "You told me that the spare key is under the blue flowerpot.", r
    assert r["turn_id"] is not None and "nlu" in r["timings_ms"] and "total" in r["timings_ms"]


def test_a_question_about_something_of_mine_is_answered_from_what_i_said(fleet):
    fleet.turn("remember that my car is dark green")
    r = fleet.turn("what color is my car")
    assert r["intent"] == "Recall" and r["tier"] == "memory", r
    assert r["reply"] == "You told me that my car is dark green.", r


def test_an_intent_heard_without_its_object_is_answered_with_a_question(fleet):
    # half a sentence (or half heard): the turn asks back, as a person would; never a 4xx
    for text, question, missing in [("set a timer", "For how long should I set the timer?",
                                     "duration"),
                                    ("switch profile", "Which profile should I switch to?",
                                     "profile"),
                                    ("define", "Which word should I define?", "word"),
                                    # not a language the slot type knows: no language heard
                                    ("translate hello into klingon", "Into which language?",
                                     "language")]:
        r = fleet.turn(text)
        assert r["tier"] == "command" and r["reply"] == question, r
        assert r["data"]["missing_slot"] == missing, r
    r = fleet.turn("of the")   # no intent, only small words: nothing to look up either
    assert r["intent"] == "Fallback" and r["tier"] == "none", r
    assert {"tier": "knowledge", "why": "nothing to look up"} in r["skipped"], r


def test_recall_of_something_never_told_says_so_and_invents_nothing(fleet):
    r = fleet.turn("what did i tell you about the submarine")
    assert r["intent"] == "Recall" and r["tier"] == "none", r
    assert r["reply"] == "I do not remember anything about the submarine.", r


def test_the_clock_answers_time_and_dates(fleet):
    r = fleet.turn("what time is it")
    assert r["intent"] == "GetTime" and r["tier"] == "command"
    assert r["agent"] is None or r["agent"] == "AdvancedCommandHandler"
    hh, mm = r["data"]["time"].split(":")[:2]
    now = dt.datetime.now()
    assert abs((now.hour * 60 + now.minute) - (int(hh) * 60 + int(mm))) <= 1, r
    r = fleet.turn("what day is tomorrow", now="2026-12-03T10:00:00")
    assert r["intent"] == "GetDate" and r["reply"] == "Friday, 4 December 2026.", r


def test_a_knowledge_question_is_answered_from_the_knowledge_base(fleet):
    kb_add(fleet, "Eiffel Tower", "The Eiffel Tower is a wrought-iron lattice tower in Paris, "
                                  "completed in 1889.")
    r = fleet.turn("tell me about the eiffel tower")
    assert r["intent"] == "KnowledgeQuery" and r["tier"] == "knowledge", r
    assert r["agent"] == "KnowledgeBase" and "1889" in r["reply"], r


def test_a_sentence_without_intent_tries_knowledge_then_skips_missing_tiers(fleet):
    r = fleet.turn("order a large pizza with anchovies")
    assert r["intent"] == "Fallback" and r["tier"] == "none", r
    tiers = [s["tier"] for s in r["skipped"]]
    # chitchat: no ChitchatAgent in this catalog; llm: no model declared
    assert tiers == ["command", "knowledge", "chitchat", "llm"], r["skipped"]
    assert "unknown task type 'simple_chat'" in r["skipped"][2]["why"]
    assert "models.declared" in r["skipped"][3]["why"]


def test_define_reads_wordnet(fleet):
    r = fleet.turn("define serendipity")
    assert r["intent"] == "Define" and r["tier"] == "command", r
    assert r["reply"].startswith("serendipity (noun): good luck in making unexpected"), r


def test_greeting_thanks_goodbye_are_short_replies(fleet):
    for text, intent in (("hello there", "Greeting"), ("thanks a lot", "Thanks"),
                         ("goodbye", "Goodbye")):
        r = fleet.turn(text)
        assert r["intent"] == intent and r["tier"] == "command" and r["reply"], r
        assert r["agent"] == "AdvancedCommandHandler", r   # the persona is only consulted


def test_a_timer_fires_in_the_journal_and_is_spoken(fleet):
    r = fleet.turn("set a timer for two seconds", "s-timer")
    assert r["intent"] == "SetTimer" and r["tier"] == "command", r
    tid = r["data"]["id"]
    assert r["reply"] == f"Timer {tid} set for 2 seconds."
    deadline = time.monotonic() + 20
    log = ""
    while time.monotonic() < deadline:
        log = fleet.stderr("AdvancedCommandHandler")
        if f"timer {tid} reminder" in log:
            break
        time.sleep(0.2)
    assert f"timer {tid} fired" in log, log[-2000:]
    assert f"timer {tid} reminder spoken by TTSService" in log, log[-2000:]


def test_a_timer_survives_a_restart_of_the_handler_and_fires(fleet):
    r = fleet.turn("set a timer for three seconds", "s-restart")
    tid = r["data"]["id"]
    fleet.restart("AdvancedCommandHandler")       # kill -9 while it is pending
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and f"timer {tid} fired" not in \
            fleet.stderr("AdvancedCommandHandler"):
        time.sleep(0.2)
    log = fleet.stderr("AdvancedCommandHandler")
    assert "pending timers loaded" in log and f"timer {tid} fired" in log, log[-2000:]


def test_a_cancelled_timer_never_fires(fleet):
    r = fleet.turn("set a timer for two seconds", "s-cancel")
    tid = r["data"]["id"]
    r = fleet.turn("cancel the timer", "s-cancel")
    assert r["intent"] == "CancelTimer" and tid in r["reply"], r
    time.sleep(3)
    assert f"timer {tid} fired" not in fleet.stderr("AdvancedCommandHandler")
    r = fleet.turn("cancel the timer", "s-cancel")
    assert r["reply"] == "There is no timer running."


def test_a_profile_switch_needs_a_confirmation_turn_and_is_refused_without_the_helper(fleet):
    r = fleet.turn("switch to the vision profile", "s-switch")
    assert r["intent"] == "SwitchProfile" and r["tier"] == "command", r
    assert r["reply"] == "Switch from profile dialogue to vision? Say yes to confirm, or no."
    assert r["data"]["decision"] == "confirm"
    r = fleet.turn("yes", "s-switch")
    assert r["tier"] == "confirmation" and r["data"]["decision"] == "not_executed", r
    assert r["data"]["status"] == 501 and "privileged helper" in r["reply"], r
    r = fleet.turn("yes", "s-switch")          # answered: nothing pending any more
    assert r["tier"] != "confirmation", r


def test_a_declined_switch_changes_nothing(fleet):
    fleet.turn("switch to vision", "s-no")
    r = fleet.turn("no", "s-no")
    assert r["tier"] == "confirmation" and r["data"]["decision"] == "declined", r


def test_a_yes_in_another_session_confirms_nothing(fleet):
    fleet.turn("switch to vision", "s-a")
    r = fleet.turn("yes", "s-b")
    assert r["tier"] != "confirmation", r


def test_bad_input_is_a_clear_4xx(fleet):
    status, out = fleet.task("respond", {"text": ""})
    assert status == 400 and '"text" is missing or empty' in out["error"], out
    status, out = fleet.task("respond", {"text": "x" * 5000})
    assert status == 413 and "RESPONDER_MAX_CHARS" in out["error"], out
    status, out = fleet.task("respond", {"text": "hi", "session": "bad id!"})
    assert status == 400 and '"session"' in out["error"], out
    status, out = fleet.task("command", {"intent": "MakeCoffee", "slots": {}})
    assert status == 422 and "MakeCoffee" in out["error"], out
    status, out = fleet.task("command", {"intent": "SetTimer", "slots": {"duration": {"value": 0}}})
    assert status == 400 and "duration" in out["error"], out
    for name in ("Responder", "AdvancedCommandHandler"):
        status, h, _ = fleet.procs[name].request("GET", "/health", health=True)
        assert status == 200 and h["status"] == "healthy", h


def spoken(fleet, text: str, voice: str = "rms") -> str:
    """`text` as a WAV in base64, said by flite (TTSService), as a microphone would give it."""
    status, out = fleet.task("tts", {"text": text, "voice": voice})
    assert status == 200, out
    return out["result"]["audio_wav_b64"]


def test_a_spoken_turn_is_transcribed_answered_and_spoken_back(fleet):
    status, out = fleet.task("respond", {"audio_wav_b64": spoken(fleet, "what time is it"),
                                         "reply_audio": True})
    assert status == 200, out
    r = out["result"]
    assert r["transcript"] == "what time is it" and r["intent"] == "GetTime", r
    assert r["reply"].startswith("It is ") and r["reply_audio_wav_b64"], r
    assert {"preprocess", "stt", "nlu", "command", "tts", "total"} <= set(r["timings_ms"]), \
        r["timings_ms"]
    assert "wake" not in r["timings_ms"] and 0.5 < r["speech_s"] < 2.0, r
    import base64
    assert base64.b64decode(r["reply_audio_wav_b64"])[:4] == b"RIFF"


def test_with_wake_true_the_command_after_the_wake_phrase_is_the_turn(fleet):
    status, out = fleet.task("respond", {"audio_wav_b64": spoken(
        fleet, "okay computer. what time is it", voice="slt"), "wake": True})
    assert status == 200, out
    r = out["result"]
    assert r["wake"]["detected"] and r["wake"]["phrase"] == "okay computer", r
    assert r["transcript"] == "what time is it" and r["intent"] == "GetTime", r
    assert {"preprocess", "wake", "stt"} <= set(r["timings_ms"]), r["timings_ms"]


def test_with_wake_true_speech_without_the_wake_phrase_is_not_answered(fleet):
    status, out = fleet.task("respond", {"audio_wav_b64": spoken(fleet, "what time is it"),
                                         "wake": True})
    assert status == 422 and "no wake word" in out["error"], out
    assert out["wake"]["detected"] is False, out
    status, out = fleet.task("respond", {"audio_wav_b64": spoken(fleet, "hello"), "wake": 1})
    assert status == 400 and '"wake"=1' in out["error"], out


def test_audio_without_speech_is_a_clear_422_before_stt(fleet):
    import base64
    import struct
    silence = b"\0\0" * 16000
    wav = (b"RIFF" + struct.pack("<I", 36 + len(silence)) + b"WAVEfmt " +
           struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" +
           struct.pack("<I", len(silence)) + silence)
    status, out = fleet.task("respond", {"audio_wav_b64": base64.b64encode(wav).decode()})
    assert status == 422 and "no speech in the audio" in out["error"], out
    status, out = fleet.task("respond", {"audio_wav_b64": "not base64 at all!"})
    assert status == 400, out


def test_only_a_plain_yes_or_no_answers_a_confirmation_question(sdk_path):
    import sys
    if str(sdk_path) not in sys.path:
        sys.path.insert(0, str(sdk_path))
    from unified_agents.builtin.dialogue.validator import yes_or_no

    for text in ("yes", "Yes please", "sure, do it", "go ahead", "ok"):
        assert yes_or_no(text) is True, text
    for text in ("no", "no thanks", "nope", "cancel"):
        assert yes_or_no(text) is False, text
    # a sentence that merely contains an answer word is not an answer
    for text in ("what time is it", "is it ok", "yes no", "no i want the learning profile",
                 "it", "switch to vision please"):
        assert yes_or_no(text) is None, text


def test_the_idle_exit_waits_for_a_pending_timer(fleet, spawn):
    """Scale to zero, but not with a timer to fire: the process stays past its idle timeout
    until the timer fired, then exits 0 (socket activation brings it back)."""
    env = fleet.agent_env("AdvancedCommandHandler", UNIFIED_IDLE_TIMEOUT_S=1,
                          COMMAND_REMINDER_TASK="",
                          STATE_DB_PATH=str(fleet.tmp / "idle-timers.db"))
    p = spawn("AdvancedCommandHandler", env, notify=False)
    status, out, _ = p.request("POST", "/task", {"type": "command", "intent": "SetTimer",
                                                 "slots": {"duration": {"value": 3}}})
    assert status == 200, out
    t0 = time.monotonic()
    assert p.wait_exit(15) == 0
    waited = time.monotonic() - t0
    log = p.stderr()
    assert f"timer {out['result']['data']['id']} fired" in log, log
    assert log.index("fired") < log.index("idle for"), log
    assert waited >= 3, waited


def test_tiered_responder_answers_the_same_turn_under_its_own_task_type(fleet):
    status, out = fleet.task("tiered_response", {"text": "what day is tomorrow",
                                                 "now": "2026-12-03T10:00:00"})
    assert status == 200 and out["agent"] == "TieredResponder", out
    assert out["result"]["reply"] == "Friday, 4 December 2026." and \
        out["result"]["tier"] == "command", out
