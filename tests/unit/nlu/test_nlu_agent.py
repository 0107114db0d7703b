"""NLUAgent as a real process: every built-in intent with its slots (typos and numbers as
words included), out-of-domain sentences fall back with their score, bad input is a clear 4xx,
/health names engine, model version, intents and files, and a broken intent file fails the
start with exit 2 and one line naming file:line."""
from __future__ import annotations

import pytest

from .conftest import INTENTS, nlu_env, parse

# one sentence per built-in intent, none of them an example in the intent files
SPOKEN = [
    ("could you tell me what time it is", "GetTime", {}),
    ("what's the date tomorrow", "GetDate", {"date": "2026-12-04"}),
    ("set a timer for twenty five minutes", "SetTimer", {"duration": 1500}),
    ("please cancel my timer", "CancelTimer", {}),
    ("remember that the bins go out on monday", "Remember",
     {"fact": "the bins go out on monday"}),
    ("what did i tell you about the bins", "Recall", {"topic": "the bins"}),
    ("who was marie curie", "KnowledgeQuery", {"query": "marie curie"}),
    ("translate good evening into german", "Translate",
     {"text": "good evening", "language": "german"}),
    ("what does loquacious mean", "Define", {"word": "loquacious"}),
    ("switch to the learning profile", "SwitchProfile", {"profile": "learning"}),
    ("is the memory client running", "SystemStatus", {"agent": "MemoryClient"}),
    ("hello there", "Greeting", {}),
    ("thank you so much", "Thanks", {}),
    ("bye for now", "Goodbye", {}),
]


@pytest.mark.parametrize("text,intent,slots", SPOKEN, ids=[s[1] for s in SPOKEN])
def test_each_built_in_intent_is_recognised_with_its_slots(nlu, text, intent, slots):
    status, out = parse(nlu, text)
    assert status == 200, out
    r = out["result"]
    assert r["intent"] == intent, r
    assert {k: v["value"] for k, v in r["slots"].items()} == slots, r
    assert 0 < r["confidence"] <= 1
    assert all(a["intent"] != intent and a["confidence"] <= r["confidence"]
               for a in r["alternatives"]), r
    assert r["model_version"].startswith("unified-nlu-")


def test_typos_and_number_words_are_understood(nlu):
    status, out = parse(nlu, "set a timr for an hour and a half")
    assert status == 200 and out["result"]["intent"] == "SetTimer", out
    assert out["result"]["slots"]["duration"] == {"value": 5400, "text": "an hour and a half"}
    status, out = parse(nlu, "cancle the timer")
    assert out["result"]["intent"] == "CancelTimer", out


def test_free_text_slots_keep_the_words_as_written(nlu):
    status, out = parse(nlu, "Remember that Alice's flight lands at 7:45!")
    assert out["result"]["intent"] == "Remember"
    assert out["result"]["slots"]["fact"]["value"] == "Alice's flight lands at 7:45"


@pytest.mark.parametrize("text", ["turn on the kitchen lights", "order a pizza",
                                  "zxcv qwerty uiop"])
def test_sentences_no_intent_covers_fall_back_with_their_score(nlu, text):
    status, out = parse(nlu, text)
    r = out["result"]
    assert status == 200 and r["intent"] == "Fallback", r
    assert r["slots"] == {} and r["confidence"] < 0.45
    assert r["alternatives"] and r["alternatives"][0]["confidence"] == r["confidence"]


def test_command_parsing_is_the_same_task(nlu):
    status, out, _ = nlu.request("POST", "/task", {"type": "command_parsing",
                                                   "text": "what time is it"})
    assert status == 200 and out["result"]["intent"] == "GetTime", out


@pytest.mark.parametrize("body,status,words", [
    ({"type": "nlu"}, 400, '"text" is missing or empty'),
    ({"type": "nlu", "text": "   "}, 400, '"text" is missing or empty'),
    ({"type": "nlu", "text": 42}, 400, "allowed: a sentence"),
    ({"type": "nlu", "text": "x" * 501}, 413, "at most 500 (NLU_MAX_CHARS)"),
    ({"type": "nlu", "text": "hi", "now": "yesterday-ish"}, 400, "allowed: an ISO 8601"),
])
def test_bad_input_is_a_clear_client_error_and_the_agent_stays_healthy(nlu, body, status, words):
    got, out, _ = nlu.request("POST", "/task", body)
    assert got == status, out
    assert words in str(out), out
    assert nlu.request("GET", "/health", health=True)[0] == 200


def test_health_names_engine_model_intents_and_files(nlu):
    status, h, _ = nlu.request("GET", "/health", health=True)
    assert status == 200, h
    assert h["implementation"] == "builtin"  # not the reference agent
    assert h["engine"] == "unified-nlu" and h["model_version"].startswith("unified-nlu-1+")
    assert h["intents"] == 14 and "SetTimer" in h["intent_names"]
    assert h["files"] == [f"{INTENTS}/10-builtin.yaml"]
    assert h["catalog"] == "ok"


def test_an_operator_file_adds_an_intent_and_replaces_a_shipped_one(spawn, tmp_path):
    d = tmp_path / "intents.d"
    d.mkdir()
    (d / "10-builtin.yaml").write_text(open(f"{INTENTS}/10-builtin.yaml").read())
    (d / "50-local.yaml").write_text(
        "lists:\n  room: [kitchen, bedroom, {living room: [lounge]}]\n"
        "intents:\n"
        "  LightsOn:\n    slots: {room: room}\n"
        "    examples: ['turn on the {room} (light|lights)', 'lights on in the {room}']\n"
        "  Greeting:\n    examples: ['ahoy [there]']\n")
    a = spawn("NLUAgent", nlu_env(spawn, NLU_INTENTS_DIR=d), notify=False)
    status, out = parse(a, "turn on the lounge lights")
    assert out["result"]["intent"] == "LightsOn", out
    assert out["result"]["slots"]["room"] == {"value": "living room", "text": "lounge"}
    assert parse(a, "ahoy")[1]["result"]["intent"] == "Greeting"
    h = a.request("GET", "/health", health=True)[1]
    assert h["intents"] == 15 and len(h["files"]) == 2


@pytest.mark.parametrize("text,line,words", [
    ("intents:\n  Bad:\n    slots: {when: weekday}\n    examples: ['on {when}']\n", 3,
     "intents.Bad.slots.when: unknown slot type 'weekday'; allowed: number, duration"),
    ("intents:\n  Bad:\n    examples:\n      - 'set (a|the timer'\n", 4,
     "intents.Bad.examples[0]: template 'set (a|the timer': ( is never closed"),
    ("intents:\n  Bad:\n    examples: ['tell {who} hi']\n", 3,
     "unknown slot {who}; allowed: none declared under 'slots'"),
    ("intents:\n  Bad:\n    exmples: ['hi']\n", 3, "unknown key 'exmples'; allowed: description"),
    ("intents:\n  Bad: [\n", 3, "YAML syntax error"),
])
def test_a_broken_intent_file_fails_the_start_with_exit_2_naming_file_and_line(
        spawn, tmp_path, text, line, words):
    d = tmp_path / "intents.d"
    d.mkdir()
    (d / "20-broken.yaml").write_text(text)
    a = spawn("NLUAgent", nlu_env(spawn, NLU_INTENTS_DIR=d), wait_ready=False, notify=False)
    assert a.wait_exit(30) == 2
    lines = a.stderr().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"{d}/20-broken.yaml:{line}: " in lines[0] and words in lines[0], lines[0]


def test_an_empty_intent_directory_fails_the_start_naming_it(spawn, tmp_path):
    a = spawn("NLUAgent", nlu_env(spawn, NLU_INTENTS_DIR=tmp_path), wait_ready=False,
              notify=False)
    assert a.wait_exit(30) == 2
    assert f"{tmp_path}: no intent files (*.yaml) in this directory" in a.stderr()


def test_the_check_command_validates_intent_files_without_the_agent(spawn, tmp_path):
    import subprocess

    from ..sdk.harness import PYTHON

    env = {"PYTHONPATH": str(spawn.sdk_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([PYTHON, "-m", "unified_agents.builtin.nlu", "check", INTENTS],
                        env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "14 intents in 1 files: ok" in ok.stdout, ok
    (tmp_path / "bad.yaml").write_text("intents:\n  Hi:\n    examples: ['hello]']\n")
    bad = subprocess.run([PYTHON, "-m", "unified_agents.builtin.nlu", "check", str(tmp_path)],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2, bad
    assert f"{tmp_path}/bad.yaml:3: intents.Hi.examples[0]: template 'hello]': unexpected ']'" \
        in bad.stderr, bad.stderr
