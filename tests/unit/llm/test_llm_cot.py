"""ChainOfThoughtAgent as a real process over the real ModelManagerSuite and the stand-in:
the answer comes from the last 'Final answer:' line, a fallback is named, no answer is null
with the reason (never a guess), bad input is a clear 4xx."""
from __future__ import annotations

import pytest

from .conftest import task

REASONING = ("Step 1: A dozen is 12 eggs.\nStep 2: Three dozen is 3 x 12 = 36.\n"
             "Step 3: Giving away 5 leaves 36 - 5 = 31.\nFinal answer: 31")


@pytest.fixture(scope="module")
def cot(fleet):
    return fleet.start("ChainOfThoughtAgent")


def test_the_final_answer_line_is_the_answer_with_its_steps(fleet, cot):
    fleet.script([{"match": "three dozen eggs", "answers": [REASONING]}])
    status, out = task(cot, {"type": "chain_of_thought",
                             "question": "I buy three dozen eggs and give away 5. How many?"})
    assert status == 200, out
    r = out["result"]
    assert (r["answer"], r["answer_source"]) == ("31", "final_answer_line")
    assert r["steps"] == ["A dozen is 12 eggs.", "Three dozen is 3 x 12 = 36.",
                          "Giving away 5 leaves 36 - 5 = 31."]
    assert (r["model"], r["backend"]) == ("phi3_mini", "local")  # the catalog name
    assert r["usage"]["calls"] == 1 and r["usage"]["completion_tokens"] == len(REASONING.split())
    assert r["timings"]["total_s"] >= r["timings"]["llm_s"] > 0
    sent = fleet.llm.requests[-1]["messages"]
    assert "Final answer:" in sent[0]["content"] and sent[1]["content"].startswith("I buy")


def test_a_revised_answer_counts_by_its_last_final_answer_line(fleet, cot):
    fleet.script([{"match": "revise", "answers": [
        "Step 1: 2+2 is 5.\nFinal answer: 5\nStep 2: no, 2+2 is 4.\nFinal answer: 4"]}])
    r = task(cot, {"type": "chain_of_thought", "question": "revise: 2+2?"})[1]["result"]
    assert r["answer"] == "4"


def test_without_the_convention_a_fallback_is_used_and_named(fleet, cot):
    fleet.script([{"match": "capital", "answers": ["France's capital city... the answer is "
                                                   "Paris."]}])
    r = task(cot, {"type": "chain_of_thought", "data": {"question": "capital of France?"}})[1]
    assert (r["result"]["answer"], r["result"]["answer_source"]) == ("Paris", "the_answer_is")


def test_no_answer_in_the_reply_is_null_with_the_reason(fleet, cot):
    fleet.script([{"match": "ponder", "answers": ["Hmm, it depends on many things."]}])
    r = task(cot, {"type": "chain_of_thought", "question": "ponder this"})[1]["result"]
    assert r["answer"] is None and "no 'Final answer:' line" in r["reason"]
    assert r["reasoning"] == "Hmm, it depends on many things."


def test_context_goes_before_the_question(fleet, cot):
    fleet.script([{"match": "Context:", "answers": ["Step 1: read it.\nFinal answer: blue"]}])
    r = task(cot, {"type": "chain_of_thought", "question": "which colour?",
                   "context": "The door is blue."})[1]["result"]
    assert r["answer"] == "blue"
    assert fleet.llm.requests[-1]["last"] == "Context:\nThe door is blue.\n\nQuestion: which colour?"


@pytest.mark.parametrize("body,status,words", [
    ({"type": "chain_of_thought", "question": "   "}, 400, '"question" is missing or empty'),
    ({"type": "chain_of_thought", "question": "x" * 8001}, 413, "LLM_MAX_PROMPT_CHARS"),
    ({"type": "chain_of_thought", "question": "q", "max_tokens": 0}, 400, '"max_tokens"=0'),
    ({"type": "chain_of_thought", "question": "q", "temperature": "hot"}, 400, "temperature"),
])
def test_bad_input_is_a_clear_4xx_and_the_agent_stays_healthy(cot, body, status, words):
    got, out = task(cot, body)
    assert got == status and words in out["error"], out
    health = cot.request("GET", "/health", health=True)[1]
    assert health["status"] == "healthy" and health["implementation"] == "builtin"
