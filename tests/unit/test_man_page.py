"""unified-ctl(1) is generated from the Click command tree (scripts/dev/man_page.py): the
shipped page lists every command and option, and renders without a groff warning."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess

import click

from unified_ctl.cli import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "packaging" / "debian" / "unified-ctl.1"


def _script():
    spec = importlib.util.spec_from_file_location("man_page", ROOT / "scripts" / "dev" / "man_page.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _walk(cmd, path):
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        if not sub.hidden:
            yield path + [name], sub
            yield from _walk(sub, path + [name])


def test_shipped_man_page_is_what_the_click_tree_renders():
    assert _script().render() == PAGE.read_text(), \
        "packaging/debian/unified-ctl.1 is stale: run python3 scripts/dev/man_page.py"


def test_every_command_and_visible_option_is_in_the_page():
    page = PAGE.read_text()
    commands = list(_walk(cli, ["unified-ctl"]))
    assert len(commands) >= 45
    for path, cmd in commands:
        assert f'.SS "{" ".join(path)} '.replace("-", "\\-") in page, path
        section = page.split(f'.SS "{" ".join(path)} '.replace("-", "\\-"), 1)[1].split(".SS", 1)[0]
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                for opt in p.opts:
                    assert f"\\fB{opt}\\fR".replace("-", "\\-") in section, (path, opt)


def test_a_new_option_changes_the_rendered_page(monkeypatch):
    mod = _script()
    before = mod.render()
    switch = cli.commands["profile"].commands["switch"]
    monkeypatch.setattr(switch, "params", switch.params + [
        click.Option(["--colour"], is_flag=True, help="Paint the plan.")])
    after = mod.render()
    assert after != before and "\\fB\\-\\-colour\\fR\nPaint the plan." in after


def test_exit_status_section_lists_the_codes_of_errors_py():
    from unified_core.errors import EXIT_STATUS

    section = PAGE.read_text().split(".SH EXIT STATUS\n", 1)[1].split(".SH", 1)[0]
    assert [ln[3:] for ln in section.splitlines() if ln.startswith(".B ")] == [str(c) for c in EXIT_STATUS]


def test_the_page_renders_without_warnings_as_lintian_checks_it():
    env = dict(os.environ, LC_ALL="C.UTF-8", MANROFFSEQ="", MANWIDTH="80")
    p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(PAGE)],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == ""
    out = subprocess.run(["man", "-l", str(PAGE)], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    text = re.sub(".\b", "", out)   # bold and underline as a terminal overstrikes them
    assert "unified-ctl profile switch [OPTIONS] NAME" in text
    assert "EXIT STATUS" in text and "--dry-run" in text
