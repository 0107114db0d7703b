"""The engine in process: slot value parsers (numbers, durations, dates, times as spoken),
template expansion, training as a function with a versioned model out."""
from __future__ import annotations

import datetime as dt
import sys

import pytest

from .conftest import CATALOG, INTENTS, NOW


@pytest.fixture(scope="module")
def nlu_pkg(sdk_path):  # noqa: F811
    if str(sdk_path) not in sys.path:
        sys.path.insert(0, str(sdk_path))
    import unified_agents.builtin.nlu as pkg

    return pkg


from ..sdk.harness import sdk_path  # noqa: E402,F401  (fixture)


@pytest.mark.parametrize("words,value", [
    ("five", 5), ("twenty five", 25), ("one hundred and five", 105), ("42", 42),
    ("two thousand and twenty six", 2026), ("a hundred", 100), ("1.5", 1.5),
    ("five five", None), ("twenty thirty", None), ("and", None), ("", None),
])
def test_numbers_in_digits_or_words(nlu_pkg, words, value):
    from unified_agents.builtin.nlu import values

    assert values.number(words.split()) == value


@pytest.mark.parametrize("words,seconds", [
    ("5 minutes", 300), ("an hour and a half", 5400), ("one and a half hours", 5400),
    ("half an hour", 1800), ("2 hours 30 minutes", 9000), ("two hours and ten minutes", 7800),
    ("ninety seconds", 90), ("a minute", 60), ("1.5 hours", 5400),
    ("minutes", None), ("five", None), ("five minutes please", None),
])
def test_durations_as_spoken(nlu_pkg, words, seconds):
    from unified_agents.builtin.nlu import values

    assert values.duration(words.split()) == seconds


@pytest.mark.parametrize("words,iso", [
    ("today", "2026-12-03"), ("tomorrow", "2026-12-04"), ("the day after tomorrow", "2026-12-05"),
    ("on saturday", "2026-12-05"), ("thursday", "2026-12-10"),
    ("december twenty fifth", "2026-12-25"), ("the 3rd of january", "2027-01-03"),
    ("25 december", "2026-12-25"), ("2027-02-28", "2027-02-28"), ("february 30th", None),
    ("someday", None),
])
def test_dates_relative_to_now(nlu_pkg, words, iso):
    from unified_agents.builtin.nlu import values

    assert values.date(words.split(), NOW.date()) == iso


@pytest.mark.parametrize("words,hhmm", [
    ("5 pm", "17:00"), ("17:30", "17:30"), ("half past seven", "07:30"),
    ("quarter to eight", "07:45"), ("noon", "12:00"), ("at seven thirty", "07:30"),
    ("12 am", "00:00"), ("25:00", None), ("seven o'clock", "07:00"),
])
def test_times_of_day(nlu_pkg, words, hhmm):
    from unified_agents.builtin.nlu import values

    assert values.time_of_day(words.split()) == hhmm


def test_templates_expand_alternatives_optional_words_and_slots(nlu_pkg):
    from unified_agents.builtin.nlu.intents import parse_template

    got = parse_template("(what's|what is) the time [now]", {})
    assert sorted(" ".join(s) for s in got) == ["what is the time", "what is the time now"]
    got = parse_template("set [a] timer for {d}", {"d": "duration"})
    assert ("set", "timer", "for", ("slot", "d")) in got and len(got) == 2


def test_training_is_a_function_with_a_versioned_model_out(nlu_pkg):
    intents = nlu_pkg.load_dir(INTENTS)
    agents, profiles = nlu_pkg.catalog_names(CATALOG)
    a = nlu_pkg.train(nlu_pkg.TrainingData(intents, agents, profiles))
    b = nlu_pkg.train(nlu_pkg.TrainingData(intents, agents, profiles))
    c = nlu_pkg.train(nlu_pkg.TrainingData(intents, agents, profiles[:1]))
    assert a.version == b.version != c.version  # same data, same version; new data, new one
    # the new model knows only what it was trained with
    assert a.parse("switch to the vision profile", NOW)["intent"] == "SwitchProfile"
    assert c.parse("switch to the vision profile", NOW)["slots"] == {}


def test_dev_set_stays_above_the_targets(nlu_pkg, model):
    # the dev set is what the thresholds were tuned on (the evaluation set is measured by
    # bench/bench_nlu.py only): a regression in the engine shows here first
    import pathlib

    sys.path.insert(0, str(pathlib.Path(INTENTS).parents[2] / "bench"))
    import bench_nlu

    items = bench_nlu.read_set(str(pathlib.Path(INTENTS).parents[2] / "tests/data/nlu/dev.tsv"))
    r = bench_nlu.evaluate(model, items)
    assert r["intent_accuracy"] >= 0.9 and r["slot_f1"] >= 0.9, r["misses"]


def test_now_defaults_to_the_clock(model):
    r = model.parse("what day is tomorrow")
    assert r["slots"]["date"]["value"] == (dt.date.today() + dt.timedelta(days=1)).isoformat()
