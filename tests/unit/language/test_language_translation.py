"""TranslationService, FixedStreamingTranslation and NLLBAdapter as real processes over
Debian's Apertium (apertium-eng-spa): English to Spanish and back, the installed pairs listed
(health, task, GET), an uninstalled pair refused naming what is installed and the package,
bad input a clear 4xx with the agent still healthy, sentence-by-sentence streaming, NLLBAdapter
saying that Apertium answered, and a missing engine a failed start naming the package."""
from __future__ import annotations

import os

import pytest

from .conftest import ROOT, needs_apertium, ok, refused, start_fails, task

pytestmark = needs_apertium


def test_english_is_translated_to_spanish(translation):
    r = ok(translation, {"type": "translation", "text": "The weather is nice today.",
                         "source": "en", "target": "es"})
    assert r["engine"] == "apertium" and r["pair"] == "eng-spa", r
    assert r["source"] == "eng" and r["target"] == "spa"
    assert r["text"] == "El tiempo es bueno hoy.", r
    assert r["unknown_words"] == []


def test_codes_and_names_of_both_kinds_pick_the_same_pair(translation):
    for src, tgt in (("eng", "spa"), ("English", "Spanish"), ("en_GB", "es")):
        r = ok(translation, {"type": "translation", "text": "Good morning.", "source": src,
                             "target": tgt})
        assert r["pair"] == "eng-spa" and r["text"] == "Buenos días.", (src, tgt, r)


def test_spanish_is_translated_to_english_and_a_variant_can_be_named(translation):
    r = ok(translation, {"type": "translation", "text": "Hola mundo.", "source": "es",
                         "target": "en"})
    assert r["pair"] == "spa-eng" and r["text"] == "Hello World.", r
    r = ok(translation, {"type": "translation", "text": "el color", "source": "spa",
                         "target": "eng_US"})
    assert r["pair"] == "spa-eng_US", r


def test_words_apertium_does_not_know_are_listed_and_unmarked(translation):
    r = ok(translation, {"type": "translation", "text": "The flurble is red.",
                         "source": "en", "target": "es"})
    assert r["unknown_words"] == ["flurble"], r
    assert "*" not in r["text"] and "flurble" in r["text"], r


def test_the_installed_pairs_are_listed_in_health_task_and_route(translation):
    s, health, _ = translation.request("GET", "/health", health=True)
    assert s == 200 and health["implementation"] == "builtin", health
    assert health["engine"] == "apertium" and health["engine_version"].startswith("Apertium")
    want = sorted(f[:-5] for f in os.listdir("/usr/share/apertium/modes") if f.endswith(".mode"))
    assert health["pairs"] == want and "eng-spa" in want
    listed = ok(translation, {"type": "translation_pairs"})
    assert [p["pair"] for p in listed["pairs"]] == want
    assert {"pair": "eng-spa", "source": "eng", "target": "spa"} in listed["pairs"]
    s, got, _ = translation.request("GET", "/pairs")
    assert s == 200 and got == listed, got


def test_an_uninstalled_pair_is_refused_naming_the_installed_ones_and_the_package(translation):
    got, out = task(translation, {"type": "translation", "text": "Hello.", "source": "en",
                                  "target": "de"})
    assert got == 400, out
    msg = out["error"]
    assert "no Apertium pair eng-deu (english to german) is installed" in msg, msg
    assert "installed pairs: eng-spa, spa-eng" in msg and "apertium-eng-spa" in msg, msg


@pytest.mark.parametrize("body,status,words", [
    ({"type": "translation", "source": "en", "target": "es"}, 400, '"text" is missing or empty'),
    ({"type": "translation", "text": "  ", "source": "en", "target": "es"}, 400,
     '"text" is missing or empty'),
    ({"type": "translation", "text": 5, "source": "en", "target": "es"}, 400, "allowed: the text"),
    ({"type": "translation", "text": "x" * 2001, "source": "en", "target": "es"}, 413,
     "has 2001 characters; allowed: at most 2000 (TRANSLATION_MAX_CHARS)"),
    ({"type": "translation", "text": "hi", "target": "es"}, 400, '"source"=None'),
    ({"type": "translation", "text": "hi", "source": "en", "target": "klingon"}, 400,
     "\"target\"='klingon' is not a language code or name known here; installed pairs:"),
    ({"type": "translation", "text": "hi", "source": "en", "target": "en"}, 400,
     "are both english"),
    ({"type": "translation", "text": "a\0b", "source": "en", "target": "es"}, 400, "NUL"),
])
def test_bad_input_is_a_clear_4xx_and_the_agent_stays_healthy(translation, body, status, words):
    refused(translation, body, status, words)


def test_text_that_looks_like_an_option_is_translated_not_obeyed(translation):
    r = ok(translation, {"type": "translation", "text": "-d /tmp eng-spa", "source": "en",
                         "target": "es"})
    assert "/tmp" in r["text"], r


# ------------------------------------------------------------------ streaming
def test_a_stream_is_translated_a_sentence_at_a_time_and_flushed_at_the_end(streaming):
    r = ok(streaming, {"type": "streaming_translation", "source": "en", "target": "es",
                       "text": "Good morning. The weather"})
    sid = r["session"]
    assert r["pair"] == "eng-spa" and r["final"] is False
    assert r["sentences"] == [{"source_text": "Good morning.", "text": "Buenos días.",
                               "unknown_words": []}], r
    assert r["pending"] == "The weather"
    r = ok(streaming, {"type": "streaming_translation", "session": sid, "text": "is nice"})
    assert r["sentences"] == [] and r["pending"] == "The weather is nice", r
    r = ok(streaming, {"type": "streaming_translation", "session": sid, "text": "today.",
                       "final": True})
    assert [s["text"] for s in r["sentences"]] == ["El tiempo es bueno hoy."], r
    assert r["final"] is True and r["pending"] == "" and r["translated"] == 2
    got, out = task(streaming, {"type": "streaming_translation", "session": sid, "text": "x"})
    assert got == 404 and "is unknown" in out["error"], out


def test_the_end_of_a_stream_translates_what_is_pending(streaming):
    r = ok(streaming, {"type": "streaming_translation", "source": "en", "target": "es",
                       "text": "I like green apples"})
    assert r["sentences"] == [] and r["pending"] == "I like green apples"
    r = ok(streaming, {"type": "streaming_translation", "session": r["session"],
                       "final": True})
    assert [s["text"] for s in r["sentences"]] == ["Me gustan las manzanas verdes"], r


def test_a_transcript_without_punctuation_is_cut_at_a_space_past_the_pending_limit(streaming):
    words = "the cat sat on the mat and the dog sat on the rug in the house by the sea"
    r = ok(streaming, {"type": "streaming_translation", "source": "en", "target": "es",
                       "text": words})
    (first,) = r["sentences"]
    assert len(first["source_text"]) <= 60 and words.startswith(first["source_text"]), r
    assert first["source_text"] + " " + r["pending"] == words
    ok(streaming, {"type": "streaming_translation", "session": r["session"], "final": True})


def test_a_stream_of_an_uninstalled_pair_is_refused_before_it_opens(streaming):
    refused(streaming, {"type": "streaming_translation", "source": "en", "target": "fr",
                        "text": "Hello."}, 400, "no Apertium pair eng-fra")
    s, health, _ = streaming.request("GET", "/health", health=True)
    assert health["sessions"]["open"] == 0, health


def test_streams_are_bounded_and_the_next_one_waits(streaming):
    sids = [ok(streaming, {"type": "streaming_translation", "source": "en", "target": "es",
                           "text": "One"})["session"] for _ in range(2)]
    got, out = task(streaming, {"type": "streaming_translation", "source": "en",
                                "target": "es", "text": "Three"})
    assert got == 429 and "STREAM_TRANSLATION_MAX_SESSIONS" in out["error"], out
    for sid in sids:
        ok(streaming, {"type": "streaming_translation", "session": sid, "final": True})


# ------------------------------------------------------------------ NLLBAdapter
def test_nllb_adapter_without_a_model_answers_through_apertium_and_says_so(nllb):
    r = ok(nllb, {"type": "nllb_translation", "text": "Good morning.", "source": "en",
                  "target": "es"})
    assert r["engine"] == "apertium" and r["text"] == "Buenos días.", r
    assert "no NLLB model is configured (NLLB_MODEL_DIR unset" in r["note"], r
    s, health, _ = nllb.request("GET", "/health", health=True)
    assert health["engine"] == "apertium" and "NLLB_MODEL_DIR unset" in health["note"]
    refused(nllb, {"type": "nllb_translation", "text": "", "source": "en", "target": "es"},
            400, '"text" is missing or empty')


def test_nllb_dir_without_ctranslate2_fails_the_start_naming_what_is_missing(spawn, tmp_path):
    model = tmp_path / "nllb"
    model.mkdir()
    (model / "model.bin").write_bytes(b"\0")
    (model / "sentencepiece.bpe.model").write_bytes(b"\0")
    hide = tmp_path / "hide" / "ctranslate2"  # an import of ctranslate2 fails here
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
    rc, lines = start_fails(spawn, "nllb_adapter", NLLB_MODEL_DIR=str(model),
                            PYTHONPATH=f"{hide.parent}{os.pathsep}{spawn.sdk_path}"
                                       f"{os.pathsep}{ROOT}")
    assert rc == 2 and len(lines) == 1, lines
    assert "NLLB_MODEL_DIR is set but the Python module ctranslate2 cannot be imported" \
        in lines[0], lines


def test_an_nllb_dir_without_a_model_fails_the_start(spawn, tmp_path):
    rc, lines = start_fails(spawn, "nllb_adapter", NLLB_MODEL_DIR=str(tmp_path))
    assert rc == 2 and len(lines) == 1 and "holds no model.bin" in lines[0], lines


# ------------------------------------------------------------------ missing engine
def test_a_missing_apertium_is_exit_2_naming_the_package(spawn, tmp_path):
    bare = tmp_path / "bin"  # a PATH with a shell and nothing else
    bare.mkdir()
    (bare / "sh").symlink_to("/bin/sh")
    for module in ("translation_service", "fixed_streaming_translation", "nllb_adapter"):
        rc, lines = start_fails(spawn, module, PATH=str(bare))
        assert rc == 2 and len(lines) == 1, (module, lines)
        assert "install the Debian package apertium" in lines[0], lines


def test_no_installed_pair_is_exit_2_naming_a_pair_package(spawn, tmp_path):
    (tmp_path / "modes").mkdir()
    rc, lines = start_fails(spawn, "translation_service", APERTIUM_DATA_DIR=str(tmp_path))
    assert rc == 2 and len(lines) == 1, lines
    assert "no Apertium translation pair is installed" in lines[0] and \
        "apertium-eng-spa" in lines[0], lines
