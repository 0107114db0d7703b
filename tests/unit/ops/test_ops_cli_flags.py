"""One meaning per flag across unified-ctl: -n is --lines, -o an output format, -i an interval;
`logs` takes journalctl's --until, -g and `-- ARGS`; JSON names an agent "name" everywhere."""
from __future__ import annotations

import json

from click.testing import CliRunner

from unified_ctl import cli as cli_mod
from unified_core import paths

from .test_ops_capture import sd  # noqa: F401  (fixture: the journal-recording systemd fake)


def ctl(*args):
    return CliRunner(mix_stderr=False).invoke(cli_mod.cli, ["-c", paths.catalog_file(), *args])


def journal_call(sd) -> list[str]:
    return list(next(c for c in sd.calls if c[0] == "journal-exec")[1])


def test_logs_passes_until_grep_and_everything_after_double_dash_to_journalctl(sd):
    res = ctl("logs", "ServiceRegistry", "-n", "5", "-S", "1 hour ago", "--until", "now", "-g", "disk full",
              "-o", "cat", "--", "--reverse", "--output-fields=MESSAGE")
    assert res.exit_code == 0, res.output
    assert journal_call(sd) == [
        "journalctl", "--no-pager", "-u", "unified-agent@ServiceRegistry.service",
        "-u", "unified-agent@ServiceRegistry.socket", "--since", "1 hour ago", "--until", "now",
        "--grep", "disk full", "-n", "5", "-o", "cat", "--reverse", "--output-fields=MESSAGE"]


def test_logs_double_dash_without_agents_is_every_agents_journal(sd):
    res = ctl("logs", "-U", "today", "--", "-x")
    assert res.exit_code == 0, res.output
    args = journal_call(sd)
    assert args[-1] == "-x" and "unified-agent@*" in args and args[args.index("--until") + 1] == "today"


def test_journalctl_arguments_go_with_logs_show_only(sd):
    res = ctl("logs", "usage", "--", "--reverse")
    assert res.exit_code == 2 and "`-- JOURNALCTL-ARGS` goes with `logs [AGENT]...` only" in res.stderr


def test_logs_help_shows_the_options_of_showing_logs(sd):
    text = ctl("logs", "--help").stdout
    for opt in ("--follow", "--since", "--until", "--grep", "--lines", "--output", "--group"):
        assert opt in text, opt


def test_an_agent_named_like_a_logs_verb_is_reached_with_logs_show(sd):
    res = ctl("logs", "show", "ServiceRegistry")
    assert res.exit_code == 0 and "unified-agent@ServiceRegistry.service" in journal_call(sd)


def test_health_interval_is_i_and_n_is_refused_saying_so(sd):
    res = ctl("health", "-i", "2", "--json")
    assert "status" in json.loads(res.stdout), res.stderr
    res = ctl("health", "--interval", "2", "--json")
    assert "status" in json.loads(res.stdout), res.stderr
    res = ctl("health", "-w", "-n", "2")
    assert res.exit_code == 2
    assert "-n is now -i here: -n means --lines in every unified-ctl command" in res.stderr


def test_debug_capture_writes_to_output_file_and_keeps_the_old_spellings_working(sd, ops_env):
    for opt in ("-O", "--output-file", "--output", "-o"):
        dest = ops_env / f"cap{opt}.json"
        res = ctl("debug", "capture", opt, str(dest))
        assert res.exit_code == 0, res.output
        assert json.loads(dest.read_text())["systemd"] is not None
        assert ("-O FILE (--output-file)" in res.stderr) == (opt == "-o")
    text = ctl("debug", "capture", "--help").stdout
    assert "--output-file" in text and "--output " not in text and "-o," not in text


def test_every_command_that_shows_journal_lines_calls_the_count_n_lines():
    """-n is --lines wherever it exists (journalctl's meaning)."""
    import click

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    for path, cmd in walk(cli_mod.cli, []):
        for p in cmd.params:
            if isinstance(p, click.Option) and "-n" in p.opts and not p.hidden:
                assert "--lines" in p.opts, path
            if isinstance(p, click.Option) and "-o" in p.opts and not p.hidden:
                assert "--output" in p.opts and p.metavar == "FORMAT", path
