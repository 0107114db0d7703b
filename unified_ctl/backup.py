"""Backup and restore of one unified-system host: configuration + state in one archive.

Archive (tar.gz, mode 0600: state holds conversation memory):
  MANIFEST.json            format, format_version, host, created, version, profile, files
  config/etc/unified/...   the catalog, conf.d/, selected-profile, prometheus/ (not the
                           derived .last-good/ or .history/)
  state/var/lib/unified/...every file of the state dir; SQLite databases copied with
                           SQLite's online backup API (a consistent snapshot of each
                           database, WAL content included, while agents keep writing)

Every file is first copied into a private staging dir, hashed there (sha256 in the
manifest) and archived from there, so the manifest describes exactly the bytes archived.
Databases are read as their owner (user unified): opening a WAL database as root could
create -wal/-shm files the agent then cannot write.

Restore verifies the whole archive before touching anything (format, host, every member
listed and matching its sha256 and size, no unexpected member, catalog valid, SQLite
integrity_check), then stops the agents holding state files open (service and socket,
so nothing re-activates them), installs files atomically (stale -wal/-shm removed first:
a WAL of the old database applied to the restored one would corrupt it), and restarts.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import grp
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

from . import __version__
from unified_core import paths
from unified_core.errors import UnifiedError

FORMAT = "unified-backup"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.json"
SQLITE_MAGIC = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(UnifiedError):
    """The archive cannot be used; nothing was changed."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _walk(base: str, skip_dirs=lambda d: d.startswith(".")):
    """Regular files under base (relative paths), skipping hidden/derived dirs and temp files."""
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not skip_dirs(d))
        for name in sorted(files):
            p = os.path.join(root, name)
            if name.endswith((".tmp", ".tmp-install")) or not stat.S_ISREG(os.lstat(p).st_mode):
                continue
            yield os.path.relpath(p, base)


# -- SQLite snapshot ---------------------------------------------------------------------
# Run as the database's owner; the copy travels back on stdout (serialized), so the owner
# needs no write access anywhere and root never opens the live database.
_COPY = r"""
import sqlite3, sys, urllib.parse
s = sqlite3.connect("file:" + urllib.parse.quote(sys.argv[1]) + "?mode=ro", uri=True, timeout=30)
m = sqlite3.connect(":memory:")
s.backup(m)
sys.stdout.buffer.write(m.serialize())
"""


def sqlite_snapshot(src: str, dst: str) -> str:
    """Copy a live SQLite database consistently (online backup API) as the file's owner.
    Returns integrity_check of the copy ("ok")."""
    import sqlite3
    import urllib.parse

    st = os.stat(src)
    if os.geteuid() == 0 and st.st_uid != 0:
        proc = subprocess.run([sys.executable, "-I", "-c", _COPY, src], capture_output=True,
                              user=st.st_uid, group=st.st_gid, extra_groups=[], timeout=600)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise UnifiedError(f"cannot copy database {src} as its owner: {err[-1] if err else proc.returncode}")
        with open(dst, "wb") as f:
            f.write(proc.stdout)
        return sqlite_check(dst)
    s = sqlite3.connect("file:" + urllib.parse.quote(src) + "?mode=ro", uri=True, timeout=30)
    d = sqlite3.connect(dst)
    try:
        s.backup(d)
        return d.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        d.close()
        s.close()


def sqlite_check(path: str) -> str:
    import sqlite3

    import urllib.parse

    c = sqlite3.connect("file:" + urllib.parse.quote(path) + "?mode=ro&immutable=1", uri=True)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        c.close()


# -- create ------------------------------------------------------------------------------
def _owner(st) -> tuple[str, str]:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def default_path(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now or time.time()))
    return os.path.join(paths.backup_dir(), f"unified-backup-{socket.gethostname()}-{stamp}.tar.gz")


def create(dest: str | None = None) -> dict:
    """Write the archive; return its manifest (plus "path" and "bytes")."""
    from unified_core.profiles import read_selected

    dest = os.path.abspath(dest or default_path())
    if os.path.isdir(dest):
        dest = os.path.join(dest, os.path.basename(default_path()))
    os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
    etc, state = paths.etc_dir(), paths.state_dir()
    started = time.monotonic()
    staging = tempfile.mkdtemp(prefix=".unified-backup-", dir=os.path.dirname(dest))
    files = []
    try:
        plan = [("config", etc, rel) for rel in _walk(etc)] if os.path.isdir(etc) else []
        if os.path.isdir(state):
            plan += [("state", state, rel) for rel in _walk(state) if not rel.endswith(SIDE_FILES)]
        for kind, base, rel in plan:
            src = os.path.join(base, rel)
            name = f"{kind}{os.path.join(base, rel)}"  # config/etc/unified/unified.yaml
            staged = os.path.join(staging, name)
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            try:
                st = os.stat(src)
            except FileNotFoundError:
                continue  # removed since we listed it (an agent's temp file)
            entry: dict = {"name": name, "path": src, "kind": kind,
                           "mode": f"{stat.S_IMODE(st.st_mode):04o}"}
            entry["owner"], entry["group"] = _owner(st)
            if kind == "state" and is_sqlite(src):
                check = sqlite_snapshot(src, staged)
                if check != "ok":
                    raise UnifiedError(f"database {src} fails integrity_check ({check}); not backing it up "
                                       "silently: repair or move it aside first")
                entry["sqlite"] = True
            else:
                shutil.copyfile(src, staged)
            entry["size"] = os.path.getsize(staged)
            entry["sha256"] = sha256_file(staged)
            files.append(entry)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "unified_version": __version__,
            "host": socket.gethostname(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "created_epoch": time.time(), "profile": read_selected(), "etc": etc, "state": state,
            "files": files,
        }
        tmp = dest + ".partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                data = json.dumps(manifest, indent=1).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(data))
                for e in files:
                    info = tar.gettarinfo(os.path.join(staging, e["name"]), arcname=e["name"])
                    info.uid = info.gid = 0
                    info.uname = info.gname = "root"
                    info.mode = 0o600
                    with open(os.path.join(staging, e["name"]), "rb") as f:
                        tar.addfile(info, f)
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(tmp, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest["path"] = dest
    manifest["bytes"] = os.path.getsize(dest)
    manifest["seconds"] = round(time.monotonic() - started, 3)
    return manifest


# -- verify ------------------------------------------------------------------------------
@dataclass
class Verified:
    manifest: dict
    staging: str  # the archive's files, extracted and checked
    problems: list[str] = field(default_factory=list)

    def staged(self, entry: dict) -> str:
        return os.path.join(self.staging, entry["name"])

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and ".." not in parts and parts[0] in ("config", "state") and len(parts) > 1


def _check_manifest(m, allow_other_host: bool) -> None:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BackupError("not a unified-system backup (its MANIFEST.json does not say format "
                          f"{FORMAT!r})")
    v = m.get("format_version")
    if not isinstance(v, int):
        raise BackupError("MANIFEST.json has no format_version: not a unified-system backup")
    if v > FORMAT_VERSION:
        raise BackupError(f"archive format {v} is newer than this unified-ctl ({__version__}) understands "
                          f"(format {FORMAT_VERSION}); it was written by unified-system {m.get('unified_version')}: "
                          "restore it with that version or newer")
    if not isinstance(m.get("files"), list):
        raise BackupError("MANIFEST.json lists no files")
    here = socket.gethostname()
    if m.get("host") != here and not allow_other_host:
        raise BackupError(f"the archive is from host {m.get('host')!r}, this is {here!r}; restoring another "
                          "host's catalog and state here must be asked for: --other-host")


def verify(archive: str, allow_other_host: bool = False, staging_dir: str | None = None) -> Verified:
    """Read and check the whole archive; raise BackupError naming the first problem.
    On success the caller owns the staging dir (Verified.cleanup)."""
    if not os.path.isfile(archive):
        raise BackupError(f"{archive}: no such file")
    staging = tempfile.mkdtemp(prefix=".unified-restore-", dir=staging_dir or os.path.dirname(os.path.abspath(archive)))
    os.chmod(staging, 0o700)
    try:
        return _verify(archive, allow_other_host, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _verify(archive: str, allow_other_host: bool, staging: str) -> Verified:
    import zlib

    manifest, seen = None, {}
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in tar:
                if info.name == MANIFEST:
                    if manifest is not None:
                        raise BackupError("two MANIFEST.json members: not an archive unified-ctl wrote")
                    member = tar.extractfile(info)
                    if member is None:  # a link or directory by that name: json would never see it
                        raise BackupError("MANIFEST.json is not a regular file: not an archive "
                                          "unified-ctl wrote")
                    try:
                        manifest = json.loads(member.read())
                    except ValueError as e:
                        raise BackupError(f"MANIFEST.json is damaged ({e})") from None
                    _check_manifest(manifest, allow_other_host)
                    expected = {f["name"]: f for f in manifest["files"] if isinstance(f, dict) and "name" in f}
                    continue
                if manifest is None:
                    raise BackupError(f"{info.name} comes before MANIFEST.json: not an archive unified-ctl wrote")
                if not info.isfile() or not _safe_name(info.name) or info.name not in expected:
                    raise BackupError(f"unexpected member {info.name!r} (not a regular file listed in the "
                                      "manifest): refusing the archive")
                if info.name in seen:
                    raise BackupError(f"{info.name} appears twice in the archive")
                dest = os.path.join(staging, info.name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                h, size = hashlib.sha256(), 0
                src_f = tar.extractfile(info)
                assert src_f is not None  # info.isfile() above
                with src_f as src, open(dest, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                want = expected[info.name]
                if h.hexdigest() != want.get("sha256") or size != want.get("size"):
                    raise BackupError(f"{info.name}: checksum mismatch (sha256 {h.hexdigest()[:16]}…, "
                                      f"manifest {str(want.get('sha256'))[:16]}…): the archive is corrupt")
                seen[info.name] = want
            # tarfile stops at the end-of-archive blocks; reading on to the gzip trailer checks its
            # CRC, so damage in the padding after the last member is refused too
            assert tar.fileobj is not None
            while tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise BackupError(f"{archive} is corrupt or not a tar.gz archive ({type(e).__name__}: {e})") from None
    if manifest is None:
        raise BackupError(f"{archive} has no MANIFEST.json: not a unified-system backup")
    missing = sorted(set(expected) - set(seen))
    if missing:
        raise BackupError(f"the archive is truncated: {len(missing)} file(s) of the manifest are missing "
                          f"({', '.join(missing[:3])}{'…' if len(missing) > 3 else ''})")
    v = Verified(manifest, staging)
    for item in manifest["files"]:
        if item.get("sqlite"):
            check = sqlite_check(v.staged(item))
            if check != "ok":
                raise BackupError(f"{item['name']}: database fails integrity_check ({check})")
        if item["kind"] == "config" and item["path"] == os.path.join(manifest["etc"], "unified.yaml"):
            _check_catalog(v, item)
    return v


def _check_catalog(v: Verified, main: dict) -> None:
    from unified_core.catalog import load_catalog

    try:
        load_catalog(v.staged(main), env={})
    except UnifiedError as e:
        raise BackupError("the archive's catalog is not valid for this version of unified-ctl; nothing was "
                          f"changed:\n{e}") from None
