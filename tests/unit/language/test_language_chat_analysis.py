"""ChitchatAgent (NLTK's ELIZA) and StreamingLanguageAnalyzer (langdetect, VADER) as real
processes: ELIZA's reply rotation and memory kept per session and not shared, the opening
greeting, language identification that is the same on every call, sentiment of English
segments with the transcript's running mean, bad input a clear 4xx, a missing engine a failed
start naming the package."""
from __future__ import annotations

import os

import pytest

from .conftest import ROOT, needs_langdetect, needs_nltk, ok, refused, start_fails, task


# ------------------------------------------------------------------ ChitchatAgent
@needs_nltk
def test_each_turn_gets_one_eliza_reply(chitchat):
    r = ok(chitchat, {"type": "simple_chat", "text": "I need a holiday"})
    assert r == {"reply": "Why do you need a holiday?", "engine": "eliza", "session": None,
                 "turn": 1, "new_session": True, "rule": "I need (.*)"}, r


@needs_nltk
def test_a_session_rotates_replies_and_remembers_what_was_said(chitchat):
    def say(text):
        return ok(chitchat, {"type": "simple_chat", "text": text, "session": "s-memory"})

    first = say("My sister is angry with me.")
    assert first["new_session"] is True and first["turn"] == 1
    assert first["reply"] == "I see, your sister is angry with you.", first
    a, b = say("I need a holiday"), say("I need a holiday")
    assert a["reply"] != b["reply"] and b["turn"] == 3 and not b["new_session"], (a, b)
    # no keyword: Weizenbaum's memory brings back the "my ..." of two turns ago
    r = say("blue skies")
    assert r["reply"] == "Earlier you said your sister is angry with you.", r
    assert r["rule"] == "memory"


@needs_nltk
def test_sessions_do_not_share_state(chitchat):
    one = ok(chitchat, {"type": "simple_chat", "text": "I am tired", "session": "s-a"})
    two = ok(chitchat, {"type": "simple_chat", "text": "I am tired", "session": "s-b"})
    assert one["reply"] == two["reply"] and one["turn"] == two["turn"] == 1


@needs_nltk
def test_a_greeting_opens_the_conversation(chitchat):
    r = ok(chitchat, {"type": "greeting", "session": "s-greet"})
    assert r["reply"] == "Hello. How are you feeling today?" and r["engine"] == "eliza", r
    r = ok(chitchat, {"type": "greeting", "text": "Hello there", "session": "s-greet"})
    assert r["turn"] == 2 and r["rule"] == "Hello(.*)", r


@needs_nltk
@pytest.mark.parametrize("body,status,words", [
    ({"type": "simple_chat"}, 400, '"text" is missing or empty'),
    ({"type": "simple_chat", "text": ""}, 400, '"text" is missing or empty'),
    ({"type": "simple_chat", "text": "x" * 301}, 413, "at most 300 (CHITCHAT_MAX_CHARS)"),
    ({"type": "simple_chat", "text": "hi", "session": ""}, 400, "an id of 1-64 characters"),
    ({"type": "simple_chat", "text": "hi", "session": 7}, 400, "an id of 1-64 characters"),
])
def test_bad_chat_input_is_a_clear_4xx(chitchat, body, status, words):
    refused(chitchat, body, status, words)


@needs_nltk
def test_chitchat_health_names_the_engine(chitchat):
    s, h, _ = chitchat.request("GET", "/health", health=True)
    assert s == 200 and h["implementation"] == "builtin" and h["engine"] == "eliza", h
    assert h["engine_version"].startswith("nltk 3.") and h["rules"] > 30


def test_a_missing_nltk_is_exit_2_naming_the_package(spawn, tmp_path):
    hide = tmp_path / "hide" / "nltk"  # an import of nltk fails here
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    rc, lines = start_fails(spawn, "chitchat_agent", PYTHONPATH=f"{hide.parent}{os.pathsep}"
                            f"{spawn.sdk_path}{os.pathsep}{ROOT}")
    assert rc == 2 and len(lines) == 1, lines
    assert "install the Debian package python3-nltk" in lines[0], lines


# ------------------------------------------------------------------ analyzer
SENTENCES = [("Bonjour, je voudrais réserver une table pour deux personnes ce soir.", "fr"),
             ("Guten Morgen, wie komme ich am besten zum Bahnhof?", "de"),
             ("¿Dónde está la biblioteca más cercana, por favor?", "es"),
             ("The meeting has been moved to Thursday afternoon.", "en")]


@needs_langdetect
@pytest.mark.parametrize("text,lang", SENTENCES, ids=[s[1] for s in SENTENCES])
def test_the_language_of_a_sentence_is_identified_the_same_every_time(analyzer, text, lang):
    answers = [ok(analyzer, {"type": "language_analysis", "text": text, "final": True})
               for _ in range(3)]
    assert answers[0]["segment"]["language"] == lang, answers[0]
    assert all(a["segment"] == answers[0]["segment"] for a in answers)
    assert answers[0]["segment"]["probability"] > 0.9


@needs_langdetect
def test_a_stream_gets_sentiment_per_english_segment_and_a_running_mean(analyzer):
    r = ok(analyzer, {"type": "language_analysis", "text": "I love this wonderful day."})
    sid, seg = r["session"], r["segment"]
    assert seg["language"] == "en" and seg["sentiment"]["label"] == "positive", seg
    r = ok(analyzer, {"type": "language_analysis", "session": sid,
                      "text": "But the train was late and I am furious."})
    assert r["segment"]["sentiment"]["label"] == "negative", r
    mean = r["overall"]["sentiment"]
    assert mean["segments_scored"] == 2 and r["overall"]["segments"] == 2, r
    r = ok(analyzer, {"type": "language_analysis", "session": sid, "final": True,
                      "text": "Pero el tren llegó tarde otra vez."})
    assert r["segment"]["language"] == "es" and r["segment"]["sentiment"] is None, r
    assert "the VADER lexicon is English" in r["segment"]["sentiment_note"]
    assert r["overall"]["sentiment"]["segments_scored"] == 2 and r["final"] is True
    got, out = task(analyzer, {"type": "language_analysis", "session": sid, "text": "x"})
    assert got == 404, out


@needs_langdetect
def test_text_with_nothing_to_identify_says_so(analyzer):
    r = ok(analyzer, {"type": "language_analysis", "text": "12345 !!!", "final": True})
    assert r["segment"]["language"] is None and r["segment"]["reason"], r


@needs_langdetect
@pytest.mark.parametrize("body,status,words", [
    ({"type": "language_analysis"}, 400, '"text" is missing or empty'),
    ({"type": "language_analysis", "text": "x" * 5001}, 413, "(LANGUAGE_MAX_CHARS)"),
    ({"type": "language_analysis", "text": "hi", "final": "yes"}, 400, "true or false"),
    ({"type": "language_analysis", "text": "hi", "session": "nope"}, 404, "is unknown"),
])
def test_bad_analysis_input_is_a_clear_4xx(analyzer, body, status, words):
    refused(analyzer, body, status, words)


@needs_langdetect
def test_analyzer_health_names_engines_and_lexicon(analyzer):
    s, h, _ = analyzer.request("GET", "/health", health=True)
    assert s == 200 and h["engine"] == "langdetect" and len(h["languages"]) == 55, h
    assert h["sentiment"]["engine"] == "vader" and h["sentiment"]["words"] > 7000, h


@needs_langdetect
def test_without_a_lexicon_sentiment_is_null_and_says_why(spawn):
    from .conftest import agent_env

    a = spawn("StreamingLanguageAnalyzer", agent_env(spawn, "streaming_language_analyzer"))
    r = ok(a, {"type": "language_analysis", "text": "I love it.", "final": True})
    assert r["segment"]["sentiment"] is None, r
    assert "SENTIMENT_LEXICON is unset" in r["segment"]["sentiment_note"]
    s, h, _ = a.request("GET", "/health", health=True)
    assert h["sentiment"]["engine"] is None and "no Debian package" in h["sentiment"]["note"]


def test_a_missing_lexicon_file_and_a_missing_langdetect_fail_the_start(spawn, tmp_path):
    rc, lines = start_fails(spawn, "streaming_language_analyzer",
                            SENTIMENT_LEXICON="/nonexistent/vader_lexicon.txt")
    assert rc == 2 and len(lines) == 1 and "SENTIMENT_LEXICON" in lines[0], lines
    hide = tmp_path / "hide" / "langdetect"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    rc, lines = start_fails(spawn, "streaming_language_analyzer",
                            PYTHONPATH=f"{hide.parent}{os.pathsep}{spawn.sdk_path}"
                                       f"{os.pathsep}{ROOT}")
    assert rc == 2 and len(lines) == 1, lines
    assert "install the Debian package python3-langdetect" in lines[0], lines

