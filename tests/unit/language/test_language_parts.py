"""The language agents' parts in process: the pair table read from a modes directory, language
codes and names, and the sentence buffer of the streaming agents."""
from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="module")
def lang(sdk_path):  # noqa: F811
    if str(sdk_path) not in sys.path:
        sys.path.insert(0, str(sdk_path))
    from unified_agents.builtin.language import apertium, languages, segments

    return apertium, languages, segments


def test_pairs_are_the_translation_modes_of_the_directory(lang, tmp_path):
    apertium, _, _ = lang
    (tmp_path / "modes").mkdir()
    for m in ("eng-spa", "spa-eng", "spa-eng_US", "en-gl", "eng-spa-tagger", "xx-yy",
              "README"):
        (tmp_path / "modes" / f"{m}.mode").write_text("")
    pairs = apertium.read_pairs(str(tmp_path))
    assert [(p.mode, p.source, p.target, p.variant) for p in pairs] == [
        ("en-gl", "eng", "glg", ""), ("eng-spa", "eng", "spa", ""), ("spa-eng", "spa", "eng", ""),
        ("spa-eng_US", "spa", "eng", "US")]
    assert apertium.read_pairs(str(tmp_path / "none")) == []


def test_the_plain_direction_is_preferred_to_a_variant(lang, tmp_path):
    apertium, _, _ = lang
    (tmp_path / "modes").mkdir()
    for m in ("spa-eng_US", "spa-eng"):
        (tmp_path / "modes" / f"{m}.mode").write_text("")
    engine = apertium.Apertium("/bin/false", str(tmp_path))
    assert engine.find("es", "english").mode == "spa-eng"
    assert engine.find("es", "eng_US").mode == "spa-eng_US"
    with pytest.raises(apertium.TranslationFailed) as e:
        engine.find("spa", "cat")
    assert e.value.status == 400 and "no Apertium pair spa-cat" in e.value.message


@pytest.mark.parametrize("given,code", [("en", "eng"), ("ENG", "eng"), ("English", "eng"),
                                        ("pt-BR", "por"), ("hr", "hbs"), ("castilian", "spa"),
                                        ("klingon", None), ("", None)])
def test_codes_and_names_map_to_one_code(lang, given, code):
    _, languages, _ = lang
    assert languages.canonical(given) == code


def test_sentences_close_at_their_end_marks_and_the_rest_waits(lang):
    _, _, segments = lang
    b = segments.SentenceBuffer(max_pending=100)
    assert b.add("Hello there. How are") == ["Hello there."] and b.pending == "How are"
    assert b.add("you today? I am") == ["How are you today?"]
    assert b.add("fine!") == ["I am fine!"] and b.pending == ""
    assert b.add("Version 3.5 is out") == [] and b.pending == "Version 3.5 is out"
    assert b.flush() == ["Version 3.5 is out"] and b.flush() == []


def test_a_long_unpunctuated_text_is_cut_at_a_space(lang):
    _, _, segments = lang
    b = segments.SentenceBuffer(max_pending=20)
    out = b.add("one two three four five six seven eight")
    assert out == ["one two three four"] and b.pending == "five six seven eight", out  # 20: kept
