"""A fresh Debian bookworm: `debootstrap --variant=minbase` and nothing else, the machine a
new developer or a CI job starts from. tests/system/test_fresh_machine.py runs
scripts/dev/install_deps.sh in a scratch copy of it.

The pristine tree is cached (debootstrap takes ~1.5 min; what it holds is decided by the
suite and the mirror only). Downloaded .debs are kept in CACHE_DIR/apt-archives, bound
over the copy's /var/cache/apt/archives: apt still resolves everything from the archive's
current indexes and reuses a cached .deb only when its hash matches them, so a second run
proves the same thing without downloading ~400 MB again.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import harness
from harness import CACHE_DIR, SUITE, HarnessError

REVISION = "1"   # bump when the preparation below changes


def fresh_rootfs() -> Path:
    """The cached pristine minbase tree (built on first use, under a lock)."""
    sources = harness.host_debian_sources()
    key = harness._key("fresh", REVISION, SUITE, harness._sources_file(sources))
    final = CACHE_DIR / f"rootfs-fresh-{key}"
    if not (final / ".complete").exists():
        with harness._locked(CACHE_DIR / f"rootfs-fresh-{key}.lock"):
            if not (final / ".complete").exists():
                _build(final, sources)
    (final / ".last-used").touch()   # harness.prune_rootfs keeps what is used
    return final


def _build(final: Path, sources) -> None:
    mirror = next(u for u, s in sources if s == SUITE)
    tmp = CACHE_DIR / f".build-{final.name}-{os.getpid()}"
    harness._rm_tree(tmp)
    log = CACHE_DIR / "logs" / f"{final.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with harness.timed("debootstrap fresh minbase (uncached)", mirror):
            cmd = ["debootstrap", "--variant=minbase", SUITE, str(tmp), mirror]
            with open(log, "w") as fh:
                r = harness._host_run(cmd, timeout=1800, stdout=fh, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise HarnessError(f"debootstrap failed (rc {r.returncode}); log {log}:\n"
                                   + log.read_text(errors="replace")[-3000:])
        # The apt sources a Debian install has (the host's mirrors), no package lists yet.
        apt = tmp / "etc" / "apt"
        (apt / "sources.list").unlink(missing_ok=True)
        (apt / "sources.list.d" / "debian.sources").write_text(
            harness._sources_file(sources))
        harness._rm_tree(tmp / "var" / "lib" / "apt" / "lists")
        (tmp / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True)
        (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        os.rename(tmp, final)
    except BaseException:
        harness._rm_tree(tmp)
        raise


@contextlib.contextmanager
def scratch_copy(base: Path):
    """A throwaway copy of `base`, removed afterwards (also when the test fails)."""
    tmp = CACHE_DIR / f".fresh-run-{os.getpid()}-{time.monotonic_ns()}"
    try:
        harness._host_run(["cp", "-a", "--reflink=auto", str(base), str(tmp)], timeout=600,
                          check=True)
        yield tmp
    finally:
        harness._rm_tree(tmp)


def apt_archives() -> Path:
    d = CACHE_DIR / "apt-archives"
    (d / "partial").mkdir(parents=True, exist_ok=True)
    return d


HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def run_script(root: Path, script: str, log: Path, timeout: float = 1800) -> None:
    """`script` in `root`: not booted, host network, the repo read-only at /mnt/src.

    The host's network comes with the host's trust: its CA bundle is pip's (PIP_CERT), as
    apt uses the host's mirrors. A network behind a TLS-inspecting proxy (this project's CI)
    has its own CA there; a fresh machine on that network would be given it the same way."""
    options = [f"--bind-ro={harness.REPO}:/mnt/src",
               f"--bind={apt_archives()}:/var/cache/apt/archives"]
    if HOST_CA.is_file():
        options += [f"--bind-ro={HOST_CA}:/run/host-ca.crt", "-E", "PIP_CERT=/run/host-ca.crt"]
    with harness.timed("fresh machine script", root.name):
        harness._nspawn_chroot(root, script, timeout=timeout, log=log, options=options)
