"""The speech agents ship in unified-system-voice: the split must not rot.

packaging/debian/rules moves agents/builtin/speech/ and the modules named by
unified_agents.builtin.VOICE_MODULES into the voice package; everything else stays in
the base package, which must work without speech/ installed.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

from unified_agents.builtin import VOICE_MODULES, VOICE_PACKAGE

from .sdk.harness import fleet_ports

REPO = Path(__file__).resolve().parents[2]
BUILTIN = REPO / "agents" / "builtin"


def _imports_speech(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            mod = ("." * node.level) + (node.module or "")
            if mod.startswith(".speech") or "builtin.speech" in mod:
                return True
        elif isinstance(node, ast.Import):
            if any("builtin.speech" in a.name for a in node.names):
                return True
    return False


def _base_modules() -> list[Path]:
    """Every shipped module that stays in the base package."""
    roots = [REPO / "agents", REPO / "unified_ctl", REPO / "unified_core"]
    out = []
    for root in roots:
        for p in root.rglob("*.py"):
            if BUILTIN / "speech" in p.parents or (p.parent == BUILTIN and p.stem in VOICE_MODULES):
                continue
            out.append(p)
    return out


def test_voice_modules_are_exactly_the_builtins_that_use_speech():
    using = {p.stem for p in BUILTIN.glob("*.py") if _imports_speech(p)}
    assert using == set(VOICE_MODULES)


def test_no_module_of_the_base_package_imports_speech():
    offenders = [str(p.relative_to(REPO)) for p in _base_modules() if _imports_speech(p)]
    assert offenders == []


def test_a_speech_builtin_without_its_package_names_the_package(tmp_path):
    """The agent process as the base package alone has it: speech modules absent."""
    pkg = tmp_path / "unified_agents"
    subprocess.run(["cp", "-a", str(REPO / "agents"), str(pkg)], check=True)
    subprocess.run(["rm", "-rf", str(pkg / "builtin" / "speech")], check=True)
    for m in VOICE_MODULES:
        (pkg / "builtin" / f"{m}.py").unlink()
    port, health = fleet_ports([0, 1]).values()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "UNIFIED_AGENT": "TTSService",
           "UNIFIED_PORT": str(port), "UNIFIED_HEALTH_PORT": str(health), "UNIFIED_RUN": "builtin:tts_service",
           "UNIFIED_STATE_DIR": str(tmp_path / "state")}
    r = subprocess.run([sys.executable, "-m", "unified_agents", "run", "TTSService"], env=env,
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = r.stdout + r.stderr
    assert f"ships in the Debian package {VOICE_PACKAGE}" in out
    assert f"apt install {VOICE_PACKAGE}" in out
    assert "Traceback" not in out


def test_rules_moves_the_list_the_sdk_names():
    rules = (REPO / "packaging" / "debian" / "rules").read_text()
    assert 'd["VOICE_MODULES"]' in rules and "agents/builtin/__init__.py" in rules
    control = (REPO / "packaging" / "debian" / "control").read_text()
    assert f"Package: {VOICE_PACKAGE}" in control
