"""`unified-ctl ask` against the real dialogue agents of the test fleet (its catalog names the
coordinator's port): what is printed, --json, --session, and errors as one line."""
from __future__ import annotations

import json

from click.testing import CliRunner

from unified_ctl.cli import cli


def ask(fleet, *args, input=None):
    return CliRunner().invoke(cli, ["-c", str(fleet.catalog), "ask", *args], input=input)


def test_ask_prints_intent_tier_reply_and_timings(fleet):
    r = ask(fleet, "what time is it")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "intent:  GetTime (1.00)", lines
    assert lines[1].startswith("tier:    command") and lines[2].startswith("reply:   It is ")
    assert lines[3].startswith("timings: nlu ") and " · command " in lines[3]
    assert " · total " in lines[3] and "round trip" in lines[3]


def test_ask_json_and_a_session_keep_context_across_turns(fleet):
    r = ask(fleet, "--json", "--session", "cli-1", "remember that the plumber comes on friday")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["tier"] == "memory"
    r = ask(fleet, "--json", "--session", "cli-1", "switch to vision")
    assert json.loads(r.output)["data"]["decision"] == "confirm"
    r = ask(fleet, "--json", "--session", "cli-1", "no")
    out = json.loads(r.output)
    assert out["tier"] == "confirmation" and out["data"]["decision"] == "declined", out
    r = ask(fleet, "--json", "--session", "cli-1", "what did i tell you about the plumber")
    assert json.loads(r.output)["reply"] == "You told me that the plumber comes on friday."


def test_ask_errors_are_one_line_naming_the_agent_and_the_limit(fleet):
    r = ask(fleet, "")
    assert r.exit_code == 1
    assert r.output.strip() == ('Error: Responder answered 400: "text" is missing or empty; '
                                "allowed: a sentence (a string)")
    r = ask(fleet, "-", input="y" * 200_000)          # from stdin: longer than an argument
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "200000 characters; allowed: at most 1000 (RESPONDER_MAX_CHARS)" in r.output


def test_ask_audio_prints_what_was_heard_and_writes_the_spoken_reply(fleet, tmp_path):
    import base64
    status, out = fleet.task("tts", {"text": "what time is it", "voice": "rms"})
    wav_in = tmp_path / "question.wav"
    wav_in.write_bytes(base64.b64decode(out["result"]["audio_wav_b64"]))
    wav_out = tmp_path / "answer.wav"
    r = ask(fleet, "--audio", str(wav_in), "--reply-audio", str(wav_out))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "heard:   what time is it" and lines[1].startswith("intent:  GetTime")
    assert lines[-1].startswith(f"spoken:  {wav_out} (") and wav_out.read_bytes()[:4] == b"RIFF"
    r = ask(fleet, "--audio", str(tmp_path / "missing.wav"))
    assert r.exit_code == 1 and "missing.wav: cannot read" in r.output, r.output
    r = ask(fleet)
    assert r.exit_code == 2 and "give TEXT or --audio" in r.output


def test_ask_audio_wake_prints_the_wake_phrase_and_answers_what_followed(fleet, tmp_path):
    import base64
    status, out = fleet.task("tts", {"text": "okay computer. what time is it", "voice": "slt"})
    wav_in = tmp_path / "woken.wav"
    wav_in.write_bytes(base64.b64decode(out["result"]["audio_wav_b64"]))
    r = ask(fleet, "--audio", str(wav_in), "--wake")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("wake:    okay computer at "), r.output
    assert lines[1] == "heard:   what time is it", r.output
    assert "wake " in r.output and "preprocess " in r.output, r.output
    r = ask(fleet, "--wake", "what time is it")
    assert r.exit_code == 2 and "--wake needs --audio" in r.output
