"""Make the source tree importable as installed: `agents/` is the package `unified_agents`.

setup.cfg maps the directory with package_dir; tests run from a clean clone without an
install, so mirror that mapping here instead of pip-installing into the system Python.
"""
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if "unified_agents" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "unified_agents",
        ROOT / "agents" / "__init__.py",
        submodule_search_locations=[str(ROOT / "agents")],
    )
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["unified_agents"] = _mod
    _spec.loader.exec_module(_mod)
