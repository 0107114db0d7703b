"""DynamicIdentityAgent: the persona changes at run time, survives a restart, and the other
agents use it (the greeting's name and style, the spoken reply's voice)."""
from __future__ import annotations


def identity(fleet, **body):
    status, out = fleet.task("identity", body)
    assert status == 200, out
    return out["result"]


def test_the_persona_names_the_greeting_and_changes_at_run_time(fleet):
    p = identity(fleet, op="get")
    assert (p["name"], p["style"]) == ("Ada", "friendly")
    r = fleet.turn("good morning", now="2026-12-03T09:00:00")
    assert r["reply"] == "Good morning! I'm Ada. How can I help?", r
    identity(fleet, op="set", name="Orbit", style="formal")
    r = fleet.turn("good evening", now="2026-12-03T20:00:00")
    assert r["reply"] == "Good evening. This is Orbit; how may I assist you?", r
    fleet.restart("DynamicIdentityAgent")
    p = identity(fleet, op="get")
    assert (p["name"], p["style"], p["version"]) == ("Orbit", "formal", 2), p
    h = identity(fleet, op="history")["changes"]
    assert [(c["field"], c["old"], c["new"]) for c in h] == [("style", "friendly", "formal"),
                                                              ("name", "Ada", "Orbit")]
    identity(fleet, op="set", name="Ada", style="friendly")


def test_the_spoken_reply_uses_the_persona_voice(fleet):
    import base64
    identity(fleet, op="set", voice="kal")      # flite's kal: 8 kHz, the others 16 kHz
    try:
        status, out = fleet.task("respond", {"text": "thanks a lot", "reply_audio": True})
        wav = base64.b64decode(out["result"]["reply_audio_wav_b64"])
        assert int.from_bytes(wav[24:28], "little") == 8000, wav[:44]
    finally:
        identity(fleet, op="set", voice="")


def test_a_bad_persona_is_a_clear_400(fleet):
    for body, words in (({"style": "sarcastic"}, "allowed: friendly, concise, formal"),
                        ({"name": ""}, '"name"=\'\''),
                        ({"voice": "a b"}, "a TTS voice name"), ({}, "at least one of")):
        status, out = fleet.task("identity", {"op": "set", **body})
        assert status == 400 and words in out["error"], (body, out)
