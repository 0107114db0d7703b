"""Fixtures for the real-systemd tests (see docs/TESTING.md).

- `container`: one booted container per session with the freshly built .deb installed.
  Tests share it: leave it as you found it (stop what you start, remove files you add).
- `new_container(install=True, deb=None)`: a fresh container for tests that need a pristine
  system (upgrade, removal, boot-time behaviour); stopped when the test ends.
- `deb`, `upgrade_deb`, `rootfs`: the .deb under test, a higher-version repack of it,
  the cached rootfs.

System tests never skip silently: no root or no nspawn is an error. Set
UNIFIED_SKIP_SYSTEM=1 to skip them on purpose.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402

SKIP = os.environ.get("UNIFIED_SKIP_SYSTEM") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "system: real-systemd test in a booted nspawn container (tests/system)")
    if not SKIP:
        harness.install_signal_handlers()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.system)
            if SKIP:
                item.add_marker(pytest.mark.skip(
                    reason="UNIFIED_SKIP_SYSTEM=1: system tests skipped on request"))


@pytest.fixture(scope="session")
def system_env():
    """Preflight, sweep of stale containers, the .deb and a rootfs that can install it."""
    try:
        harness.preflight()
        harness.sweep_stale()
        deb = harness.find_or_build_deb()
        rootfs = harness.ensure_rootfs(deb)
    except harness.HarnessError as e:
        pytest.fail(f"system test harness: {e}", pytrace=False)
    return SimpleNamespace(deb=deb, rootfs=rootfs)


@pytest.fixture(scope="session")
def deb(system_env) -> Path:
    return system_env.deb


@pytest.fixture(scope="session")
def rootfs(system_env) -> Path:
    return system_env.rootfs


@pytest.fixture(scope="session")
def upgrade_deb(deb, tmp_path_factory) -> Path:
    """The package at version <version>+systest1 (see harness.upgrade_deb_for)."""
    try:
        return harness.upgrade_deb_for(deb, tmp_path_factory.mktemp("upgrade-deb"))
    except harness.HarnessError as e:
        pytest.fail(f"system test harness: {e}", pytrace=False)


@pytest.fixture(scope="session")
def _session_container(system_env):
    try:
        c = harness.boot(system_env.rootfs, system_env.deb, label="session")
    except harness.HarnessError as e:
        pytest.fail(f"system test harness: {e}", pytrace=False)
    yield c
    c.stop()


@pytest.fixture
def container(_session_container) -> harness.Container:
    """The shared booted container with the package installed."""
    c = _session_container
    if not c.alive:
        pytest.fail(f"the session container {c.name} is gone (did a test power it off?):\n"
                    + c.console_tail(), pytrace=False)
    return c


class _Factory:
    def __init__(self, env, label):
        self.env, self.label, self.made = env, label, []

    def __call__(self, install: bool = True, deb: Path | str | None = None,
                 **kw) -> harness.Container:
        deb = deb or (self.env.deb if install else None)
        kw.setdefault("label", f"{self.label}#{len(self.made) + 1}")
        c = harness.Container(self.env.rootfs, **kw)
        self.made.append(c)
        c.start()
        if deb is not None:
            c.install_deb(deb)
        return c


@pytest.fixture
def new_container(system_env, request):
    """Factory: new_container(install=True, deb=None, **Container kwargs) -> Container."""
    f = _Factory(system_env, request.node.name)
    yield f
    for c in f.made:
        c.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed system test, attach the tail of each used container's journal."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    seen = []
    for v in getattr(item, "funcargs", {}).values():
        if isinstance(v, harness.Container):
            seen.append(v)
        elif isinstance(v, _Factory):
            seen.extend(v.made)
    for c in seen:
        if c.alive:
            try:
                text = c.journal(lines=80)
            except Exception as e:  # never hide the real failure
                text = f"(journal unavailable: {e})"
            rep.sections.append((f"journal of {c.name} ({c.label})", text))


def pytest_terminal_summary(terminalreporter):
    if not harness.TIMINGS:
        return
    tr = terminalreporter
    tr.write_sep("-", "system test harness timings")
    text = harness.format_timings()
    for line in text.splitlines():
        tr.write_line(line)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        (HERE / ".timings").write_text(f"# {stamp}\n{text}\n")
    except OSError:
        pass
