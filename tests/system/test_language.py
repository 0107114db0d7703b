"""The language agents under systemd, from the installed package with its Recommends
(apertium, apertium-eng-spa, python3-langdetect, python3-nltk) installed as apt installs them:
translation en→es through RequestCoordinator, an uninstalled pair refused naming what is
installed, a stream translated a sentence at a time, NLLBAdapter saying Apertium answered,
ELIZA over several turns of one session, the language of a few sentences, bad input (empty
text, 1 MB of text) answered clearly, and no installed pair a failed start with exit 2 that
systemd does not restart (docs/LANGUAGE.md).

The language agents are in no profile but `full`; a catalog drop-in adds a small profile (core
plus them) for these tests, removed afterwards."""
import json

import pytest

DROPIN = "/etc/unified/conf.d/90-systest-language.yaml"
AGENTS = ["TranslationService", "FixedStreamingTranslation", "NLLBAdapter",
          "StreamingLanguageAnalyzer", "ChitchatAgent"]
PROFILE_YAML = f"""\
profiles:
  systest_language:
    description: "system test: core plus the language agents"
    extends: core
    agents: [{", ".join(AGENTS)}]
"""
COORDINATOR = 7201


def post(c, port: int, body: dict):
    c.write_file("/root/language-task.json", json.dumps(body))
    r = c.run(["curl", "-sS", "-m", "60", "-w", "\n%{http_code}", "-H",
               "Content-Type: application/json", "-d", "@/root/language-task.json",
               f"http://127.0.0.1:{port}/task"], timeout=90)
    out, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(out)


def result(c, body: dict) -> dict:
    status, out = post(c, COORDINATOR, body)
    assert status == 200, out
    return out


def switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


@pytest.fixture(scope="module")
def lang(_session_container):
    # one profile switch for the module (a switch takes a while); the container is the
    # session's, as in test_agent_runtime.py
    container = _session_container
    container.write_file(DROPIN, PROFILE_YAML)
    try:
        container.run(["unified-ctl", "apply"])
        switch(container, "systest_language")
        container.systemctl("restart", "unified-agent@RequestCoordinator.service")
        container.wait_until("curl -sf http://127.0.0.1:8201/health", timeout=30)
        yield container
    finally:
        container.run(["rm", "-f", DROPIN, "/root/language-task.json"])
        container.run(["unified-ctl", "apply"])
        switch(container, "core")
        for a in AGENTS:
            unit = f"unified-agent@{a}.service"
            container.systemctl("stop", f"unified-agent@{a}.socket", unit, check=False)
            container.systemctl("reset-failed", unit, check=False)
        container.systemctl("restart", "unified-agent@RequestCoordinator.service")


def test_english_is_translated_to_spanish_through_the_coordinator(lang):
    out = result(lang, {"type": "translation", "text": "The weather is nice today.",
                        "source": "en", "target": "es"})
    assert out["agent"] == "TranslationService", out
    r = out["result"]
    assert r == {**r, "text": "El tiempo es bueno hoy.", "engine": "apertium",
                 "pair": "eng-spa"}, r
    pairs = result(lang, {"type": "translation_pairs"})["result"]["pairs"]
    assert {"pair": "eng-spa", "source": "eng", "target": "spa"} in pairs
    health = json.loads(lang.run(["curl", "-sf", "http://127.0.0.1:6595/health"]).stdout)
    assert health["implementation"] == "builtin" and health["engine"] == "apertium"
    assert "eng-spa" in health["pairs"] and health["engine_version"].startswith("Apertium")


def test_an_uninstalled_pair_is_refused_naming_the_installed_ones(lang):
    status, out = post(lang, COORDINATOR, {"type": "translation", "text": "Hello.",
                                           "source": "en", "target": "ja"})
    assert status == 400, out
    assert "is not a language code or name known here; installed pairs: eng-spa" \
        in out["error"], out
    status, out = post(lang, COORDINATOR, {"type": "translation", "text": "Hello.",
                                           "source": "en", "target": "fr"})
    assert status == 400 and "no Apertium pair eng-fra" in out["error"], out
    assert "apertium-eng-spa is English-Spanish" in out["error"], out


@pytest.mark.parametrize("text,status,words", [
    ("", 400, '"text" is missing or empty'),
    ("x" * 1_000_000, 413, "has 1000000 characters; allowed: at most 5000 "
                           "(TRANSLATION_MAX_CHARS)"),
])
def test_bad_text_is_a_clear_4xx(lang, text, status, words):
    got, out = post(lang, COORDINATOR, {"type": "translation", "text": text, "source": "en",
                                        "target": "es"})
    assert got == status and words in out["error"], out
    got, out = post(lang, COORDINATOR, {"type": "simple_chat", "text": text})
    assert got == status and ("CHITCHAT_MAX_CHARS" in out["error"] if text else
                              words in out["error"]), out
    lang.run(["curl", "-sf", "http://127.0.0.1:6595/health"])  # still healthy


def test_a_stream_is_translated_a_sentence_at_a_time(lang):
    r = result(lang, {"type": "streaming_translation", "source": "en", "target": "es",
                      "text": "Good morning. The weather"})["result"]
    assert [s["text"] for s in r["sentences"]] == ["Buenos días."] and \
        r["pending"] == "The weather", r
    r = result(lang, {"type": "streaming_translation", "session": r["session"],
                      "text": "is nice today.", "final": True})["result"]
    assert [s["text"] for s in r["sentences"]] == ["El tiempo es bueno hoy."], r


def test_nllb_adapter_answers_through_apertium_and_says_so(lang):
    r = result(lang, {"type": "nllb_translation", "text": "Good morning.", "source": "en",
                      "target": "es"})["result"]
    assert r["engine"] == "apertium" and r["text"] == "Buenos días.", r
    assert "NLLB_MODEL_DIR unset" in r["note"], r


def test_eliza_keeps_a_conversation_over_several_turns(lang):
    def say(text):
        out = result(lang, {"type": "simple_chat", "text": text, "session": "systest-eliza"})
        assert out["agent"] == "ChitchatAgent", out
        return out["result"]

    turns = [say("My brother never listens to me."), say("I need a holiday"),
             say("I need a holiday"), say("purple elephants")]
    assert [t["turn"] for t in turns] == [1, 2, 3, 4] and turns[0]["new_session"] is True
    assert turns[1]["reply"] != turns[2]["reply"], turns  # ELIZA rotates its replies
    assert turns[3]["reply"] == "Earlier you said your brother never listens to you.", turns
    assert all(t["engine"] == "eliza" for t in turns)
    hello = result(lang, {"type": "greeting"})["result"]
    assert hello["reply"] == "Hello. How are you feeling today?", hello


def test_the_language_of_a_few_sentences_is_identified(lang):
    for text, want in [("Je pense donc je suis, disait le philosophe.", "fr"),
                       ("Das Wetter ist heute wirklich schön.", "de"),
                       ("Il treno per Roma parte alle nove.", "it"),
                       ("Where is the nearest pharmacy?", "en")]:
        r = result(lang, {"type": "language_analysis", "text": text, "final": True})["result"]
        assert r["segment"]["language"] == want, (text, r)
        assert r["segment"]["sentiment"] is None and "SENTIMENT_LEXICON is unset" in \
            r["segment"]["sentiment_note"]


def test_no_installed_pair_fails_the_start_once_naming_a_package(lang):
    unit = "unified-agent@TranslationService.service"
    conf = "/run/systemd/system/unified-agent@TranslationService.service.d/90-systest-nopair.conf"
    try:
        lang.write_file(conf, '[Service]\nEnvironment="APERTIUM_DATA_DIR=/nonexistent"\n')
        lang.systemctl("daemon-reload")
        lang.systemctl("restart", unit, check=False)
        lang.wait_until(f"systemctl is-failed -q {unit}", timeout=60)
        assert lang.unit_property(unit, "ExecMainStatus") == "2"
        assert lang.unit_property(unit, "NRestarts") == "0"            # no restart loop
        lang.wait_until(f"journalctl -u {unit} -o cat | grep -q "
                        "'no Apertium translation pair is installed.*apertium-eng-spa'",
                        timeout=15)
    finally:
        lang.run(["rm", "-f", conf])
        lang.systemctl("daemon-reload")
        lang.systemctl("reset-failed", unit, check=False)
    out = result(lang, {"type": "translation", "text": "Good morning.", "source": "en",
                        "target": "es"})
    assert out["result"]["text"] == "Buenos días.", out
