"""Shell completion: the shipped bash shim is Click's, and names complete from the catalog."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[2]
CATALOG = str(ROOT / "etc/unified/unified.yaml")


def complete(words: str) -> list[str]:
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
               _UNIFIED_CTL_COMPLETE="bash_complete", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "from unified_ctl.cli import cli; cli(prog_name='unified-ctl')"],
                         env=env, capture_output=True, text=True).stdout
    return [line.split(",", 1)[1] for line in out.splitlines() if "," in line]


def test_agent_names_complete_from_the_catalog():
    assert complete(f"unified-ctl -c {CATALOG} agent stop Tut") == ["TutorAgent", "TutoringAgent"]


def test_profile_names_complete_from_the_catalog():
    assert complete(f"unified-ctl -c {CATALOG} profile switch le") == ["learning"]


def test_shipped_bash_shim_is_what_click_generates():
    env = dict(os.environ, _UNIFIED_CTL_COMPLETE="bash_source", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", "from unified_ctl.cli import cli; cli(prog_name='unified-ctl')"],
                         env=env, capture_output=True, text=True).stdout
    assert out == (ROOT / "packaging/completions/unified-ctl").read_text()


def test_group_names_complete_from_the_catalog_for_every_command_taking_agents():
    for cmd in ("status", "agent restart", "logs show", "agent list"):
        assert complete(f"unified-ctl -c {CATALOG} {cmd} --group memory_f") == ["memory_foundation"], cmd


def test_new_commands_complete():
    assert "diff" in complete(f"unified-ctl -c {CATALOG} profile ")
    assert {"list", "show"} <= set(complete(f"unified-ctl -c {CATALOG} agent "))
    assert "show" in complete(f"unified-ctl -c {CATALOG} config ")
