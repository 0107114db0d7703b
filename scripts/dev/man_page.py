#!/usr/bin/python3
"""unified-ctl(1), from the Click command tree and a template.

    python3 scripts/dev/man_page.py           rewrite packaging/debian/unified-ctl.1
    python3 scripts/dev/man_page.py --check   exit 1 if the shipped page is stale

The hand-written sections (DESCRIPTION, FILES, ENVIRONMENT, SEE ALSO) are in
packaging/man/unified-ctl.1.in; its placeholders are filled from the code: @OPTIONS@ (the
root group's options), @COMMANDS@ (every command and subcommand with its usage, help text
and options, as `--help` shows them; hidden ones left out) and @EXIT_STATUS@
(unified_core.errors.EXIT_STATUS). tests/unit/test_man_page.py fails when the shipped page
differs from what this renders: a new command or option needs `man_page.py` run.
"""
from __future__ import annotations

import inspect
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generated  # noqa: E402  (scripts/dev/generated.py, beside this script)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "packaging", "man", "unified-ctl.1.in")
PAGE = os.path.join(ROOT, "packaging", "debian", "unified-ctl.1")
PROG = "unified-ctl"


def esc(text: str) -> str:
    """Plain text as roff: backslashes and minus signs escaped (`--dry-run` must copy and
    paste as ASCII), `code` in bold, and a line never starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in text.split("\n"))


def paragraphs(help_text: str) -> list[str]:
    """Click's help text as roff paragraphs: lines of a paragraph are joined (Click rewraps
    them too); a paragraph after Click's no-rewrap marker (\\b) keeps its lines."""
    out = []
    for para in re.split(r"\n\s*\n", inspect.cleandoc(help_text or "")):
        lines = para.split("\n")
        if lines[0].strip() == "\b":
            body = inspect.cleandoc("\n".join(lines[1:]))
            out.append(".nf\n" + esc(body) + "\n.fi")
        elif para.strip():
            out.append(esc(" ".join(ln.strip() for ln in lines)))
    return out


def option_tag(param, ctx) -> tuple[str, str] | None:
    """(.TP tag, text) of an option as --help lists it; None when hidden."""
    import click

    record = param.get_help_record(ctx)
    if record is None:
        return None
    # short options first, as man pages list them (and the help option's names come from a
    # set in Click 8.1: their order changes from run to run)
    opts = sorted(param.opts, key=lambda o: (o.startswith("--"), o)) + list(param.secondary_opts)
    names = [f"\\fB{esc(o)}\\fR" for o in opts]
    tag = ", ".join(names)
    if isinstance(param, click.Option) and not param.is_flag and not param.count:
        tag += f" \\fI{esc(param.make_metavar())}\\fR"
    return tag, esc(record[1])


def options(cmd, ctx, with_help: bool = False) -> list[str]:
    params = cmd.get_params(ctx) if with_help else cmd.params
    out = []
    for p in params:
        tagged = option_tag(p, ctx) if p.param_type_name == "option" else None
        if tagged:
            out += [".TP", tagged[0], tagged[1]]
    return out


def commands(cmd, ctx) -> list[str]:
    """Every subcommand of cmd, depth first, in name order (as `--help` lists them)."""
    import click

    out: list[str] = []
    for name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sctx = click.Context(sub, info_name=name, parent=ctx)
        usage = " ".join(sub.collect_usage_pieces(sctx))
        out.append(f'.SS "{esc(sctx.command_path)} {esc(usage)}"')
        for i, para in enumerate(paragraphs(sub.help or "")):
            if i:
                out.append(".PP")
            out.append(para)
        out += options(sub, sctx)
        if isinstance(sub, click.Group):
            out += commands(sub, sctx)
    return out


def exit_status() -> list[str]:
    from unified_core.errors import EXIT_STATUS

    out = []
    for code, text in EXIT_STATUS.items():
        out += [".TP", f".B {code}", esc(text[0].upper() + text[1:]) + "."]
    return out


def render() -> str:
    import click

    sys.path.insert(0, ROOT)
    from unified_ctl.cli import cli

    ctx = click.Context(cli, info_name=PROG, **cli.context_settings)
    with open(TEMPLATE) as f:
        # The template's own comment lines (how this page is made) stay out of the page.
        text = "".join(ln for ln in f if not ln.startswith('.\\"'))
    fill = {"@OPTIONS@": options(cli, ctx, with_help=True), "@COMMANDS@": commands(cli, ctx),
            "@EXIT_STATUS@": exit_status()}
    for key, lines in fill.items():
        if key not in text:
            raise SystemExit(f"{TEMPLATE}: {key} is missing")
        text = text.replace(key, "\n".join(lines))
    head = "".join(f'.\\" {ln}\n' for ln in (
        "Generated by scripts/dev/man_page.py from packaging/man/unified-ctl.1.in",
        "and the unified-ctl Click commands: edit those, not this file."))
    return head + text


def main(argv: list[str]) -> int:
    ok = generated.update(PAGE, render(), "--check" in argv, "python3 scripts/dev/man_page.py")
    return 0 if ok or "--check" not in argv else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
