#!/usr/bin/python3
"""unified-ctl's shell completion files, as Click generates them.

    python3 scripts/dev/completions.py           rewrite packaging/completions/*
    python3 scripts/dev/completions.py --check   exit 1 if a shipped file is stale

Each file is a shim that asks unified-ctl itself for the candidates
(_UNIFIED_CTL_COMPLETE=bash_complete|zsh_complete|fish_complete): agent, group and profile
names come from the catalog (unified_ctl/cli/context.py, complete_agents ...), so the shims
never change with the catalog, only with Click. debian/rules installs them where the shells
look:

  unified-ctl        bash  /usr/share/bash-completion/completions/unified-ctl
  _unified-ctl       zsh   /usr/share/zsh/vendor-completions/_unified-ctl
  unified-ctl.fish   fish  /usr/share/fish/vendor_completions.d/unified-ctl.fish

One change to Click 8.1's zsh script: zsh autoloads a file of its fpath as the body of the
function `_unified-ctl`, so the script's last line, `compdef ...`, would only register the
completer at the first Tab and complete nothing then; autoloaded, it completes at once
(what Click 8.2 generates too). tests/unit/test_completion.py keeps the files current.
"""
from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generated  # noqa: E402  (scripts/dev/generated.py, beside this script)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "packaging", "completions")
FILES = {"bash": "unified-ctl", "zsh": "_unified-ctl", "fish": "unified-ctl.fish"}
ZSH_REGISTER = "compdef _unified_ctl_completion unified-ctl;\n"
ZSH_AUTOLOAD = """\
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoloaded from the fpath (/usr/share/zsh/vendor-completions): complete now
    _unified_ctl_completion "$@"
else
    # sourced: eval "$(_UNIFIED_CTL_COMPLETE=zsh_source unified-ctl)"
    compdef _unified_ctl_completion unified-ctl
fi
"""


def click_source(shell: str) -> str:
    """What `_UNIFIED_CTL_COMPLETE={shell}_source unified-ctl` prints (from this tree)."""
    env = dict(os.environ, _UNIFIED_CTL_COMPLETE=f"{shell}_source", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", "from unified_ctl.cli import cli; "
                           "cli(prog_name='unified-ctl')"], env=env, capture_output=True,
                          text=True, check=True).stdout


def render(shell: str) -> str:
    text = click_source(shell)
    if shell == "zsh":
        if ZSH_REGISTER not in text:
            raise SystemExit("completions: Click's zsh script no longer ends in "
                             f"{ZSH_REGISTER.strip()!r}: look at it and update this script")
        text = text.replace(ZSH_REGISTER, ZSH_AUTOLOAD)
    return text


def main(argv: list[str]) -> int:
    check = "--check" in argv
    current = [generated.update(os.path.join(DIR, name), render(shell), check,
                                "python3 scripts/dev/completions.py")
               for shell, name in FILES.items()]
    return 0 if all(current) or not check else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
