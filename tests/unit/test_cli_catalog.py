"""`unified-ctl validate`, `profile list|show` and the runbook's scripts/validate_config.py:
what an operator sees, and the exit codes scripts rely on (0 valid, 1 invalid, no traceback)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from unified_ctl.cli import cli, main

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REAL = str(ROOT / "etc" / "unified" / "unified.yaml")
MINI = (HERE / "catalogs" / "mini.yaml").read_text()
RUNBOOK_VARS = ("PROFILE", "LOG_LEVEL", "DEBUG_MODE", "CPU_PERCENT", "MEMORY_MB", "MAX_THREADS", "VRAM_LIMIT_MB",
                "ENABLE_METRICS", "ENABLE_TRACING", "ENABLE_DATA_OPTIMIZER", "CONFIG", "UNIFIED_DEBUG")
SUMMARY = "77 agents (24 essential, 53 optional), 5 profiles"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path_factory):
    """Neither the operator's shell (PROFILE=…, CONFIG=…) nor this machine's /etc/unified
    state (a switched-to profile) may leak into these tests."""
    for var in RUNBOOK_VARS:
        monkeypatch.delenv(var, raising=False)
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("UNIFIED_ETC", str(state / "etc"))
    monkeypatch.setenv("UNIFIED_RUN_DIR", str(state / "run"))
    monkeypatch.setenv("UNIFIED_RUNTIME_UNITS", str(state / "units"))
    monkeypatch.setenv("COLUMNS", "200")


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def broken(tmp_path) -> tuple[str, int]:
    """A catalog whose Hub port is 'abc'; returns (path, line of that port)."""
    text = MINI.replace("    port: 7201\n", "    port: abc\n")
    path = tmp_path / "unified.yaml"
    path.write_text(text)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if l == "    port: abc")
    return str(path), line


# -- validate ------------------------------------------------------------------------------------

def test_validate_real_catalog_says_ok_with_the_counts():
    result = invoke("validate", REAL)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {REAL}: {SUMMARY} (core 16, vision 21, learning 34, tutoring 26, full 77)")


def test_validate_without_file_uses_the_config_option_and_never_the_config_variable(tmp_path):
    assert SUMMARY in invoke("--config", REAL, "validate").output
    # $CONFIG is the staged rollout's (`CONFIG=FILE unified-ctl profile switch`): validate
    # reads the installed catalog, here none
    result = invoke("validate", env={"CONFIG": REAL})
    assert result.exit_code == 1 and SUMMARY not in result.output
    assert os.environ["UNIFIED_ETC"] in result.output


def test_validate_malformed_exits_1_with_file_line_field_and_no_traceback(broken):
    path, line = broken
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert "invalid configuration (1 problem):" in result.output
    assert f"{path}:{line}: agents.Hub.port: 'abc' is not an integer; allowed: an integer 1024-65535" in result.output
    assert "Traceback" not in result.output


def test_validate_json_when_valid():
    result = invoke("validate", "--json", REAL)
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True and data["path"] == REAL
    assert (data["agents"], data["essential"], data["optional"]) == (77, 24, 53)
    assert data["profiles"] == {"core": 16, "vision": 21, "learning": 34, "tutoring": 26, "full": 77}


def test_validate_real_catalog_prints_no_warning(capsys):
    assert main(["validate", REAL]) == 0
    assert capsys.readouterr().err == ""
    assert json.loads(invoke("validate", "--json", REAL).output)["warnings"] == []


def test_validate_warns_about_an_agent_on_a_well_known_exporter_port_and_exits_0(tmp_path, capsys):
    path = tmp_path / "unified.yaml"
    path.write_text(MINI.replace("port: 7201\n", "port: 9100\n"))
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("OK ")
    line = MINI.splitlines().index("    port: 7201") + 1
    assert err == (
        f"warning: {path}:{line}: agents.Hub.port: Hub is on port 9100, where the node exporter "
        "(prometheus-node-exporter, recommended by Debian's prometheus) listens by default: once "
        "that is installed one of them cannot bind; move the agent to a free port\n")
    data = json.loads(invoke("validate", "--json", str(path)).output)
    assert data["ok"] is True and [(w["field"], w["line"]) for w in data["warnings"]] == [("agents.Hub.port", line)]


def test_validate_json_when_invalid_lists_the_problems(broken):
    path, line = broken
    result = invoke("validate", "--json", path)
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False and data["path"] == path
    assert data["problems"] == [{"file": path, "line": line, "field": "agents.Hub.port",
                                 "message": "'abc' is not an integer; allowed: an integer 1024-65535"}]


def test_validate_names_the_dropins_it_merged_and_can_skip_them(tmp_path):
    (tmp_path / "unified.yaml").write_text(MINI)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-x.yaml").write_text("settings:\n  log_level: LOUD\n")
    path = str(tmp_path / "unified.yaml")
    result = invoke("validate", path)
    assert result.exit_code == 1
    assert f"{tmp_path / 'conf.d' / '10-x.yaml'}:2: settings.log_level: 'LOUD'" in result.output
    result = invoke("validate", "--no-dropins", path)
    assert result.exit_code == 0 and "6 agents (3 essential, 3 optional), 4 profiles" in result.output
    (tmp_path / "conf.d" / "10-x.yaml").write_text("settings:\n  log_level: debug\n")
    assert f"drop-ins: {tmp_path / 'conf.d' / '10-x.yaml'}" in invoke("validate", path).output


@pytest.mark.parametrize("args", [("validate", REAL), ("--config", REAL, "profile", "list", "--json"),
                                  ("--config", REAL, "profile", "show", "core", "--json")])
def test_read_only_commands_ignore_the_operators_shell(monkeypatch, args):
    # LOG_LEVEL=verbose belongs to some other tool the operator uses: not configuration
    for var, value in (("LOG_LEVEL", "verbose"), ("CPU_PERCENT", "250"), ("MAX_THREADS", "0"),
                       ("ENABLE_METRICS", "maybe")):
        monkeypatch.setenv(var, value)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "environment" not in result.output


# -- profile list / show -------------------------------------------------------------------------

def test_profile_show_core_json_lists_16_agents():
    result = invoke("--config", REAL, "profile", "show", "core", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "core" and data["count"] == 16 and len(data["agents"]) == 16
    assert data["agents"][0]["name"] == "ServiceRegistry"
    assert {a["start"] for a in data["agents"]} == {"service"}
    assert data["resources"] == {"cpu_percent": 50, "memory_mb": 2048}


def test_profile_show_vision_json_says_which_agents_came_as_dependencies():
    data = json.loads(invoke("--config", REAL, "profile", "show", "vision", "--json").output)
    assert data["count"] == 21
    assert data["via_dependency"] == ["ObservabilityHub_PC2", "MemoryOrchestratorService", "CacheManager"]
    why = {a["name"]: a["why"] for a in data["agents"]}
    assert why["CacheManager"].startswith("dependency of ")
    start = {a["name"]: a["start"] for a in data["agents"]}
    assert start["FaceRecognitionAgent"] == "service (autoload)"
    assert start["CacheManager"] == "socket (dormant)"


def test_profile_list_json_has_five_profiles_with_core_selected():
    result = invoke("--config", REAL, "profile", "list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [(r["name"], r["agents"]) for r in rows] == [("core", 16), ("vision", 21), ("learning", 34),
                                                         ("tutoring", 26), ("full", 77)]
    assert [r["name"] for r in rows if r["selected"]] == ["core"]
    assert rows[2]["autoload"] == ["LearningOrchestrationService", "LearningManager"]
    assert rows[4]["resources"] == {"cpu_percent": 80, "memory_mb": 8192}


def test_profile_list_and_show_print_tables():
    listing = invoke("--config", REAL, "profile", "list")
    assert listing.exit_code == 0
    for name in ("core", "vision", "learning", "tutoring", "full"):
        assert name in listing.output
    show = invoke("--config", REAL, "profile", "show", "vision")
    assert show.exit_code == 0
    assert "profile vision: 21 agents (3 via dependencies)" in show.output
    assert "CacheManager" in show.output


def test_profile_show_unknown_profile_exits_1_with_the_allowed_names():
    result = invoke("--config", REAL, "profile", "show", "nope")
    assert result.exit_code == 1
    assert "unknown profile 'nope'; allowed: core, vision, learning, tutoring, full" in result.output
    assert "Traceback" not in result.output


def test_profile_commands_on_a_malformed_catalog_exit_1(broken):
    path, line = broken
    result = invoke("--config", path, "profile", "list")
    assert result.exit_code == 1 and f"{path}:{line}: agents.Hub.port" in result.output


# -- main(): the console script's exit codes ------------------------------------------------------

def test_main_returns_0_for_a_valid_catalog(capsys):
    assert main(["validate", REAL]) == 0
    assert SUMMARY in capsys.readouterr().out


def test_main_returns_1_for_a_malformed_catalog_and_prints_no_traceback(broken, capsys):
    path, line = broken
    assert main(["validate", path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:{line}: agents.Hub.port" in err and "Traceback" not in err


def test_main_returns_1_for_an_unknown_profile(capsys):
    assert main(["--config", REAL, "profile", "show", "nope"]) == 1
    assert "allowed: core, vision, learning, tutoring, full" in capsys.readouterr().err


def test_main_returns_1_for_a_missing_catalog(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "absent.yaml")]) == 1
    assert "cannot read file" in capsys.readouterr().err


# -- scripts/validate_config.py (the runbook's command) -------------------------------------------

def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in RUNBOOK_VARS}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "validate_config.py"), *args],
                          capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=60)


def test_validate_config_script_exit_0_for_the_real_catalog():
    proc = run_script(REAL)
    assert proc.returncode == 0, proc.stderr
    assert SUMMARY in proc.stdout


def test_validate_config_script_exit_1_for_a_malformed_catalog(broken):
    path, line = broken
    proc = run_script(path)
    assert proc.returncode == 1
    assert f"{path}:{line}: agents.Hub.port: 'abc' is not an integer" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_validate_config_script_json_exit_1_for_a_malformed_catalog(broken):
    path, line = broken
    proc = run_script("--json", path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["problems"][0]["line"] == line
