"""CognitiveModelAgent as a real process over ChainOfThoughtAgent and ModelManagerSuite:
a compound question is decomposed, each part answered by chain of thought, then
synthesised; a simple one goes straight to chain of thought."""
from __future__ import annotations

import pytest

from .conftest import task


@pytest.fixture(scope="module")
def cog(fleet):
    fleet.start("ChainOfThoughtAgent")
    return fleet.start("CognitiveModelAgent")


def test_a_compound_question_is_decomposed_answered_and_synthesised(fleet, cog):
    fleet.script([
        {"match": "Sub-questions and their answers", "answers": [
            "Paris has 2.1 million people, Rome 2.8 million.\nFinal answer: Rome"]},
        {"match": "Which has more people", "answers": [
            "1. How many people live in Paris?\n2. How many people live in Rome?"]},
        {"match": "live in Paris", "answers": ["Step 1: INSEE says 2.1 million.\n"
                                               "Final answer: 2.1 million"]},
        {"match": "live in Rome", "answers": ["Step 1: ISTAT says 2.8 million.\n"
                                              "Final answer: 2.8 million"]},
    ])
    status, out = task(cog, {"type": "cognitive_model",
                             "question": "Which has more people, Paris or Rome?"})
    assert status == 200, out
    r = out["result"]
    assert (r["answer"], r["strategy"]) == ("Rome", "decomposed")
    assert [(s["question"], s["answer"]) for s in r["sub_questions"]] == [
        ("How many people live in Paris?", "2.1 million"),
        ("How many people live in Rome?", "2.8 million")]
    assert r["sub_questions"][0]["steps"] == ["INSEE says 2.1 million."]
    last = fleet.llm.requests[-1]["last"]
    assert "- How many people live in Rome? → 2.8 million" in last
    assert r["usage"]["calls"] == 4       # decompose, two chains of thought, synthesis


def test_a_simple_question_goes_straight_to_chain_of_thought(fleet, cog):
    # both prompts carry the question as the user's message: the decomposition comes first
    fleet.script([{"match": "What is 6 times 7?",
                   "answers": ["NONE", "Step 1: 6*7=42\nFinal answer: 42"]}])
    r = task(cog, {"type": "cognitive_model", "question": "What is 6 times 7?"})[1]["result"]
    assert (r["answer"], r["strategy"], r["sub_questions"]) == ("42", "direct", [])
    assert r["usage"]["calls"] == 2


def test_a_part_without_an_answer_stays_unknown_in_the_synthesis(fleet, cog):
    fleet.script([
        {"match": "Sub-questions", "answers": ["Not enough is known."]},
        {"match": "Is it safe", "answers": ["1. What is it?\n2. Who asks?"]},
        {"match": "What is it?", "answers": ["Step 1: unclear."]},
        {"match": "Who asks?", "answers": ["Final answer: you"]},
    ])
    r = task(cog, {"type": "cognitive_model", "question": "Is it safe?"})[1]["result"]
    assert [s["answer"] for s in r["sub_questions"]] == [None, "you"]
    assert "- What is it? → unknown" in fleet.llm.requests[-1]["last"]
    assert r["answer"] is None and "no 'Final answer:' line" in r["reason"]
