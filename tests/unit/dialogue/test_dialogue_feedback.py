"""FeedbackHandler: ratings and corrections stored with the turn they belong to, the turn's
words copied from SessionMemoryAgent; "no, I meant X" in a conversation is a correction."""
from __future__ import annotations


def fb(fleet, **body):
    return fleet.task("feedback", body)


def test_a_rating_is_stored_with_its_turn_and_what_was_said(fleet):
    r = fleet.turn("what time is it", "fb-1")
    status, out = fb(fleet, op="rate", session="fb-1", turn_id=r["turn_id"], rating=5,
                     comment="quick")
    assert status == 200, out
    item = out["result"]
    assert item["kind"] == "rating" and item["rating"] == 5 and item["turn_id"] == r["turn_id"]
    assert item["turn"] == {"user": "what time is it", "assistant": r["reply"],
                            "intent": "GetTime", "tier": "command"}
    status, out = fb(fleet, op="list", session="fb-1")
    assert [i["id"] for i in out["result"]["items"]] == [item["id"]]


def test_no_i_meant_corrects_the_previous_answer_and_answers_the_correction(fleet):
    first = fleet.turn("switch to the vision profile", "fb-2")
    r = fleet.turn("no, I meant what time is it", "fb-2")
    assert r["intent"] == "GetTime" and r["correction"]["turn_id"] == first["turn_id"], r
    status, out = fb(fleet, op="list", session="fb-2", kind="correction")
    items = out["result"]["items"]
    assert len(items) == 1 and items[0]["correction"] == "what time is it"
    assert items[0]["turn"]["user"] == "switch to the vision profile"
    assert items[0]["turn"]["intent"] == "SwitchProfile"


def test_feedback_for_an_unknown_turn_or_session_is_a_clear_4xx(fleet):
    r = fleet.turn("hello", "fb-3")
    status, out = fb(fleet, op="rate", session="fb-3", turn_id=r["turn_id"] + 1000, rating=3)
    assert status == 404 and "has no turn" in out["error"], out
    status, out = fb(fleet, op="rate", session="fb-none", turn_id=1, rating=3)
    assert status == 404 and "no session 'fb-none'" in out["error"], out
    status, out = fb(fleet, op="rate", session="fb-3", turn_id=r["turn_id"] - 1, rating=3)
    assert status == 400 and "is the user's" in out["error"], out
    status, out = fb(fleet, op="rate", session="fb-3", turn_id=r["turn_id"], rating=9)
    assert status == 400 and '"rating"=9 is out of range; allowed: 1-5' in out["error"], out
    status, out = fb(fleet, op="delete")
    assert status == 400 and "allowed: rate, correct, list" in out["error"], out
