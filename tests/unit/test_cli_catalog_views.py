"""`profile diff A B` and `config show`: read from the catalog alone, with no systemd at all."""
from __future__ import annotations

import json

import pytest
import yaml

from unified_core import runtime
from unified_core.catalog import load_catalog
from unified_ctl import cli as cli_mod

from .test_fleet_ops import cat, ctl, env, out  # noqa: F401  (fixtures)


@pytest.fixture()
def no_systemd(env, monkeypatch):
    """Any use of the systemd seam fails the test: these commands must work offline."""
    def refuse(self):
        raise AssertionError("systemd was asked")

    monkeypatch.setattr(cli_mod.Ctx, "sd", property(refuse))
    return env


def test_profile_diff_lists_added_and_removed_agents_autoload_and_timeouts(no_systemd, cat):
    res = ctl("profile", "diff", "core", "vision", "--json")
    assert res.exit_code == 0, out(res)
    d = json.loads(res.stdout)
    core, vision = cat.profiles["core"], cat.profiles["vision"]
    assert [a["name"] for a in d["added"]] == [n for n in vision.agents if n not in core.agents]
    assert [a["name"] for a in d["removed"]] == [n for n in core.agents if n not in vision.agents]
    assert d["autoload"] == {"added": ["FaceRecognitionAgent", "VisionProcessingAgent"], "removed": []}
    assert {a["name"]: a["start"] for a in d["added"]}["FaceRecognitionAgent"] == "service (autoload)"
    assert d["start_timeout_s"] == {"from": 60.0, "to": 90.0}
    assert d["unchanged"] == len(set(core.agents) & set(vision.agents))


def test_profile_diff_the_other_way_round_swaps_added_and_removed(no_systemd):
    there = json.loads(ctl("profile", "diff", "core", "learning", "--json").stdout)
    back = json.loads(ctl("profile", "diff", "learning", "core", "--json").stdout)
    assert [a["name"] for a in there["added"]] == [a["name"] for a in back["removed"]]
    assert there["autoload"]["added"] == back["autoload"]["removed"]


def test_profile_diff_text(no_systemd):
    res = ctl("profile", "diff", "core", "vision")
    assert res.exit_code == 0, out(res)
    assert "+ FaceRecognitionAgent  (service (autoload))" in res.stdout
    assert "start timeout: 60 s -> 90 s" in res.stdout
    assert "autoload: +FaceRecognitionAgent +VisionProcessingAgent" in res.stdout


def test_profile_diff_of_an_unknown_profile_names_the_profiles(no_systemd):
    res = ctl("profile", "diff", "core", "vison")
    assert res.exit_code == 1
    assert res.stderr.strip() == "Error: unknown profile 'vison'; allowed: core, vision, learning, tutoring, full"


def _dropin(env, text: str, name: str = "50-test.yaml"):
    d = env / "etc" / "conf.d"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d / name


def test_config_show_is_the_merged_catalog_and_loads_as_the_same_catalog(no_systemd, tmp_path):
    dropin = _dropin(no_systemd, "agents:\n  MemoryClient:\n    port: 7999\n")
    res = ctl("config", "show", "--no-overrides")
    assert res.exit_code == 0, out(res)
    assert res.stdout.startswith(f"# unified-ctl config show: {no_systemd / 'etc' / 'unified.yaml'} + {dropin}\n")
    doc = yaml.safe_load(res.stdout)
    assert doc["agents"]["MemoryClient"]["port"] == 7999
    shown = tmp_path / "shown.yaml"
    shown.write_text(res.stdout)
    again, merged = load_catalog(str(shown), dropins=False), load_catalog(str(no_systemd / "etc" / "unified.yaml"))
    assert dict(again.agents) == dict(merged.agents) and dict(again.profiles) == dict(merged.profiles)
    assert again.settings == merged.settings


def test_config_show_writes_the_overrides_in_force_and_the_selected_profile_into_settings(no_systemd):
    runtime.add_launch_environment({"LOG_LEVEL": "DEBUG", "MAX_THREADS": "4"})
    from unified_core import profiles

    profiles.write_selected("vision")
    res = ctl("config", "show")
    assert res.exit_code == 0, out(res)
    assert "# overrides in force (settings.*; `unified-ctl overrides clear` drops them): LOG_LEVEL=DEBUG, " \
           "MAX_THREADS=4" in res.stdout
    s = yaml.safe_load(res.stdout)["settings"]
    assert (s["log_level"], s["limits"]["max_threads"], s["profile"]) == ("DEBUG", 4, "vision")
    plain = yaml.safe_load(ctl("config", "show", "--no-overrides").stdout)["settings"]
    assert (plain["log_level"], plain["profile"]) == ("INFO", "core")
    d = json.loads(ctl("config", "show", "--json").stdout)
    assert d["overrides"] == {"LOG_LEVEL": "DEBUG", "MAX_THREADS": "4"} and d["selected_profile"] == "vision"
    assert d["catalog"]["settings"]["log_level"] == "DEBUG"


def test_config_show_refuses_an_invalid_catalog_naming_file_line_and_field(no_systemd):
    dropin = _dropin(no_systemd, "agents:\n  MemoryClient:\n    port: abc\n")
    res = ctl("config", "show")
    assert res.exit_code == 1 and "Traceback" not in out(res)
    assert f"{dropin}:3: agents.MemoryClient.port: 'abc' is not an integer" in res.stderr
    assert res.stdout == ""
