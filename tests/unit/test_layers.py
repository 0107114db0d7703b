"""The layers stay layers: unified_core under both, the CLI and the agents beside each other.

    unified_ctl (the CLI, click)     unified_agents (SDK + built-in agents)
                  \\                      /
                   unified_core (catalog, systemd seam, fleet view, health, errors)

The core imports neither side, nor click or rich (an agent that reads the catalog must not
pay for the CLI's libraries at cold start); the agents do not import the CLI. The AST is read, so a lazy
import inside a function counts as much as one at the top. And every shipped module imports
alone, in a process that has imported nothing of ours (no hidden import-order dependence).
"""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# source directory -> the package name it is installed as (setup.cfg's package_dir)
PACKAGES = {"unified_core": "unified_core", "unified_ctl": "unified_ctl", "agents": "unified_agents"}

FORBIDDEN = {
    "unified_core": ("unified_ctl", "unified_agents", "click"),
    "unified_agents": ("unified_ctl", "click"),
    "unified_ctl": ("unified_agents",),
}
# Imports that cross a layer today, each named with the reason it is still there. Empty is the
# goal; an entry here is a known gap (README "Known gaps"), never a silent exception.
ALLOWED: dict[tuple[str, str], str] = {}


def shipped_files():
    for src, pkg in PACKAGES.items():
        for f in sorted((ROOT / src).rglob("*.py")):
            if "__pycache__" in f.parts:
                continue
            rel = f.relative_to(ROOT / src).with_suffix("")
            parts = [pkg, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            yield f, ".".join(parts), f.name == "__init__.py"


def imports_of(path: pathlib.Path, module: str, is_package: bool):
    """(line, absolute module name) for every import statement in the file."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            if node.module is None or node.level:  # `from . import x` may import submodule x
                for a in node.names:
                    yield node.lineno, f"{base}.{a.name}" if base else a.name
            else:
                yield node.lineno, base


def layer_violations():
    found = []
    for path, module, is_package in shipped_files():
        layer = module.split(".")[0]
        rel = str(path.relative_to(ROOT))
        for line, name in imports_of(path, module, is_package):
            top = name.split(".")[0]
            if top in FORBIDDEN[layer] and (rel, name) not in ALLOWED:
                found.append(f"{rel}:{line}: {layer} imports {name}")
    return found


def test_core_imports_neither_the_cli_nor_the_agents_and_agents_not_the_cli():
    assert layer_violations() == []


def test_every_allowed_crossing_still_exists():
    """An allowlist entry whose import is gone must go too: the list names only real gaps."""
    seen = {(str(p.relative_to(ROOT)), n) for p, m, pk in shipped_files() for _, n in imports_of(p, m, pk)}
    assert [k for k in ALLOWED if k not in seen] == []


def test_the_layer_check_sees_a_lazy_import_inside_a_function(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from ..errors import UnifiedError\n    from unified_ctl import cli\n")
    assert list(imports_of(f, "unified_agents.builtin.x", False)) == [
        (2, "unified_agents.errors.UnifiedError"), (3, "unified_ctl")]


# Runs in a fresh interpreter; forks one child per module, so each import starts from a
# process that has loaded nothing of ours.
CHILD = r"""
import importlib, importlib.util, os, sys, traceback
root, modules = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
failed = 0
for name in modules:
    pid = os.fork()
    if pid == 0:
        try:
            if name.split(".")[0] == "unified_agents":  # agents/ is installed as unified_agents
                spec = importlib.util.spec_from_file_location(
                    "unified_agents", os.path.join(root, "agents", "__init__.py"),
                    submodule_search_locations=[os.path.join(root, "agents")])
                mod = importlib.util.module_from_spec(spec)
                sys.modules["unified_agents"] = mod
                spec.loader.exec_module(mod)
            importlib.import_module(name)
            # the CLI's libraries (~100 ms each at import) are never an agent's start cost
            cli_libs = [lib for lib in ("click", "rich") if lib in sys.modules]
            if name.split(".")[0] != "unified_ctl" and cli_libs:
                print(f"{name}: loads {' and '.join(cli_libs)}")
                os._exit(1)
            os._exit(0)
        except BaseException:
            print(f"{name}: " + traceback.format_exc().strip().splitlines()[-1])
            os._exit(1)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


def test_every_shipped_module_imports_alone_and_only_the_cli_loads_click_or_rich():
    modules = [m for _, m, _ in shipped_files() if not m.endswith("__main__")]
    p = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), *modules],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr


def test_setup_cfg_ships_every_package_of_the_tree():
    """A package missing from setup.cfg's `packages` is missing from the .deb (setuptools does
    not recurse): the source tree would import, the installed one would not."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    tree = {m for _, m, is_package in shipped_files() if is_package}
    assert tree == listed
