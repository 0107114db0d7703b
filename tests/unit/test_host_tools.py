"""scripts/dev/host-tools is the one list of host tools: every tool the tests, benchmarks and
dev scripts look up is in it, no test skips for a missing tool, and
`install_deps.sh --check` fails in one line naming what is missing and its package.
(tests/system/test_fresh_machine.py installs the list on a fresh bookworm.)"""
from __future__ import annotations

import re
import shutil
import subprocess

from tests.host_tools import LIST, ROOT, entries

SCRIPT = ROOT / "scripts" / "dev" / "install_deps.sh"
GROUPS = {"build", "runtime", "test", "container", "tools"}
# Where host tools are looked up: shutil.which("x"), require_tool("x"), bench's have("x"),
# and commands run on the host through nsenter (the container's network, the host's binary).
LOOKUPS = re.compile(r'(?:shutil\.which|require_tool|\bhave)\(\s*"([^"]+)"'
                     r'|"nsenter", "-t", [^\]]*?"-n", "([a-z][\w.-]*)"')


def _sources():
    for sub in ("tests", "bench", "scripts"):
        yield from (p for p in (ROOT / sub).rglob("*.py") if p.name != "test_host_tools.py")


def test_every_line_names_a_group_a_package_and_what_it_provides():
    rows = entries()
    assert rows, LIST
    for group, package, provides in rows:
        assert group in GROUPS, (group, package)
        # a Debian package, or a test-only PyPI package pinned to one version
        assert re.fullmatch(r"[a-z0-9][a-z0-9.+-]+|pypi:[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*",
                            package), package
        assert not package.startswith("pypi:") or group == "test", (group, package)
        assert provides.startswith(("python3:", "/")) or re.fullmatch(r"[\w.+-]+", provides)
    provided = [p for _, _, p in rows]
    assert len(provided) == len(set(provided)), "an item is listed twice"


def test_every_tool_the_tests_benchmarks_and_dev_scripts_look_up_is_listed():
    provided = {p for _, _, p in entries()}
    used = {}
    for path in _sources():
        for m in LOOKUPS.finditer(path.read_text()):
            used.setdefault(m.group(1) or m.group(2), path.relative_to(ROOT))
    # the tools of the issue that started this list are among them
    assert {"promtool", "amtool", "chromium", "wrk"} <= set(used), used
    missing = {t: str(p) for t, p in used.items() if t not in provided}
    assert missing == {}, f"add these to {LIST.relative_to(ROOT)}"


def test_every_python_module_the_makefile_runs_is_listed():
    # `make lint` / `make unit` run checkers as `$(PYTHON) -m MODULE`: a fresh machine
    # gets them from the list like every other tool
    used = set(re.findall(r"\$\(PYTHON\) -m (\w+)", (ROOT / "Makefile").read_text()))
    assert {"pyflakes", "mypy", "pytest"} <= used, used
    provided = {p for _, _, p in entries()}
    assert {f"python3:{m}" for m in used} - provided == set(), f"add to {LIST.relative_to(ROOT)}"


def test_no_test_skips_because_a_tool_or_module_is_missing():
    # A skipped test passes on the machine that lacks the tool: it must fail instead
    # (tests.host_tools.require_tool / require_module).
    bad = []
    for path in _sources():
        text = path.read_text()
        for pattern in (r"importorskip\(", r"skipif\([^)]*which\(", r"skip\([^)]*not installed"):
            if re.search(pattern, text):
                bad.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert bad == []


def _script_with_list(tmp_path, extra: str):
    """install_deps.sh beside a copy of the list with `extra` lines appended."""
    d = tmp_path / "dev"
    d.mkdir()
    shutil.copy(SCRIPT, d / "install_deps.sh")
    (d / "host-tools").write_text(LIST.read_text() + extra)
    return d / "install_deps.sh"


def test_check_fails_in_one_line_naming_each_missing_tool_and_its_package(tmp_path):
    script = _script_with_list(tmp_path, "tools  no-such-package  no-such-tool-x1\n"
                                         "test   python3-nosuch    python3:no_such_module_x1\n")
    r = subprocess.run(["sh", str(script), "--check", "tools", "test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "no-such-tool-x1 (no-such-package)" in lines[0]
    assert "python3:no_such_module_x1 (python3-nosuch)" in lines[0]
    assert "install_deps.sh" in lines[0]


def test_check_passes_when_everything_listed_is_there(tmp_path):
    script = _script_with_list(tmp_path, "tools  coreutils  ls\ntest  python3  python3:json\n"
                                         "tools  base-files  /etc/debian_version\n")
    r = subprocess.run(["sh", str(script), "--check", "tools", "test"],
                       capture_output=True, text=True, timeout=60)
    # this machine ran `make deps` (make test does, first)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("install_deps: all ") and r.stderr == ""


def test_an_unknown_group_is_a_usage_error():
    r = subprocess.run(["sh", str(SCRIPT), "--check", "tool"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown group 'tool'" in r.stderr
