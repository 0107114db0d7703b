"""Value converters: what each accepts, what it refuses, and that a refusal names the bad
value and what is allowed (the catalog adds file, line and field to these messages)."""
from __future__ import annotations

import pytest

from unified_core import types as t


def refusal(conv, value) -> str:
    with pytest.raises(ValueError) as info:
        conv(value)
    return str(info.value)


# -- integers and ranges ---------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [(0, 0), (-7, -7), ("42", 42), (" 42 ", 42), ("+3", 3), ("-3", -3)])
def test_integer_accepts_ints_and_integer_strings(value, expected):
    assert t.integer(value) == expected


@pytest.mark.parametrize("value, shown", [("abc", "'abc'"), ("4.5", "'4.5'"), (4.5, "4.5"), ("", "''"),
                                          (True, "True"), (None, "None"), ([1], "[1]"), ("1e3", "'1e3'")])
def test_integer_refuses_anything_else_and_names_it(value, shown):
    msg = refusal(t.integer, value)
    assert msg.startswith(f"{shown} is not an integer")
    assert "allowed: an integer" in msg


@pytest.mark.parametrize("lo, hi, allowed", [(1, 10, "an integer 1-10"), (5, None, "an integer >= 5"),
                                             (None, 9, "an integer <= 9")])
def test_integer_out_of_range_names_the_value_and_the_range(lo, hi, allowed):
    too_low, too_high = (lo - 1 if lo is not None else None), (hi + 1 if hi is not None else None)
    for bad in (too_low, too_high):
        if bad is not None:
            assert refusal(lambda v: t.integer(v, lo, hi), bad) == f"{bad} is out of range; allowed: {allowed}"


@pytest.mark.parametrize("value", [1024, 7200, "8080", 65535])
def test_port_accepts_unprivileged_ports(value):
    assert t.port(value) == int(value)


@pytest.mark.parametrize("value", [0, 80, 1023, 65536, 70000, -1])
def test_port_refuses_privileged_and_impossible_ports(value):
    assert refusal(t.port, value) == f"{value} is out of range; allowed: an integer 1024-65535"


def test_port_as_a_word_is_not_an_integer():
    assert refusal(t.port, "abc") == "'abc' is not an integer; allowed: an integer 1024-65535"


@pytest.mark.parametrize("conv, good, bad, allowed", [
    (t.percent, (1, 50, 100, "80"), (0, 101, 150), "an integer 1-100"),
    (t.positive_int, (1, 4096), (0, -5), "an integer >= 1"),
    (t.non_negative_int, (0, 4000), (-1,), "an integer >= 0"),
], ids=["percent", "positive_int", "non_negative_int"])
def test_bounded_integers(conv, good, bad, allowed):
    for v in good:
        assert conv(v) == int(v)
    for v in bad:
        assert refusal(conv, v) == f"{v} is out of range; allowed: {allowed}"


# -- fractions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [(0, 0.0), (1, 1.0), (0.7, 0.7), ("0.25", 0.25)])
def test_fraction_accepts_numbers_from_zero_to_one(value, expected):
    assert t.fraction(value) == expected


@pytest.mark.parametrize("value, start", [(1.5, "1.5 is out of range"), (-0.1, "-0.1 is out of range"),
                                          ("high", "'high' is not a number"), (True, "True is not a number"),
                                          (None, "None is not a number"), ("nan", "nan is out of range")])
def test_fraction_refuses_and_names_the_range(value, start):
    msg = refusal(t.fraction, value)
    assert msg.startswith(start) and msg.endswith("allowed: a number 0.0-1.0")


# -- booleans -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, "true", "TRUE", "yes", "on", "1", " True "])
def test_boolean_true_spellings(value):
    assert t.boolean(value) is True


@pytest.mark.parametrize("value", [False, "false", "no", "off", "0", "Off"])
def test_boolean_false_spellings(value):
    assert t.boolean(value) is False


@pytest.mark.parametrize("value, shown", [("maybe", "'maybe'"), (1, "1"), (0, "0"), (None, "None"), ("", "''")])
def test_boolean_refuses_other_values_and_lists_the_spellings(value, shown):
    assert refusal(t.boolean, value) == (f"{shown} is not a boolean; "
                                         "allowed: true/false (also yes/no, on/off, 1/0)")


# -- durations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [(0, 0.0), (5, 5.0), (2.5, 2.5), ("30", 30.0), ("30s", 30.0),
                                            ("500ms", 0.5), ("5m", 300.0), ("5min", 300.0), ("1h", 3600.0),
                                            ("1.5h", 5400.0), (" 10 s ", 10.0)])
def test_duration_in_seconds(value, seconds):
    assert t.duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value, start", [("5 parsecs", "'5 parsecs' is not a duration"),
                                          ("1d", "'1d' is not a duration"), ("-5s", "'-5s' is not a duration"),
                                          (-3, "-3 is negative"), (True, "True is not a duration"),
                                          (None, "None is not a duration"), ([5], "[5] is not a duration"),
                                          (float("nan"), "nan is not a duration"),
                                          (float("inf"), "inf is not a duration")])
def test_duration_refusals_show_examples(value, start):
    msg = refusal(t.duration, value)
    assert msg.startswith(start)
    assert msg.endswith("allowed: seconds as a number >= 0, or a string like '500ms', '30s', '5m', '1h'")


# -- names --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ServiceRegistry", "ObservabilityHub_PC2", "A", "a1_b2", "X" * 64])
def test_agent_name_accepts_systemd_friendly_names(name):
    assert t.agent_name(name) == name


@pytest.mark.parametrize("name, shown", [("Bad-Name", "'Bad-Name'"), ("9Lives", "'9Lives'"),
                                         ("Bad Name", "'Bad Name'"), ("Bad@Name", "'Bad@Name'"),
                                         ("Bad.Name", "'Bad.Name'"), ("_Hidden", "'_Hidden'"), ("", "''"),
                                         ("X" * 65, repr("X" * 65)), (42, "42"), (None, "None")])
def test_agent_name_refuses_names_systemd_or_our_tools_would_mangle(name, shown):
    msg = refusal(t.agent_name, name)
    assert msg.startswith(f"{shown} is not a valid agent (systemd instance) name")
    assert "allowed: a letter, then letters, digits or '_' (at most 64 characters; no '-', '.', '@' or spaces)" in msg


@pytest.mark.parametrize("name", ["core", "speech_io", "pc2_core", "g1"])
def test_identifier_accepts_snake_case(name):
    assert t.identifier(name) == name


@pytest.mark.parametrize("name", ["Core", "speech-io", "1st", "_x", "", "with space", "y" * 65, 3])
def test_identifier_refuses_other_spellings(name):
    msg = refusal(t.identifier, name)
    assert msg.startswith(f"{name!r} is not a valid name" if isinstance(name, str) else f"{name} is not")
    assert "allowed: lower-case letters, digits and '_', starting with a letter" in msg


# -- log level, strings, addresses, choices -----------------------------------------------------

@pytest.mark.parametrize("value, level", [("DEBUG", "DEBUG"), ("info", "INFO"), (" Warning ", "WARNING"),
                                          ("error", "ERROR"), ("CRITICAL", "CRITICAL")])
def test_log_level_is_normalised_to_upper_case(value, level):
    assert t.log_level(value) == level


@pytest.mark.parametrize("value, shown", [("LOUD", "'LOUD'"), ("TRACE", "'TRACE'"), (10, "10"), (None, "None")])
def test_log_level_refusal_lists_the_levels(value, shown):
    assert refusal(t.log_level, value) == f"{shown} is not a log level; allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"


def test_string_must_be_non_empty_text():
    assert t.string("mainpc") == "mainpc"
    for bad, shown in (("", "''"), ("   ", "'   '"), (5, "5"), (None, "None")):
        assert refusal(t.string, bad) == f"{shown} is not a non-empty string; allowed: a non-empty string"


@pytest.mark.parametrize("value, expected", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("::1", "::1"),
                                             ("0:0:0:0:0:0:0:1", "::1")])
def test_bind_address_accepts_ip_addresses(value, expected):
    assert t.bind_address(value) == expected


@pytest.mark.parametrize("value, shown", [("localhost", "'localhost'"), ("256.0.0.1", "'256.0.0.1'"),
                                          ("", "''"), (127, "127")])
def test_bind_address_refuses_hostnames_and_nonsense(value, shown):
    assert refusal(t.bind_address, value) == (f"{shown} is not an IP address; "
                                              "allowed: an IPv4 or IPv6 address such as 127.0.0.1")


def test_choice_accepts_only_the_listed_words_exactly():
    assert t.choice("cloud", ("local", "cloud")) == "cloud"
    assert refusal(lambda v: t.choice(v, ("local", "cloud")), "gpu") == "'gpu' is not allowed; allowed: local, cloud"
    assert refusal(lambda v: t.choice(v, ("local", "cloud")), "Cloud").startswith("'Cloud' is not allowed")
    assert refusal(lambda v: t.choice(v, ("local",)), None) == "None is not allowed; allowed: local"
