"""Reading a model's reply (agents/builtin/llm/answers.py), in process: the final answer and
its fallbacks, steps, a judge's score, candidate thoughts, code blocks."""
from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="module")
def answers(sdk_path):   # sdk_path: conftest's (the SDK harness fixture)
    if str(sdk_path) not in sys.path:
        sys.path.insert(0, str(sdk_path))
    from unified_agents.builtin.llm import answers

    return answers


@pytest.mark.parametrize("reply,answer,how", [
    ("Step 1: x\nFinal answer: 42", "42", "final_answer_line"),
    ("**Final answer:** 42", "42", "final_answer_line"),
    ("so it is done. Final Answer - Paris", "Paris", "final_answer_line"),
    ("Final answer: 5\nWait, no.\nFinal answer: 4", "4", "final_answer_line"),
    ("blah\nAnswer: blue", "blue", "answer_line"),
    ("I think the answer is 7.", "7", "the_answer_is"),
    ("thus $\\boxed{12}$", "12", "boxed"),
])
def test_the_answer_and_where_it_came_from(answers, reply, answer, how):
    assert answers.final_answer(reply) == (answer, how)


@pytest.mark.parametrize("reply", ["", "It depends.", "Final answer:   ", "my final answers vary"])
def test_no_answer_is_none_with_the_reason(answers, reply):
    got, why = answers.final_answer(reply)
    assert got is None and why == answers.NO_ANSWER


def test_steps_are_the_numbered_items_before_the_answer(answers):
    reply = "Step 1: one\ncontinued\nStep 2: two\n3. three\nFinal answer: 3"
    assert answers.steps(reply) == ["one continued", "two", "three"]
    assert answers.steps("first line\n\nsecond line") == ["first line", "second line"]


@pytest.mark.parametrize("reply,score", [("Score: 7", 7.0), ("I'd give it 8/10", 8.0),
                                         ("score=9.5", 9.5), ("Score: 10", 10.0),
                                         ("nope", None), ("Score: 11", None)])
def test_a_judges_score_is_a_number_from_0_to_10(answers, reply, score):
    assert answers.score(reply) == score


def test_candidates_are_distinct_list_items_up_to_k(answers):
    reply = "Here:\n1. a b\n2) A  B\n- c\n* d\nThought 5: e"
    assert answers.candidates(reply, 3) == ["a b", "c", "d"]
    assert answers.candidates("x\ny", 5) == ["x", "y"]


def test_code_blocks_are_the_python_or_untagged_fences(answers):
    reply = "```python\na = 1\n```\n```bash\nls\n```\n```\nb = 2\n```\n```py\nc = 3\n```"
    assert answers.code_blocks(reply) == ["a = 1\n", "b = 2\n", "c = 3\n"]
