"""Backup and restore: one archive with a manifest and checksums; SQLite copied live; restore
verifies everything before touching anything and round-trips with nothing lost."""
from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import tarfile
import threading

import pytest

from unified_ctl import backup, restore
from unified_core import paths
from unified_core.catalog import load_catalog

from ..fakes import FakeSystemd


def make_db(path, rows, keep_open=False):
    """A WAL database like the agents keep; the last rows stay in the -wal file."""
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")  # nothing reaches the main file: the copy must read the WAL
    c.execute("CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, text TEXT)")
    with c:
        c.executemany("INSERT INTO items(text) VALUES (?)", [(f"item {i}",) for i in range(rows)])
    if keep_open:
        return c
    c.close()


def count(path):
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        c.close()


@pytest.fixture()
def sd(ops_env):
    return FakeSystemd(load_catalog(paths.catalog_file(), env={}))


@pytest.fixture()
def state(ops_env):
    s = ops_env / "state"
    (s / "memory").mkdir()
    (s / "hub-cursor.json").write_text('{"cursor": "s=abc"}')
    (ops_env / "etc" / "selected-profile").write_text("core\n")
    return s


def test_archive_holds_config_and_state_with_a_manifest_of_checksums(state, ops_env):
    conn = make_db(str(state / "twin.db"), 50, keep_open=True)  # an agent still has it open
    try:
        m = backup.create()
    finally:
        conn.close()
    assert stat.S_IMODE(os.stat(m["path"]).st_mode) == 0o600
    assert m["format"] == "unified-backup" and m["format_version"] == backup.FORMAT_VERSION
    names = {f["name"]: f for f in m["files"]}
    assert f"config{ops_env}/etc/unified.yaml" in names
    assert f"config{ops_env}/etc/selected-profile" in names
    assert f"state{state}/hub-cursor.json" in names
    db = names[f"state{state}/twin.db"]
    assert db["sqlite"] is True and len(db["sha256"]) == 64
    assert not any(n.endswith(("-wal", "-shm")) for n in names)  # the copy includes the WAL content
    with tarfile.open(m["path"]) as tar:
        assert tar.getnames()[0] == "MANIFEST.json"
        tar.extract(f"state{state}/twin.db", ops_env / "x")
    assert count(ops_env / "x" / f"state{state}" / "twin.db") == 50
    assert m["profile"] == "core"


def test_databases_are_copied_consistently_while_written(state, ops_env):
    make_db(str(state / "memory" / "items.db"), 10)
    stop = threading.Event()

    def writer():
        c = sqlite3.connect(str(state / "memory" / "items.db"), timeout=10)
        while not stop.is_set():
            with c:
                c.executemany("INSERT INTO items(text) VALUES (?)", [("w",)] * 20)
        c.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        m = backup.create()
    finally:
        stop.set()
        t.join()
    v = backup.verify(m["path"])  # integrity_check of every database inside
    try:
        e = next(f for f in m["files"] if f["name"].endswith("items.db"))
        n = count(v.staged(e))
        assert n >= 10 and (n - 10) % 20 == 0  # whole transactions only
    finally:
        v.cleanup()


def test_backup_then_wipe_then_restore_brings_everything_back(state, ops_env, sd):
    make_db(str(state / "twin.db"), 30)
    make_db(str(state / "memory" / "items.db"), 7)
    m = backup.create()
    # the disaster: state wiped, catalog drop-in added, selected profile changed
    for p in sorted(state.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (ops_env / "etc" / "conf.d" / "90-after.yaml").write_text("settings:\n  log_level: DEBUG\n")
    (ops_env / "etc" / "selected-profile").write_text("learning\n")
    res = restore.restore(m["path"], sd, wait=False)
    assert count(state / "twin.db") == 30 and count(state / "memory" / "items.db") == 7
    assert json.loads((state / "hub-cursor.json").read_text()) == {"cursor": "s=abc"}
    assert not (ops_env / "etc" / "conf.d" / "90-after.yaml").exists()
    assert res["removed_dropins"] == ["conf.d/90-after.yaml"]
    assert (ops_env / "etc" / "selected-profile").read_text() == "core\n"
    assert res["profile"] == "core"
    assert stat.S_IMODE(os.stat(state / "twin.db").st_mode) & 0o027 == 0  # at most 0640
    assert stat.S_IMODE(os.stat(state / "memory").st_mode) == 0o750
    assert ("daemon-reload",) in sd.calls


def test_restore_removes_a_stale_wal_that_would_corrupt_the_restored_database(state, ops_env, sd):
    make_db(str(state / "twin.db"), 5)
    m = backup.create()
    (state / "twin.db-wal").write_bytes(b"\x37\x7f\x06\x82" + os.urandom(4096))
    restore.restore(m["path"], sd, wait=False)
    assert not (state / "twin.db-wal").exists()
    assert count(state / "twin.db") == 5


def corrupt(path, offset_fraction=0.5):
    data = bytearray(open(path, "rb").read())
    i = int(len(data) * offset_fraction)
    data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_a_corrupted_archive_is_refused_and_nothing_changes(state, ops_env, sd):
    make_db(str(state / "twin.db"), 2000)
    m = backup.create()
    make_db(str(state / "twin.db"), 1)  # state moved on: 2001 rows
    corrupt(m["path"])
    with pytest.raises(backup.BackupError) as e:
        restore.restore(m["path"], sd, wait=False)
    assert "corrupt" in str(e.value.message)
    assert count(state / "twin.db") == 2001 and sd.calls == []
    assert not [p for p in os.listdir(os.path.dirname(m["path"])) if p.startswith(".unified-restore-")]


def test_a_truncated_archive_is_refused(state, ops_env):
    make_db(str(state / "twin.db"), 2000)
    m = backup.create()
    data = open(m["path"], "rb").read()
    open(m["path"], "wb").write(data[: len(data) // 2])
    with pytest.raises(backup.BackupError, match="corrupt"):
        backup.verify(m["path"])


def repack(src, dest, edit_manifest=None, extra=None):
    """Rewrite an archive with its manifest edited (a foreign or future archive)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for info in tin:
            data = tin.extractfile(info).read()
            if info.name == "MANIFEST.json" and edit_manifest:
                m = json.loads(data)
                edit_manifest(m)
                data = json.dumps(m).encode()
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dest


def test_an_archive_from_another_host_is_refused_unless_asked_for(state, ops_env):
    m = backup.create()
    other = repack(m["path"], str(ops_env / "other.tar.gz"), lambda d: d.update(host="pc2"))
    with pytest.raises(backup.BackupError, match="from host 'pc2'.*--other-host"):
        backup.verify(other)
    backup.verify(other, allow_other_host=True).cleanup()


def test_a_newer_archive_format_is_refused_with_the_version_that_wrote_it(state, ops_env):
    m = backup.create()
    newer = repack(m["path"], str(ops_env / "newer.tar.gz"),
                   lambda d: d.update(format_version=backup.FORMAT_VERSION + 1, unified_version="9.0"))
    with pytest.raises(backup.BackupError, match="newer than this unified-ctl.*unified-system 9.0"):
        backup.verify(newer)


def test_an_archive_that_is_not_ours_is_refused(ops_env):
    p = ops_env / "random.tar.gz"
    with tarfile.open(p, "w:gz") as t:
        info = tarfile.TarInfo("etc/passwd")
        info.size = 4
        t.addfile(info, io.BytesIO(b"root"))
    with pytest.raises(backup.BackupError, match="MANIFEST.json"):
        backup.verify(str(p))
    (ops_env / "plain.txt").write_text("hello")
    with pytest.raises(backup.BackupError, match="corrupt or not a tar.gz"):
        backup.verify(str(ops_env / "plain.txt"))


def test_a_manifest_that_is_not_a_regular_file_is_refused_in_one_line(ops_env):
    # (found by mypy: tar.extractfile() is None for a directory, read() then crashed)
    p = ops_env / "dir-manifest.tar.gz"
    with tarfile.open(p, "w:gz") as t:
        info = tarfile.TarInfo("MANIFEST.json")
        info.type = tarfile.DIRTYPE
        t.addfile(info)
    with pytest.raises(backup.BackupError, match="MANIFEST.json is not a regular file"):
        backup.verify(str(p))


def test_a_member_outside_the_manifest_is_refused(state, ops_env):
    m = backup.create()
    evil = repack(m["path"], str(ops_env / "evil.tar.gz"), extra={"state/../../etc/cron.d/x": b"* * * * * root sh"})
    with pytest.raises(backup.BackupError, match="unexpected member"):
        backup.verify(evil)


def test_an_archive_whose_catalog_is_invalid_is_refused(state, ops_env):
    main = ops_env / "etc" / "unified.yaml"
    good = main.read_text()
    main.write_text(good.replace("port: 7108", "port: seventy", 1))
    m = backup.create()
    main.write_text(good)
    with pytest.raises(backup.BackupError, match="catalog is not valid"):
        backup.verify(m["path"])


@pytest.mark.skipif(os.geteuid() != 0, reason="reading as the owner needs root to switch user")
def test_a_database_is_read_as_its_owner_so_root_leaves_no_side_files_the_agent_cannot_write(state, ops_env):
    import pwd

    nobody = pwd.getpwnam("nobody")
    db = state / "twin.db"
    make_db(str(db), 3)
    for p in (state, db):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    os.chmod(state, 0o750)
    for parent in state.parents:  # pytest's 0700 tmp dirs: let the owner reach its state dir
        if str(parent) == "/tmp":
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o111)
    m = backup.create()
    sides = [state / s for s in ("twin.db-wal", "twin.db-shm") if (state / s).exists()]
    assert sides, "the owner's read-only WAL connection made its side files"
    assert all(p.stat().st_uid == nobody.pw_uid for p in sides)
    v = backup.verify(m["path"])
    try:
        assert count(v.staged(next(f for f in m["files"] if f.get("sqlite")))) == 3
    finally:
        v.cleanup()


def test_restore_stops_exactly_the_agents_holding_state_and_starts_them_again(state, ops_env, sd, monkeypatch):
    make_db(str(state / "twin.db"), 3)
    m = backup.create()
    sd.start(["unified-agent@SystemDigitalTwin.socket", "unified-agent@SystemDigitalTwin.service"])
    sd.calls.clear()
    monkeypatch.setattr(restore, "state_holders", lambda d: ({"SystemDigitalTwin": {4242}}, []))
    res = restore.restore(m["path"], sd, wait=False)
    assert res["stopped"] == ["SystemDigitalTwin"]
    first_stop = next(c for c in sd.calls if c[0] == "stop")
    assert set(first_stop[1]) == {"unified-agent@SystemDigitalTwin.socket", "unified-agent@SystemDigitalTwin.service"}
    assert sd.is_active("unified-agent@SystemDigitalTwin.service")


def test_unit_of_pid_reads_the_agent_from_the_cgroup(monkeypatch, tmp_path):
    assert restore.UNIT_RE.search("0::/unified.slice/unified-agents.slice/unified-agent@MemoryClient.service"
                                  ).group(2) == "MemoryClient"
    assert restore.unit_of_pid(os.getpid()) is None


def test_cli_create_verify_list_and_restore(state, ops_env, sd, monkeypatch):
    from click.testing import CliRunner

    from unified_ctl import cli as cli_mod

    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: sd))
    make_db(str(state / "twin.db"), 4)
    run = CliRunner()
    out = run.invoke(cli_mod.cli, ["backup", "create"])
    assert out.exit_code == 0, out.output
    assert "1 SQLite databases, copied consistently" in out.output
    path = out.output.split(":")[0]
    assert run.invoke(cli_mod.cli, ["backup", "verify", path]).output.startswith(f"OK {path}")
    assert path in run.invoke(cli_mod.cli, ["backup", "list"]).output
    (state / "twin.db").unlink()
    out = run.invoke(cli_mod.cli, ["-c", paths.catalog_file(), "backup", "restore", "--yes", "--no-wait", path])
    assert out.exit_code == 0, out.output
    assert count(state / "twin.db") == 4
    corrupt(path, 0.6)
    out = run.invoke(cli_mod.cli, ["backup", "restore", "--yes", path])
    assert out.exit_code == 1 and "corrupt" in out.output, out.output


def test_restore_ends_a_trial_so_the_restored_catalog_is_the_live_one(state, ops_env, sd):
    from unified_ctl import config_history

    m = backup.create()
    trial = ops_env / "trial.yaml"
    trial.write_text((ops_env / "etc" / "unified.yaml").read_text().replace("log_level: INFO", "log_level: DEBUG"))
    config_history.start_trial({"unified.yaml": str(trial)}, str(trial))
    res = restore.restore(m["path"], sd, wait=False)
    assert res["trial_ended"] is True and config_history.trial_catalog() is None


def test_damage_anywhere_in_the_archive_is_refused_even_in_tar_padding(state, ops_env):
    # tarfile stops at the end-of-archive blocks without reading to the gzip trailer, so damage in
    # the padding after the last member would pass every member checksum: the CRC must be read too
    make_db(str(state / "twin.db"), 2000)
    m = backup.create()
    pristine = open(m["path"], "rb").read()
    missed = []
    for i in range(10, len(pristine) - 8, max(1, len(pristine) // 200)):
        data = bytearray(pristine)
        data[i] ^= 0xFF
        open(m["path"], "wb").write(bytes(data))
        try:
            backup.verify(m["path"]).cleanup()
            missed.append(i)
        except backup.BackupError:
            pass
    assert missed == [], f"damage at byte(s) {missed} of {len(pristine)} went unnoticed"
