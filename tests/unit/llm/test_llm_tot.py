"""GoTToTAgent as a real process: proposals, judge scores, the beam, the budgets (depth,
tokens, time), a caller's keyword scorer, and the same thought from two parents merged."""
from __future__ import annotations

import pytest

from .conftest import task

PROBLEM = "Use 4, 4, 6 and 1 once each with + - * / to make 24."
# Proposals are keyed by the steps so far (the user message lists them); judges by the
# last step they rate.
SCRIPT = [
    {"match": "(none yet)", "answers": ["1. 4 * 6 = 24, left 4 and 1\n2. 4 + 4 = 8, left 6 "
                                        "and 1\n3. 6 - 1 = 5, left 4 and 4"]},
    {"match": "1. 4 * 6 = 24, left 4 and 1\nPropose", "answers": [
        "1. 4 / 4 = 1, left 24 and 1 and 1\n2. 24 * (4 - 4 + 1) = 24, all used. "
        "Final answer: 4 * 6 * (4 - 4 + 1) = 24"]},
    {"match": "1. 6 - 1 = 5, left 4 and 4\nPropose", "answers": [
        "1. 5 * 4 = 20, left 4\n2. 20 + 4 = 24. Final answer: (6 - 1) * 4 + 4 = 24"]},
    {"match": "Final answer: 4 * 6 * (4 - 4 + 1) = 24\nScore", "answers": ["Score: 10"]},
    {"match": "Final answer: (6 - 1) * 4 + 4 = 24\nScore", "answers": ["Score: 9"]},
    {"match": "4 * 6 = 24, left 4 and 1\nScore", "answers": ["Score: 8"]},
    {"match": "6 - 1 = 5, left 4 and 4\nScore", "answers": ["Score: 6"]},
    {"match": "4 + 4 = 8, left 6 and 1\nScore", "answers": ["I would say 3/10"]},
    {"match": "4 / 4 = 1, left 24 and 1 and 1\nScore", "answers": ["Score: 5"]},
    {"match": "5 * 4 = 20, left 4\nScore", "answers": ["meh"]},
]


@pytest.fixture(scope="module")
def tot(fleet):
    return fleet.start("GoTToTAgent")


def test_the_search_keeps_the_beam_and_stops_when_solved(fleet, tot):
    fleet.script(SCRIPT)
    status, out = task(tot, {"type": "tree_of_thought", "problem": PROBLEM, "k": 3, "beam": 2,
                             "max_depth": 3})
    assert status == 200, out
    r = out["result"]
    assert r["answer"] == "4 * 6 * (4 - 4 + 1) = 24"
    assert [s["score"] for s in r["best_path"]] == [8.0, 10.0] and r["best_score"] == 10.0
    d1 = r["tree"][0]["candidates"]
    assert [(c["thought"][:9], c["score"], c["kept"]) for c in d1] == [
        ("4 * 6 = 2", 8.0, True), ("6 - 1 = 5", 6.0, True), ("4 + 4 = 8", 3.0, False)]
    d2 = r["tree"][1]["candidates"]
    assert [c["score"] for c in d2] == [10.0, 9.0, 5.0, 0.0]
    assert "no score 0-10" in d2[-1]["note"]          # "meh": unparseable, scored 0, said so
    # 1 + 2 proposals, 3 + 4 judgements
    assert r["budget"]["stopped_by"] == "solved" and r["budget"]["depth"] == 2
    assert r["budget"]["calls"] == r["usage"]["calls"] == 10
    assert r["budget"]["tokens"] == r["usage"]["total_tokens"] > 0


def test_the_depth_budget_stops_the_search(fleet, tot):
    fleet.script(SCRIPT)
    r = task(tot, {"type": "tree_of_thought", "problem": PROBLEM, "max_depth": 1})[1]["result"]
    assert r["budget"]["stopped_by"] == "depth" and len(r["tree"]) == 1
    assert r["answer"] is None and "Final answer" in r["reason"]
    assert r["best_path"] == [{"thought": "4 * 6 = 24, left 4 and 1", "score": 8.0}]


def test_the_token_budget_stops_the_search_before_the_next_call(fleet, tot):
    fleet.script(SCRIPT)
    r = task(tot, {"type": "tree_of_thought", "problem": PROBLEM,
                   "max_tokens_total": 150})[1]["result"]
    assert r["budget"]["stopped_by"] == "tokens"
    # every call but the last started under the budget
    assert r["budget"]["tokens"] >= 150 and r["budget"]["calls"] < 10


def test_the_time_budget_stops_the_search(fleet, tot):
    fleet.script(SCRIPT)
    fleet.llm.delay_s = 0.1                   # each call 0.1 s: the whole search needs 1 s
    try:
        r = task(tot, {"type": "tree_of_thought", "problem": PROBLEM, "max_seconds": 0.35,
                       "max_depth": 10})[1]["result"]
    finally:
        fleet.llm.delay_s = 0.0
    assert r["budget"]["stopped_by"] == "time" and r["budget"]["calls"] < 10
    assert r["budget"]["seconds"] >= 0.35 and r["budget"]["limits"]["max_seconds"] == 0.35


def test_a_keyword_scorer_needs_no_judge_calls(fleet, tot):
    fleet.script(SCRIPT)
    r = task(tot, {"type": "tree_of_thought", "problem": PROBLEM, "beam": 1, "max_depth": 2,
                   "solved_score": 10, "scorer": {"keywords": ["6 - 1", "final answer"]}}
             )[1]["result"]
    assert r["budget"]["calls"] == 2          # proposals only
    assert [s["score"] for s in r["best_path"]] == [5.0, 10.0]
    assert r["answer"] == "(6 - 1) * 4 + 4 = 24"


def test_the_same_thought_from_two_parents_is_one_node(fleet, tot):
    fleet.script([{"match": "(none yet)", "answers": ["1. a\n2. b"]},
                  {"match": "Propose", "answers": ["1. c. Final answer: c"]},
                  {"match": "Score", "answers": ["Score: 5"]}])
    r = task(tot, {"type": "tree_of_thought", "problem": "p", "k": 2, "beam": 2,
                   "max_depth": 2, "solved_score": 9})[1]["result"]
    assert [c["thought"] for c in r["tree"][1]["candidates"]] == ["c. Final answer: c"]


@pytest.mark.parametrize("body,words", [
    ({"problem": "p", "scorer": "vibes"}, '"scorer"'),
    ({"problem": "p", "scorer": {"keywords": []}}, '"scorer"'),
    ({"problem": "p", "k": 0}, '"k"=0'),
    ({"problem": "p", "max_seconds": -1}, '"max_seconds"'),
    ({"problem": ""}, '"problem" is missing or empty'),
])
def test_bad_search_settings_are_a_400(tot, body, words):
    status, out = task(tot, {"type": "tree_of_thought", **body})
    assert status == 400 and words in out["error"], out
