"""A fresh Debian 12 gets every host tool from scripts/dev/install_deps.sh alone.

A clean clone + `make test` on a new machine must not depend on what someone installed by
hand: the fresh tree is `debootstrap --variant=minbase bookworm` (tests/system/fresh.py),
the script runs in it as root with network, and then every item of scripts/dev/host-tools
is looked for the way the tests use it: a command on PATH, an importable module, a file.
"""
from __future__ import annotations

import os
import shlex

import fresh
import harness
import pytest

from tests.host_tools import entries

SERVERS = ("prometheus.service", "prometheus-alertmanager.service")


def _probe(provides: str) -> str:
    """A shell test that `provides` is there, as the tests look for it."""
    if provides.startswith("python3:"):
        return f"python3 -c {shlex.quote('import ' + provides[len('python3:'):])}"
    if provides.startswith("/"):
        return f"test -e {shlex.quote(provides)}"
    return f"command -v {shlex.quote(provides)}"


def _script(items) -> str:
    lines = [
        "cd /root",
        # the script as `make test` runs it, then its own check, then again (idempotent)
        "/mnt/src/scripts/dev/install_deps.sh >deps.out 2>&1; echo $? >deps.rc",
        "/mnt/src/scripts/dev/install_deps.sh --check >check.out 2>&1; echo $? >check.rc",
        "/mnt/src/scripts/dev/install_deps.sh >again.out 2>&1; echo $? >again.rc",
        ": >found",
    ]
    for _, package, provides in items:
        lines.append(f"if {_probe(provides)} >/dev/null 2>&1; then echo 'found {provides}' >>found;"
                     f" else echo 'MISSING {provides} ({package})' >>found; fi")
    lines.append(f"systemctl is-enabled {' '.join(SERVERS)} >enabled 2>&1 || true")
    lines.append("test -e /usr/sbin/policy-rc.d && echo left >policy || : >policy")
    lines.append("apt-get -qq autoclean")   # the shared .deb cache keeps current versions only
    return "\n".join(lines) + "\n"


def test_install_deps_on_a_fresh_bookworm_provides_every_host_tool():
    if os.geteuid() != 0:
        pytest.fail("needs root (debootstrap, systemd-nspawn)", pytrace=False)
    harness.preflight()
    items = entries()
    base = fresh.fresh_rootfs()
    # nothing of the list is there before (python3 itself is not in minbase)
    assert not (base / "usr" / "bin" / "promtool").exists()
    assert not (base / "usr" / "bin" / "python3").exists()
    log = harness.CACHE_DIR / "logs" / f"fresh-machine-{os.getpid()}.log"
    with fresh.scratch_copy(base) as root:
        fresh.run_script(root, _script(items), log)
        out = {n: (root / "root" / n).read_text() for n in
               ("deps.out", "deps.rc", "check.out", "check.rc", "again.out", "again.rc",
                "found", "enabled", "policy")}
    assert out["deps.rc"].strip() == "0", out["deps.out"][-3000:]
    assert out["deps.out"].splitlines()[-1].startswith("install_deps: installed: ")
    assert out["check.rc"].strip() == "0", out["check.out"]
    assert out["again.rc"].strip() == "0", out["again.out"]
    assert out["again.out"].strip() == \
        f"install_deps: all {len(items)} host tools present (build runtime test container tools)"
    missing = [ln for ln in out["found"].splitlines() if ln.startswith("MISSING")]
    assert missing == [] and len(out["found"].splitlines()) == len(items), out["found"]
    # promtool and amtool only: the servers are not enabled, no policy-rc.d is left behind
    assert out["enabled"].split() == ["disabled", "disabled"], out["enabled"]
    assert out["policy"] == ""
    log.unlink(missing_ok=True)
