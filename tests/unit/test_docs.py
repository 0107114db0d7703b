"""The repository explains itself: its documents are generated or checked from the code, and
nothing in it points at files that are not in it."""
from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
# spelled in pieces so that this file does not match itself
OUTSIDE = ("DESIGN" + ".md", "../" + "shared", "/work" + "/")


def _agents_table():
    spec = importlib.util.spec_from_file_location("agents_table", ROOT / "scripts" / "dev" / "agents_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _repo_files() -> list[pathlib.Path]:
    """Tracked files and new ones git does not ignore (not build outputs such as dist/)."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # a tarball of the sources: walk it
        names = [os.path.relpath(os.path.join(d, f), ROOT) for d, dirs, files in os.walk(ROOT)
                 for f in files if not any(p.startswith(".") or p in ("dist", "build", "__pycache__")
                                           for p in pathlib.Path(os.path.relpath(d, ROOT)).parts)]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def test_readme_agents_table_is_what_the_catalog_gives():
    mod = _agents_table()
    readme = (ROOT / "README.md").read_text()
    assert mod.render(readme, mod.table()) == readme, \
        "README.md's agents table is stale: run python3 scripts/dev/agents_table.py"


def test_agents_table_names_every_agent_once_and_the_real_ones_with_their_module():
    block = _agents_table().table()
    assert block.startswith("13 of 77 agents have a real implementation; the other 64 run")
    assert "| infrastructure_registry | ServiceRegistry (`agents/builtin/service_registry.py`)," in block
    assert "| tutoring_services | — | TutorAgent, TutoringAgent |" in block
    assert "STTService (`agents/builtin/stt_service.py`)" in block
    rows = [r for r in block.splitlines() if r.startswith("| ") and not r.startswith(("| group", "| ---"))]
    names = [n.split(" (")[0].strip() for r in rows for cell in r.split(" | ")[1:3]
             for n in cell.rstrip(" |").split(", ") if n.strip() != "—"]
    assert len(names) == len(set(names)) == 77


def test_the_agents_table_check_fails_on_a_stale_readme():
    mod = _agents_table()
    stale = f"x\n{mod.BEGIN}\n| old | table |\n{mod.END}\ny\n"
    fresh = mod.render(stale, mod.table())
    assert fresh != stale and fresh.startswith("x\n") and fresh.endswith(f"{mod.END}\ny\n")
    assert mod.render(fresh, mod.table()) == fresh


def test_no_file_cites_a_document_outside_the_repository():
    files = _repo_files()
    assert any(f.name == "ARCHITECTURE.md" for f in files) and len(files) > 100
    found = []
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            found += [f"{f.relative_to(ROOT)}:{i}: {what}" for what in OUTSIDE if what in line]
    assert found == [], "cite docs/ARCHITECTURE.md (or another file of the repository) instead:\n" + \
        "\n".join(found)


def test_every_pointer_into_architecture_names_a_section_it_has():
    headings = {ln.lstrip("#").strip() for ln in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines()
                if ln.startswith("#")}
    cited = {(f.relative_to(ROOT), m.group(1)) for f in _repo_files() if f.suffix in (".py", ".md", "")
             for m in re.finditer(r'ARCHITECTURE\.md,?\s+"([^"]+)"', f.read_text(errors="replace"))}
    assert len(cited) >= 5
    assert [c for c in cited if c[1] not in headings] == []
