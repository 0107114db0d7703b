"""Shell completion: the shipped bash, zsh and fish shims are Click's (scripts/dev/completions.py),
and names complete from the catalog, in the real shells for zsh and fish."""
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


# -- zsh and fish: the shipped files, in the real shells --------------------------------------
COMPLETIONS = ROOT / "packaging" / "completions"


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("completions", ROOT / "scripts" / "dev" / "completions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ctl_on_path(tmp_path) -> dict:
    """An environment whose `unified-ctl` is this tree's, reading the shipped catalog (the
    shims run `unified-ctl` from PATH, as the installed ones do)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "unified-ctl").write_text(
        f'#!/bin/sh\nPYTHONPATH={ROOT} UNIFIED_ETC={ROOT}/etc/unified exec {sys.executable} -m unified_ctl "$@"\n')
    (bindir / "unified-ctl").chmod(0o755)
    return {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}


def test_shipped_zsh_and_fish_files_are_what_click_generates():
    mod = _script()
    assert (COMPLETIONS / "_unified-ctl").read_text() == mod.render("zsh")
    assert (COMPLETIONS / "unified-ctl.fish").read_text() == mod.render("fish")
    assert (COMPLETIONS / "unified-ctl").read_text() == mod.render("bash")


def test_fish_completes_agent_and_profile_names_from_the_catalog(tmp_path):
    env = _ctl_on_path(tmp_path)
    script = (f"source {COMPLETIONS / 'unified-ctl.fish'}; complete -C 'unified-ctl agent stop Tut'; "
              "echo SEP; complete -C 'unified-ctl profile switch le'")
    out = subprocess.run(["fish", "--no-config", "-c", script], env=env, capture_output=True,
                         text=True, timeout=120).stdout
    agents, profiles = out.split("SEP\n")
    assert agents.split() == ["TutorAgent", "TutoringAgent"]
    assert profiles.split() == ["learning"]


def test_zsh_autoloads_the_file_from_its_fpath_and_completes_at_the_first_tab(tmp_path):
    """An interactive zsh (in a pseudo-terminal, zpty) with the file in its fpath as in
    /usr/share/zsh/vendor-completions: one Tab after `profile switch lea` writes `learning`."""
    fpath = tmp_path / "vendor-completions"
    fpath.mkdir()
    (fpath / "_unified-ctl").write_text((COMPLETIONS / "_unified-ctl").read_text())
    driver = tmp_path / "drive.zsh"
    driver.write_text(f"""
zmodload zsh/zpty
zpty z 'PS1="> " TERM=dumb zsh -f -i'
zpty -w z 'fpath=({fpath} $fpath); autoload -U compinit; compinit -u -D; print READY'
zpty -r z line '*READY*'
zpty -w -n z $'unified-ctl profile switch lea\\t'
zpty -r z out '*switch learning *'
print -r -- "COMPLETED: $out"
zpty -d z
""")
    env = _ctl_on_path(tmp_path)
    p = subprocess.run(["timeout", "120", "zsh", "-f", str(driver)], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, f"zsh did not complete 'lea' to 'learning': {p.stdout!r} {p.stderr!r}"
    assert "unified-ctl profile switch learning " in p.stdout
