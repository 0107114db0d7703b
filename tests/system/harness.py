"""Real-systemd test harness: a cached Debian bookworm rootfs booted with systemd-nspawn.

No pytest in here: `conftest.py` (fixtures) and `scripts/dev/container.py` (developer CLI)
both drive this module.

    rootfs = ensure_rootfs(deb)                 # debootstrap once, cached by package list
    with Container(rootfs) as c:                # overlay copy + `systemd-nspawn -b`
        c.install_deb(deb)                      # `apt-get install ./x.deb`, offline
        c.run("unified-ctl --help")             # nsenter into the container's namespaces
        c.systemctl("start", "unified.target")

Stages are timed into TIMINGS (printed by the pytest terminal summary).
Every container is torn down by stop(): poweroff, bounded wait, then SIGKILL of the
container's PID 1 and of nspawn; atexit and signal handlers stop whatever is still live,
and sweep_stale() reaps what a SIGKILLed earlier run left behind.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("UNIFIED_TEST_CACHE", "/var/cache/unified-system-test"))
SUITE = "bookworm"
PACKAGES_FILE = Path(__file__).with_name("rootfs.packages")
# Bump when the way a rootfs is prepared changes (invalidates every cached rootfs).
ROOTFS_REVISION = "3"
MACHINE_PREFIX = "unitest-"
CLEAN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "DEBIAN_FRONTEND": "noninteractive",
}
DEFAULT_TIMEOUT = 120.0


class HarnessError(RuntimeError):
    """The harness itself could not do its job (no root, debootstrap failed, no boot...)."""


class ContainerCommandError(subprocess.CalledProcessError):
    """A command inside the container failed; str() shows its output, not just the rc."""

    def __init__(self, container: str, cmd, rc: int, stdout: str, stderr: str):
        super().__init__(rc, cmd, stdout, stderr)
        self.container = container

    def __str__(self) -> str:
        def tail(s):
            s = (s or "").rstrip()
            return s if len(s) < 4000 else "…" + s[-4000:]

        return (f"[{self.container}] command {_fmt_cmd(self.cmd)!r} exited {self.returncode}\n"
                f"--- stdout ---\n{tail(self.stdout)}\n--- stderr ---\n{tail(self.stderr)}")


def _fmt_cmd(cmd) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)


# --------------------------------------------------------------------------- timings

TIMINGS: list[tuple[str, float, str]] = []
_timings_lock = threading.Lock()


@contextlib.contextmanager
def timed(stage: str, note: str = ""):
    t0 = time.monotonic()
    info = {"note": note}
    try:
        yield info
    finally:
        with _timings_lock:
            TIMINGS.append((stage, time.monotonic() - t0, info["note"]))


def format_timings(timings=None) -> str:
    rows = timings if timings is not None else TIMINGS
    width = max((len(s) for s, _, _ in rows), default=10)
    return "\n".join(f"{s:<{width}}  {d:8.2f} s  {n}".rstrip() for s, d, n in rows)


# --------------------------------------------------------------------------- host checks

def _host_run(cmd: Sequence[str], timeout: float, *, check: bool = False,
              capture_output: bool = False, **kw) -> subprocess.CompletedProcess:
    """subprocess.run in its own process group, killed whole on timeout or interrupt
    (so a Ctrl-C during `make deb` or debootstrap leaves no grandchildren behind)."""
    env = dict(os.environ, PATH=CLEAN_PATH, LC_ALL="C.UTF-8")
    env.update(kw.pop("env", {}))
    if capture_output:
        kw["stdout"] = kw["stderr"] = subprocess.PIPE
    p = subprocess.Popen(cmd, env=env, text=True, start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        # SIGTERM first: a non-booted nspawn passes it on as SIGKILL to its container,
        # whose processes are not in our process group.
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
            try:
                p.communicate(timeout=wait)
                break
            except BaseException:
                continue
        raise
    if check and p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd, out, err)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def preflight() -> None:
    """Fail loudly (never skip) when system tests cannot run here; install missing tools."""
    if os.geteuid() != 0:
        raise HarnessError("system tests need root (debootstrap, mount, systemd-nspawn). "
                           "Run as root, or set UNIFIED_SKIP_SYSTEM=1 to skip them explicitly.")
    # The container group of scripts/dev/host-tools (debootstrap, systemd-nspawn, ...).
    deps = str(REPO / "scripts" / "dev" / "install_deps.sh")
    r = _host_run([deps, "--check", "container"], timeout=60, capture_output=True)
    if r.returncode != 0:
        with timed("install host tools", r.stderr.strip()):
            r = _host_run([deps, "container"], timeout=900, capture_output=True)
        if r.returncode != 0:
            raise HarnessError(f"could not install the host tools with {deps} container:\n"
                               f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


# --------------------------------------------------------------------------- apt sources

def host_debian_sources() -> list[tuple[str, str]]:
    """(URI, suite) pairs of the host's Debian bookworm sources, main component only."""
    found: list[tuple[str, str]] = []
    files = sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for f in files:
        for stanza in re.split(r"\n\s*\n", Path(f).read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            if "deb" not in fields.get("types", "").split() \
                    or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    found.append((uri, suite))
    lists = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for f in lists:
        if not os.path.exists(f):
            continue
        for line in Path(f).read_text(errors="replace").splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                found.append((parts[1], parts[2]))
    keep = [(u.rstrip("/"), s) for u, s in found
            if "debian" in u and (s == SUITE or s.startswith(SUITE + "-")
                                  or s.startswith(SUITE + "/"))]
    out: list[tuple[str, str]] = []
    for item in keep:
        if item not in out:
            out.append(item)
    mirror = os.environ.get("UNIFIED_DEBIAN_MIRROR")
    if mirror:
        out = [(mirror.rstrip("/"), SUITE)] + [x for x in out if x[1] != SUITE]
    if not any(s == SUITE for _, s in out):
        out.insert(0, ("http://deb.debian.org/debian", SUITE))
    return out


def _sources_file(sources: list[tuple[str, str]]) -> str:
    stanzas = []
    for uri, suite in sources:
        stanzas.append(f"Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\n"
                       "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return "\n".join(stanzas)


# --------------------------------------------------------------------------- .deb helpers

def deb_field(deb: Path | str, field: str) -> str:
    r = _host_run(["dpkg-deb", "-f", str(deb), field], timeout=30, capture_output=True)
    if r.returncode != 0:
        raise HarnessError(f"dpkg-deb -f {deb} {field}: {r.stderr.strip()}")
    return r.stdout.strip()


def deb_relations(deb: Path | str, fields=("Pre-Depends", "Depends")) -> str:
    """The deb's relation fields (default: what must be installed) as one string."""
    parts = []
    for f in fields:
        v = deb_field(deb, f)
        if v:
            parts.append(" ".join(v.split()))
    return ", ".join(parts)


def companion_debs(deb: Path | str) -> list[Path]:
    """The other binary packages built with `deb` (same directory, same version): today
    unified-system-voice, which the base Recommends, and unified-system-wakeword (amd64),
    which the voice package Recommends. They are installed together, as a user's
    `apt install ./dist/unified-system*.deb` does."""
    deb = Path(deb)
    m = re.fullmatch(r"unified-system_(.+)_all\.deb", deb.name)
    if not m:
        return []
    return sorted(p for p in deb.parent.glob(f"unified-system-*_{m.group(1)}_*.deb")
                  if re.fullmatch(r"unified-system-[a-z]+_.+_(all|amd64)\.deb", p.name))


def _own_names(debs) -> set[str]:
    return {deb_field(d, "Package") for d in debs}


def relations_of(debs, fields=("Pre-Depends", "Depends")) -> str:
    """deb_relations of several debs built together, without the relations between them
    (unified-system-voice Depends on unified-system (= version): no archive has that)."""
    own = _own_names(debs)
    groups = []
    for d in debs:
        for g in filter(None, (g.strip() for g in deb_relations(d, fields).split(","))):
            if not own & set(_relation_names(g)):
                groups.append(g)
    return ", ".join(dict.fromkeys(groups))


def newest_deb(dist: Path | None = None) -> Path | None:
    dist = dist or REPO / "dist"
    debs = sorted(dist.glob("unified-system_*_all.deb"), key=lambda p: p.stat().st_mtime)
    return debs[-1] if debs else None


# What goes into the package: a change here makes dist/*.deb stale.
PACKAGE_SOURCES = ("unified_core", "unified_ctl", "agents", "units", "etc", "packaging", "scripts",
                   "setup.cfg", "setup.py", "pyproject.toml", "README.md")


def newer_source(than: float) -> Path | None:
    """A packaged source file modified after `than` (mtime), if any."""
    for sub in PACKAGE_SOURCES:
        p = REPO / sub
        files = [p] if p.is_file() else p.rglob("*") if p.is_dir() else []
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc" or \
                    f.is_relative_to(REPO / "scripts" / "dev") or not f.is_file():
                continue
            with contextlib.suppress(OSError):
                if f.stat().st_mtime > than:
                    return f
    return None


def find_or_build_deb() -> Path:
    """$UNIFIED_DEB; else the newest dist/unified-system_*.deb, rebuilt by `make deb`
    when missing or older than the packaged sources (UNIFIED_REBUILD_DEB=0: never
    rebuild, =1: always)."""
    env = os.environ.get("UNIFIED_DEB")
    if env:
        p = Path(env).resolve()
        if not p.is_file():
            raise HarnessError(f"UNIFIED_DEB={env} is not a file")
        return p
    deb = newest_deb()
    rebuild = os.environ.get("UNIFIED_REBUILD_DEB", "")
    why = "missing" if deb is None else "forced" if rebuild == "1" else None
    if why is None and rebuild != "0":
        newer = newer_source(deb.stat().st_mtime)
        if newer is not None:
            why = f"{newer.relative_to(REPO)} is newer than {deb.name}"
    if why:
        with timed("deb build (make deb)", why) as t:
            r = _host_run(["make", "-C", str(REPO), "deb"], timeout=1200, capture_output=True)
        if r.returncode != 0:
            raise HarnessError(f"`make deb` failed (rc {r.returncode}):\n"
                               f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        deb = newest_deb()
        if deb is None:
            raise HarnessError("`make deb` succeeded but dist/ has no unified-system_*_all.deb")
        t["note"] = f"{deb.name} ({why})"
    return deb.resolve()


def upgrade_deb_for(deb: Path | str, out_dir: Path | str, suffix: str = "+systest1") -> Path:
    """A higher version of `deb` for upgrade tests.

    $UNIFIED_UPGRADE_DEB if set; else, for a deb built from this tree, a real rebuild with
    `VERSION_SUFFIX=<suffix> packaging/build-deb.sh` (into out_dir, not dist/); else (an
    outside deb given by $UNIFIED_DEB) a repack of it with the higher version.
    """
    env = os.environ.get("UNIFIED_UPGRADE_DEB")
    if env:
        return Path(env).resolve()
    script = REPO / "packaging" / "build-deb.sh"
    if os.environ.get("UNIFIED_DEB") or not script.exists() \
            or "VERSION_SUFFIX" not in script.read_text(errors="replace"):
        with timed("deb repack (upgrade)"):
            return make_higher_version_deb(deb, out_dir, suffix)
    with timed("deb build (upgrade)", f"VERSION_SUFFIX={suffix}"):
        r = _host_run([str(script)], timeout=1200, capture_output=True, cwd=str(REPO),
                      env={"VERSION_SUFFIX": suffix, "OUT_DIR": str(out_dir), "LINTIAN": "0"})
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise HarnessError(f"VERSION_SUFFIX={suffix} {script} failed (rc {r.returncode}):\n"
                           f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return Path(lines[-1])


def make_higher_version_deb(deb: Path | str, out_dir: Path | str,
                            suffix: str = "+systest1") -> Path:
    """Repack `deb` as version <version><suffix> (higher for dpkg), same contents.

    Exercises the upgrade path (maintainer scripts, conffiles, unit restarts) without
    touching dist/ or depending on build-script options.
    """
    deb, out_dir = Path(deb), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = deb_field(deb, "Version")
    new_version = version + suffix
    for other in companion_debs(deb):
        _repack(other, out_dir, version, new_version)
    return _repack(deb, out_dir, version, new_version)


def _repack(deb: Path, out_dir: Path, version: str, new_version: str) -> Path:
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tree = Path(tmp) / "tree"
        r = _host_run(["dpkg-deb", "-R", str(deb), str(tree)], timeout=120,
                      capture_output=True)
        if r.returncode != 0:
            raise HarnessError(f"dpkg-deb -R {deb}: {r.stderr}")
        control = tree / "DEBIAN" / "control"
        text = re.sub(r"^Version: .*$", f"Version: {new_version}",
                      control.read_text(), count=1, flags=re.M)
        # a companion's (= version) on the base package moves with it
        text = text.replace(f"(= {version})", f"(= {new_version})")
        control.write_text(text)
        pkg = deb_field(deb, "Package")
        arch = deb_field(deb, "Architecture")
        out = out_dir / f"{pkg}_{new_version.split(':')[-1]}_{arch}.deb"
        r = _host_run(["dpkg-deb", "-Zgzip", "--build", str(tree), str(out)], timeout=300,
                      capture_output=True)
        if r.returncode != 0:
            raise HarnessError(f"dpkg-deb --build: {r.stderr}")
    return out


# --------------------------------------------------------------------------- rootfs

def base_packages() -> list[str]:
    pkgs = []
    for line in PACKAGES_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        pkgs.extend(line.split())
    pkgs.extend(os.environ.get("UNIFIED_ROOTFS_EXTRA", "").replace(",", " ").split())
    return sorted(set(pkgs))


def _key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def base_rootfs_key() -> str:
    sources = _sources_file(host_debian_sources())
    return _key(ROOTFS_REVISION, SUITE, sources, " ".join(base_packages()), _ROOTFS_SETUP)


@contextlib.contextmanager
def _locked(path: Path, timeout: float = 1800):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessError(f"timed out waiting for lock {path} (another build?)")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _nspawn_chroot(root: Path, script: str, timeout: float, log: Path,
                   options: Sequence[str] = ()) -> None:
    """Run a shell script in `root` (not booted, host network) and fail with its log.
    `options`: more systemd-nspawn options (e.g. --bind-ro=...)."""
    cmd = ["systemd-nspawn", "-q", "-D", str(root), "--register=no", "--keep-unit",
           "--resolv-conf=bind-host", "--timezone=off", "--link-journal=no",
           "-E", "DEBIAN_FRONTEND=noninteractive", "-E", "LANG=C.UTF-8",
           "-E", f"PATH={CONTAINER_ENV['PATH']}", *options, "/bin/sh", "-exc", script]
    with open(log, "a") as fh:
        fh.write(f"\n### {_fmt_cmd(cmd)}\n")
        fh.flush()
        r = _host_run(cmd, timeout=timeout, stdout=fh, stderr=subprocess.STDOUT,
                      stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise HarnessError(f"rootfs setup failed (rc {r.returncode}); log {log}:\n"
                           + log.read_text(errors="replace")[-3000:])


def _finish_rootfs(tmp: Path, final: Path, info: dict) -> None:
    (tmp / "etc" / "unified-test-rootfs.json").write_text(json.dumps(info, indent=1) + "\n")
    (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    os.rename(tmp, final)  # atomic: a half-built tree is never named rootfs-*


def _rm_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], timeout=600)


def build_base_rootfs() -> Path:
    """debootstrap --variant=minbase with rootfs.packages, cached under CACHE_DIR."""
    key = base_rootfs_key()
    final = CACHE_DIR / f"rootfs-{key}"
    if (final / ".complete").exists():
        return final
    with _locked(CACHE_DIR / f"rootfs-{key}.lock"):
        if (final / ".complete").exists():
            return final
        sources = host_debian_sources()
        mirror = next(u for u, s in sources if s == SUITE)
        tmp = CACHE_DIR / f".build-rootfs-{key}-{os.getpid()}"
        _rm_tree(tmp)
        logs = CACHE_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"rootfs-{key}.log"
        log.write_text("")
        pkgs = base_packages()
        try:
            with timed("debootstrap (uncached)", f"{len(pkgs)} packages, {mirror}"):
                cmd = ["debootstrap", "--variant=minbase", "--include=" + ",".join(pkgs),
                       SUITE, str(tmp), mirror]
                with open(log, "a") as fh:
                    fh.write(f"### {_fmt_cmd(cmd)}\n")
                    fh.flush()
                    r = _host_run(cmd, timeout=1800, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
                if r.returncode != 0:
                    raise HarnessError(f"debootstrap failed (rc {r.returncode}); log {log}:\n"
                                       + log.read_text(errors="replace")[-3000:])
            with timed("rootfs setup (apt lists)"):
                apt_dir = tmp / "etc" / "apt"
                (apt_dir / "sources.list").unlink(missing_ok=True)
                (apt_dir / "sources.list.d" / "debian.sources").write_text(
                    _sources_file(sources))
                _nspawn_chroot(tmp, _ROOTFS_SETUP, timeout=900, log=log)
                # Each boot gets its own transient machine id (from nspawn's --uuid).
                (tmp / "etc" / "machine-id").write_text("")
            _finish_rootfs(tmp, final, {"key": key, "suite": SUITE, "packages": pkgs,
                                        "sources": sources, "revision": ROOTFS_REVISION})
        except BaseException:
            _rm_tree(tmp)
            raise
    return final


# Runs inside the fresh rootfs (not booted, host network) after debootstrap.
_ROOTFS_SETUP = r"""
apt-get update
# Like an operator's box: point-release and security updates applied.
apt-get -y -o Dpkg::Use-Pty=0 upgrade
apt-get clean
# Nothing on a console: the container is driven through nsenter.
systemctl mask console-getty.service getty@tty1.service serial-getty@.service
# Installed for test_observability.py and bench_peer.py only: not running unless they start them.
systemctl disable prometheus.service prometheus-alertmanager.service supervisor.service 2>/dev/null || true
rm -f /var/lib/dbus/machine-id
# The hostname is the container's machine name (debootstrap copied the host's).
rm -f /etc/hostname
"""


def _installed_packages(root: Path) -> dict[str, list[tuple[str, str | None]]]:
    """name -> [(version, provider)] for installed packages and what they Provide."""
    r = _host_run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f",
                   "${db:Status-Abbrev}\t${Package}\t${Version}\t${Provides}\n"],
                  timeout=60, capture_output=True)
    have: dict[str, list[tuple[str, str | None]]] = {}
    for line in r.stdout.splitlines():
        status, name, version, provides = (line.split("\t") + ["", "", ""])[:4]
        if not status.startswith("ii"):
            continue
        have.setdefault(name, []).append((version, None))
        for prov in filter(None, (p.strip() for p in provides.split(","))):
            m = re.match(r"([^\s(]+)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?", prov)
            if m:
                have.setdefault(m.group(1), []).append((m.group(2) or "", name))
    return have


def _version_ok(version: str, op: str, want: str) -> bool:
    if not version:
        return False
    op = {"<": "<<", ">": ">>"}.get(op, op)
    return subprocess.run(["dpkg", "--compare-versions", version, op, want]).returncode == 0


def _archive_names(root: Path) -> set[str]:
    """Package names (and Provides) in the rootfs's apt lists: what apt could install."""
    names: set[str] = set()
    for f in glob.glob(f"{root}/var/lib/apt/lists/*_Packages"):
        with open(f, errors="replace") as fh:
            for line in fh:
                if line.startswith("Package: "):
                    names.add(line[9:].strip())
                elif line.startswith("Provides: "):
                    for prov in line[10:].split(","):
                        names.add(prov.split("(")[0].strip())
    return names


def _relation_names(group: str) -> list[str]:
    return [re.split(r"[\s(:]", a.strip(), maxsplit=1)[0] for a in group.split("|")]


def unsatisfied_relations(root: Path, relations: str, recommends: str = "") -> list[str]:
    """Relation groups (a | b (>= 1)) that the packages installed in `root` don't satisfy.

    `recommends` groups count only where apt could install one of them (an alternative
    absent from the archive, e.g. a contrib package, is skipped by apt as well).
    """
    have = _installed_packages(root)
    missing = _unsatisfied(have, relations)
    rec = _unsatisfied(have, recommends)
    if rec:
        archive = _archive_names(root)
        missing += [g for g in rec if any(n in archive for n in _relation_names(g))]
    return missing


def _unsatisfied(have, relations: str) -> list[str]:
    missing = []
    for group in filter(None, (g.strip() for g in relations.split(","))):
        ok = False
        for alt in (a.strip() for a in group.split("|")):
            m = re.match(r"([^\s(:]+)(?::\S+)?\s*(?:\(\s*([<>=]+)\s*([^)\s]+)\s*\))?", alt)
            if not m:
                continue
            name, op, want = m.groups()
            for version, _provider in have.get(name, []):
                if op is None or _version_ok(version, op, want):
                    ok = True
                    break
            if ok:
                break
        if not ok:
            missing.append(group)
    return missing


def ensure_rootfs(deb: Path | str | None = None) -> Path:
    """A cached rootfs on which `apt-get install ./deb` resolves offline.

    The base rootfs (debootstrap + rootfs.packages) is used as is when it already satisfies
    the deb's Pre-Depends/Depends/Recommends; otherwise a derived rootfs with those installed
    (`apt-get satisfy`) is built once and cached under a key of the base and the relations.
    """
    t0 = time.monotonic()
    before = len(TIMINGS)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    base = build_base_rootfs()
    if deb is None:
        root = base
    else:
        debs = [Path(deb), *companion_debs(deb)]
        relations = relations_of(debs)
        recommends = relations_of(debs, ("Recommends",))
        missing = unsatisfied_relations(base, relations, recommends)
        if not missing:
            root = base
        else:
            root = _derived_rootfs(base, ", ".join(missing), missing)
    if len(TIMINGS) == before:
        TIMINGS.append(("rootfs (cached)", time.monotonic() - t0, root.name))
    with contextlib.suppress(OSError):
        (root / ".last-used").touch()
        (base / ".last-used").touch()
    prune_rootfs(keep={root, base})
    return root


def prune_rootfs(keep: set[Path], max_age_days: float = 7.0) -> list[str]:
    """Delete cached rootfs trees unused for `max_age_days` (older package lists)."""
    removed = []
    in_use = {i.get("rootfs") for i in live_containers()}
    for d in CACHE_DIR.glob("rootfs-*"):
        if not d.is_dir() or d in keep or str(d) in in_use:
            continue
        stamp = d / ".last-used"
        last = (stamp if stamp.exists() else d).stat().st_mtime
        if time.time() - last > max_age_days * 86400:
            with _locked(CACHE_DIR / f"{d.name}.lock", timeout=5):
                _rm_tree(d)
            (CACHE_DIR / f"{d.name}.lock").unlink(missing_ok=True)
            removed.append(d.name)
    return removed


def _derived_rootfs(base: Path, relations: str, missing: list[str]) -> Path:
    key = _key(base.name, relations)
    final = CACHE_DIR / f"rootfs-{key}"
    if (final / ".complete").exists():
        return final
    with _locked(CACHE_DIR / f"rootfs-{key}.lock"):
        if (final / ".complete").exists():
            return final
        tmp = CACHE_DIR / f".build-rootfs-{key}-{os.getpid()}"
        _rm_tree(tmp)
        log = CACHE_DIR / "logs" / f"rootfs-{key}.log"
        log.write_text(f"base {base}\nmissing: {missing}\n")
        try:
            with timed("rootfs derive (deb deps)", "; ".join(missing)):
                _host_run(["cp", "-a", "--reflink=auto", str(base), str(tmp)], timeout=600,
                          check=True)
                (tmp / ".complete").unlink()
                pre = [g for g in missing]
                script = "apt-get update\n"
                # Depends must resolve; a Recommends alternative may not exist (e.g. contrib).
                for group in pre:
                    script += f"apt-get satisfy -y --no-install-recommends {shlex.quote(group)}" \
                              " || echo \"unsatisfiable here: " + group.replace('"', "") + "\"\n"
                script += "apt-get clean\n"
                _nspawn_chroot(tmp, script, timeout=900, log=log)
                (tmp / "etc" / "machine-id").write_text("")
                info = json.loads((tmp / "etc" / "unified-test-rootfs.json").read_text())
                info.update({"key": key, "base": base.name, "relations": relations})
            _finish_rootfs(tmp, final, info)
        except BaseException:
            _rm_tree(tmp)
            raise
    return final


# --------------------------------------------------------------------------- processes

def _proc_status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, start_time: str | None = None) -> bool:
    st = _start_time(pid)
    if st is None:
        return False
    if _proc_status(pid).get("State", "").startswith("Z"):
        return False
    return start_time is None or st == start_time


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _find_leader(nspawn_pid: int) -> int | None:
    """The container's PID 1: a descendant of nspawn whose innermost PID is 1."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        ppid = _proc_status(pid).get("PPid")
        if ppid and ppid.isdigit():
            children.setdefault(int(ppid), []).append(pid)
    todo = list(children.get(nspawn_pid, []))
    while todo:
        pid = todo.pop(0)
        nspid = _proc_status(pid).get("NSpid", "").split()
        if len(nspid) >= 2 and nspid[-1] == "1":
            return pid
        todo.extend(children.get(pid, []))
    return None


def _kill(pid: int | None, sig=signal.SIGKILL) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pid: int, start_time: str | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, start_time):
            return True
        time.sleep(0.05)
    return not _alive(pid, start_time)


def _umount(path: Path) -> None:
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        if not os.path.ismount(path):
            return
        _host_run(args, timeout=60, capture_output=True)


# --------------------------------------------------------------------------- container

_LIVE: "set[Container]" = set()
_LIVE_LOCK = threading.Lock()
_COUNTER = iter(range(1, 1 << 30))
RUN_DIR = CACHE_DIR / "run"


class Container:
    """One booted, disposable systemd container (overlay over a cached rootfs).

    run() executes in all the container's namespaces (nsenter -a), with a clean
    environment; a str is run by /bin/sh -c, a list is exec'd as is.
    """

    def __init__(self, rootfs: Path | str, *, name: str | None = None,
                 bind: Iterable[tuple[str, str]] = (), bind_ro: Iterable[tuple[str, str]] = (),
                 boot_timeout: float = 90.0, unified_cgroup: bool = True, label: str = ""):
        self.rootfs = Path(rootfs)
        n = next(_COUNTER)
        self.name = name or f"{MACHINE_PREFIX}{os.getpid()}-{n}"
        self.label = label or self.name
        self.bind = list(bind)
        self.bind_ro = list(bind_ro)
        dist = REPO / "dist"
        if dist.is_dir() and not any(dst == "/mnt/dist" for _, dst in self.bind_ro):
            self.bind_ro.append((str(dist), "/mnt/dist"))
        self.boot_timeout = boot_timeout
        self.unified_cgroup = unified_cgroup
        self.dir = RUN_DIR / self.name
        self.root = self.dir / "root"  # the container's / as seen from the host
        self.console_log = self.dir / "console.log"
        self.proc: subprocess.Popen | None = None
        self.leader: int | None = None
        self.leader_start: str | None = None
        self.state: str | None = None  # what is-system-running said at boot
        self._overlay = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> "Container":
        if not (self.rootfs / ".complete").exists():
            raise HarnessError(f"{self.rootfs} is not a complete rootfs")
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            with timed("container copy", self.label) as t:
                t["note"] = f"{self.label}: {self._make_root()}"
            with timed("container boot", self.label) as t:
                self._spawn()
                self._wait_running()
                t["note"] = f"{self.label}: {self.state}"
        except BaseException:
            self.stop()
            raise
        return self

    def _write_owner(self) -> None:
        (self.dir / "owner.json").write_text(json.dumps({
            "owner_pid": os.getpid(), "owner_start": _start_time(os.getpid()),
            "nspawn_pid": self.proc.pid if self.proc else None,
            "leader_pid": self.leader, "leader_start": self.leader_start,
            "overlay": self._overlay, "rootfs": str(self.rootfs)}))

    def _make_root(self) -> str:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        if self.dir.exists():
            raise HarnessError(f"{self.dir} already exists")
        self.dir.mkdir()
        self.root.mkdir()
        (self.dir / "upper").mkdir()
        (self.dir / "work").mkdir()
        self._write_owner()
        mode = os.environ.get("UNIFIED_CONTAINER_COPY", "overlay")
        if mode == "overlay":
            r = _host_run(["mount", "-t", "overlay", "overlay", "-o",
                           f"lowerdir={self.rootfs},upperdir={self.dir}/upper,"
                           f"workdir={self.dir}/work", str(self.root)],
                          timeout=60, capture_output=True)
            if r.returncode == 0:
                self._overlay = True
                self._write_owner()
                return "overlay"
            sys.stderr.write(f"harness: overlay mount failed ({r.stderr.strip()}), copying\n")
        _host_run(["cp", "-a", "--reflink=auto", f"{self.rootfs}/.", str(self.root)],
                  timeout=600, check=True)
        return "copy"

    def _spawn(self) -> None:
        cmd = ["systemd-nspawn", "--quiet", "--boot", "--directory", str(self.root),
               "--machine", self.name, "--register=no", "--keep-unit", "--private-network",
               "--link-journal=no", "--console=read-only", "--resolv-conf=off",
               "--timezone=off", "--kill-signal=SIGRTMIN+4"]
        for src, dst in self.bind:
            cmd.append(f"--bind={src}:{dst}")
        for src, dst in self.bind_ro:
            cmd.append(f"--bind-ro={src}:{dst}")
        cmd += ["--", "--log-color=no"]  # arguments of the container's systemd
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_SOCKET")}
        env["PATH"] = CLEAN_PATH
        if self.unified_cgroup:
            env.setdefault("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
        self._log = open(self.console_log, "ab")
        self._log.write(f"### {_fmt_cmd(cmd)}\n".encode())
        self._log.flush()
        # Own session: a Ctrl-C on the terminal reaches pytest (which tears down), not nspawn.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._write_owner()
        deadline = time.monotonic() + 20
        while self.leader is None:
            if self.proc.poll() is not None:
                raise HarnessError(f"systemd-nspawn exited {self.proc.returncode} at boot:\n"
                                   + self.console_tail())
            if time.monotonic() > deadline:
                raise HarnessError("no container PID 1 appeared within 20 s:\n"
                                   + self.console_tail())
            self.leader = _find_leader(self.proc.pid)
            if self.leader is None:
                time.sleep(0.02)
        self.leader_start = _start_time(self.leader)
        self._write_owner()

    def _wait_running(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        last = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(
                    f"{self.name} did not finish booting within {self.boot_timeout:.0f} s "
                    f"(is-system-running: {last!r}):\n{self.console_tail()}")
            if self.proc.poll() is not None:
                raise HarnessError(f"systemd-nspawn exited {self.proc.returncode} while "
                                   f"booting:\n{self.console_tail()}")
            try:
                r = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                             timeout=min(left, 30))
            except subprocess.TimeoutExpired:
                continue
            last = (r.stdout.strip() or r.stderr.strip())
            if r.stdout.strip() in ("running", "degraded"):
                self.state = r.stdout.strip()
                return
            if r.stdout.strip() in ("maintenance", "stopping", "offline"):
                if r.stdout.strip() != "offline":  # offline: systemd not up yet, retry
                    raise HarnessError(f"{self.name} boot ended in {last!r}:\n"
                                       f"{self.console_tail()}")
            time.sleep(0.05)

    def reboot(self, timeout: float = 60.0) -> None:
        """`systemctl reboot` inside, then boot the same root again (its files persist).

        systemd-nspawn exits when the container reboots (exit code 133); booting it again on
        the same overlay is what a reboot is to the installed system.
        """
        with timed("container reboot", self.label) as t:
            self.run(["systemctl", "reboot", "--no-block"], check=False, timeout=10)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise HarnessError(f"{self.name} did not go down within {timeout:.0f} s:\n"
                                   + self.console_tail()) from None
            if self.leader and _alive(self.leader, self.leader_start):
                _kill(self.leader)
                _wait_gone(self.leader, self.leader_start, 10)
            self.leader = self.leader_start = self.state = None
            with contextlib.suppress(Exception):
                self._log.close()
            self._spawn()
            self._wait_running()
            t["note"] = f"{self.label}: {self.state}"

    def stop(self, timeout: float = 30.0) -> None:
        """Power off; bounded wait; SIGKILL PID 1 and nspawn if needed; remove the copy."""
        if self._stopped:
            return
        self._stopped = True
        t0 = time.monotonic()
        how = "not started"
        try:
            if self.proc is not None and self.proc.poll() is None:
                how = "poweroff"
                if self.state is not None:
                    # Running systemd: a clean poweroff. One that never reached running
                    # ignores it, so only the signal and the kill below are counted on.
                    with contextlib.suppress(Exception):
                        self.run(["systemctl", "poweroff", "--no-block"], check=False,
                                 timeout=10)
                else:
                    _kill(self.leader, signal.SIGRTMIN + 4)
                    timeout = min(timeout, 5.0)  # it never booted: don't wait long
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    how = "killed"
                    # Kill PID 1 first: a SIGKILLed nspawn leaves the container running.
                    if self.leader and _alive(self.leader, self.leader_start):
                        _kill(self.leader)
                    _kill(self.proc.pid)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=10)
            elif self.proc is not None:
                how = f"had exited ({self.proc.returncode})"
            if self.leader and _alive(self.leader, self.leader_start):
                _kill(self.leader)
                _wait_gone(self.leader, self.leader_start, 10)
        finally:
            with contextlib.suppress(Exception):
                self._log.close()
            self._save_log()
            if self._overlay or os.path.ismount(self.root):
                _umount(self.root)
            if not os.path.ismount(self.root):
                _rm_tree(self.dir)
            with _LIVE_LOCK:
                _LIVE.discard(self)
            TIMINGS.append(("container stop", time.monotonic() - t0, f"{self.label}: {how}"))

    def _save_log(self) -> None:
        with contextlib.suppress(OSError):
            logs = CACHE_DIR / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.console_log, logs / f"{self.name}.console.log")
            old = sorted(logs.glob(f"{MACHINE_PREFIX}*.console.log"),
                         key=lambda p: p.stat().st_mtime)
            for p in old[:-40]:
                p.unlink(missing_ok=True)

    def __enter__(self) -> "Container":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Container {self.name} leader={self.leader} state={self.state}>"

    @property
    def alive(self) -> bool:
        return (self.proc is not None and self.proc.poll() is None and self.leader is not None
                and _alive(self.leader, self.leader_start))

    def console_tail(self, n: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-n:])
        return ""

    # -- commands --------------------------------------------------------------------
    def _argv(self, cmd, env: dict | None, user: str | None, cwd: str | None) -> list[str]:
        if self.leader is None:
            raise HarnessError(f"{self.name} is not running")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(c) for c in cmd]
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        if cwd:  # (nsenter --wd= would resolve the path on the host)
            argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', cwd] + argv
        full_env = dict(CONTAINER_ENV, **(env or {}))
        pre = ["nsenter", "-t", str(self.leader), "-a"]
        return pre + ["env", "-i"] + [f"{k}={v}" for k, v in full_env.items()] + argv

    def popen(self, cmd, *, env: dict | None = None, user: str | None = None,
              cwd: str | None = None, **kw) -> subprocess.Popen:
        """Start a command inside without waiting (load generators, `journalctl -f`...).

        It runs in its own process group: stop it with os.killpg(p.pid, SIGTERM).
        """
        kw.setdefault("text", True)
        return subprocess.Popen(self._argv(cmd, env, user, cwd), start_new_session=True,
                                env={"PATH": CLEAN_PATH}, **kw)

    def run(self, cmd, *, check: bool = True, timeout: float = DEFAULT_TIMEOUT,
            input: str | None = None, env: dict | None = None, user: str | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
        """Run `cmd` inside; returns CompletedProcess(stdout, stderr as str).

        check=True raises ContainerCommandError (rc and output) on a non-zero exit;
        timeout kills the whole command and raises subprocess.TimeoutExpired.
        """
        p = self.popen(cmd, env=env, user=user, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE,
                       stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.communicate(timeout=5)
            raise
        r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        if check and r.returncode != 0:
            raise ContainerCommandError(self.name, cmd, r.returncode, out, err)
        return r

    def sh(self, script: str, **kw) -> str:
        """Run a shell script (set -e), return its stdout stripped."""
        return self.run("set -e\n" + script, **kw).stdout.strip()

    def systemctl(self, *args: str, check: bool = True,
                  timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def unit_property(self, unit: str, prop: str) -> str:
        return self.run(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()

    def is_active(self, unit: str) -> str:
        return self.systemctl("is-active", unit, check=False).stdout.strip()

    def journal(self, unit: str | None = None, lines: int = 100, since_boot: bool = True) -> str:
        args = ["journalctl", "--no-pager", "-n", str(lines), "-o", "short-monotonic"]
        if since_boot:
            args.append("-b")
        if unit:
            args += ["-u", unit]
        return self.run(args, check=False, timeout=30).stdout

    def wait_until(self, cmd, *, timeout: float = 30.0, interval: float = 0.1,
                   expect_rc: int = 0, expect_stdout: str | None = None) -> subprocess.CompletedProcess:
        """Re-run `cmd` until it exits `expect_rc` (and stdout stripped == expect_stdout)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                r = self.run(cmd, check=False, timeout=max(1.0, min(left, 30)))
            except subprocess.TimeoutExpired:
                r = None
            if r is not None and r.returncode == expect_rc and (
                    expect_stdout is None or r.stdout.strip() == expect_stdout):
                return r
            if time.monotonic() >= deadline:
                got = "timeout" if r is None else f"rc={r.returncode} stdout={r.stdout.strip()!r}"
                raise TimeoutError(f"[{self.name}] {_fmt_cmd(cmd)!r} did not reach "
                                   f"rc={expect_rc} stdout={expect_stdout!r} in {timeout} s "
                                   f"(last: {got})")
            time.sleep(interval)

    # -- files -----------------------------------------------------------------------
    def host_path(self, path: str) -> Path:
        """Where the container's `path` lies on the host (writable overlay)."""
        return self.root / path.lstrip("/")

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        self.run(["install", "-D", "-m", f"{mode:o}", "/dev/stdin", path],
                 input=content if isinstance(content, str) else content.decode())

    def read_file(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def copy_in(self, src: Path | str, dest: str) -> str:
        """Copy a host file into the container (outside /tmp, which is a tmpfs there)."""
        target = self.host_path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        return dest

    @contextlib.contextmanager
    def agent_env(self, agents, name: str, **env: str):
        """Extra Environment= for some agents while the block runs: a runtime drop-in
        (/run/systemd/system/unified-agent@AGENT.service.d/NAME.conf, sorting after the
        generator's), the agents restarted with it and, on exit, without it."""
        units = [f"unified-agent@{a}.service" for a in agents]
        line = " ".join(f'"{k}={v}"' for k, v in env.items())
        paths = [f"/run/systemd/system/{u}.d/{name}.conf" for u in units]
        try:
            for p in paths:
                self.write_file(p, f"[Service]\nEnvironment={line}\n")
            self.systemctl("daemon-reload")
            self.systemctl("restart", *units)
            yield self
        finally:
            self.run(["rm", "-f", *paths])
            self.systemctl("daemon-reload")
            self.systemctl("restart", *units, check=False)

    # -- packages --------------------------------------------------------------------
    def install_deb(self, deb: Path | str, *, timeout: float = 600.0, check: bool = True,
                    companions: bool = True) -> subprocess.CompletedProcess:
        """`apt-get install -y ./NAME.deb` inside (the container has no network), with the
        packages built beside it (companion_debs) unless `companions` is false."""
        deb = Path(deb)
        debs = [deb, *(companion_debs(deb) if companions else [])]
        dests = [self.copy_in(d, f"/root/debs/{d.name}") for d in debs]
        with timed("deb install", f"{self.label}: {' '.join(d.name for d in debs)}"):
            return self.run(["apt-get", "install", "-y", "-o", "Dpkg::Use-Pty=0", *dests],
                            timeout=timeout, check=check, cwd="/root/debs")

    def dpkg_version(self, package: str = "unified-system") -> str | None:
        r = self.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", package],
                     check=False)
        parts = r.stdout.split()
        return parts[-1] if r.returncode == 0 and parts and parts[0] == "ii" else None


def boot(rootfs: Path | str, deb: Path | str | None = None, **kw) -> Container:
    """Start a container and (optionally) install a .deb; stops it again on failure."""
    c = Container(rootfs, **kw).start()
    if deb is not None:
        try:
            c.install_deb(deb)
        except BaseException:
            c.stop()
            raise
    return c


# --------------------------------------------------------------------------- cleanup

def stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for c in live:
        with contextlib.suppress(Exception):
            c.stop(timeout=15)


atexit.register(stop_all)
_handlers_installed = False


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP become KeyboardInterrupt, so finalizers and atexit tear down."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    _handlers_installed = True

    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, handler)


def sweep_stale(verbose: bool = True) -> list[str]:
    """Kill containers and remove copies left by harness runs whose owner is dead.

    Containers of live owners (another engineer's concurrent test run) are left alone.
    """
    swept = []
    if RUN_DIR.is_dir():
        for d in sorted(RUN_DIR.iterdir()):
            if not d.name.startswith(MACHINE_PREFIX):
                continue
            try:
                owner = json.loads((d / "owner.json").read_text())
            except (OSError, ValueError):
                owner = {}
            if owner.get("owner_pid") and _alive(owner["owner_pid"], owner.get("owner_start")):
                continue
            leader, leader_start = owner.get("leader_pid"), owner.get("leader_start")
            if leader and _alive(leader, leader_start):
                _kill(leader)
                _wait_gone(leader, leader_start, 10)
            npid = owner.get("nspawn_pid")
            if npid and _alive(npid) and d.name in " ".join(_cmdline(npid)):
                _kill(npid)
            _umount(d / "root")
            if not os.path.ismount(d / "root"):
                _rm_tree(d)
            swept.append(d.name)
    # Container PID 1s (and nspawns) whose run dir is gone but still use our tree.
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        cmd = _cmdline(pid)
        with contextlib.suppress(OSError):
            root = os.readlink(f"/proc/{pid}/root")
            if root.startswith(str(RUN_DIR) + "/"):
                name = root[len(str(RUN_DIR)) + 1:].split("/")[0]
                if _owner_dead(name):
                    _kill(pid)
                    swept.append(f"{name} (pid {pid})")
                continue
        if cmd[:1] and cmd[0].endswith("systemd-nspawn"):
            names = [a.split("=", 1)[-1] for a in cmd if MACHINE_PREFIX in a]
            for n in names:
                if n.startswith(MACHINE_PREFIX) and _owner_dead(n):
                    _kill(pid)
                    swept.append(f"{n} (nspawn {pid})")
    # Half-built rootfs trees of dead builders.
    if CACHE_DIR.is_dir():
        for d in CACHE_DIR.glob(".build-rootfs-*"):
            pid = d.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                _rm_tree(d)
                swept.append(d.name)
    if swept and verbose:
        sys.stderr.write(f"harness: swept stale containers/builds: {', '.join(swept)}\n")
    return swept


def _owner_dead(name: str) -> bool:
    m = re.match(re.escape(MACHINE_PREFIX) + r"(\d+)-", name)
    if not m:
        return False
    try:
        owner = json.loads((RUN_DIR / name / "owner.json").read_text())
        return not _alive(owner["owner_pid"], owner.get("owner_start"))
    except (OSError, ValueError, KeyError):
        return not _alive(int(m.group(1)))


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def live_containers() -> list[dict]:
    """Harness containers on this host (any owner), from their run dirs."""
    out = []
    if RUN_DIR.is_dir():
        for d in sorted(RUN_DIR.iterdir()):
            with contextlib.suppress(OSError, ValueError):
                info = json.loads((d / "owner.json").read_text())
                info["name"] = d.name
                info["owner_alive"] = _alive(info["owner_pid"], info.get("owner_start"))
                out.append(info)
    return out
