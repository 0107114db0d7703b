"""unified-ctl's exit statuses: one line and a documented code for every way it can end, in
particular for a normal user running a command that only root may run (77, EX_NOPERM), never
"internal error: PermissionError" (70). The man page's EXIT STATUS lists errors.EXIT_STATUS."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from unified_ctl import cli as cli_mod
from unified_core.errors import EXIT_INTERNAL, EXIT_NOPERM, EXIT_STATUS, NeedsRoot, SystemdError
from unified_core.systemd import Systemd

ROOT = Path(__file__).resolve().parents[2]
CATALOG = str(ROOT / "etc" / "unified" / "unified.yaml")
MAN = ROOT / "packaging" / "debian" / "unified-ctl.1"


@pytest.fixture()
def not_writable():
    """A directory this user cannot write in; commands are run as `nobody` when we are root
    (root may write anywhere), else as ourselves with the directory read-only."""
    d = Path(tempfile.mkdtemp(prefix="unified-noperm-"))
    os.chmod(d, 0o755 if os.geteuid() == 0 else 0o555)
    yield d
    os.chmod(d, 0o755)
    d.rmdir()


def run_ctl(args, env, tmp):
    """unified-ctl from this source tree as a user who is not root; (rc, stdout, stderr)."""
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp),
                "UNIFIED_ETC": str(tmp / "etc"), "UNIFIED_RUN_DIR": str(tmp / "run"), **env}
    p = subprocess.run([*drop, sys.executable, "-m", "unified_ctl", "-c", CATALOG, *args],
                       cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_auto_restart_disable_as_a_user_says_it_needs_root_in_one_line(not_writable):
    rc, out, err = run_ctl(["auto-restart", "disable"],
                           {"UNIFIED_RUNTIME_UNITS": str(not_writable / "units")}, not_writable)
    assert rc == EXIT_NOPERM == 77
    assert err.splitlines() == [
        f"Error: unified-ctl auto-restart disable: needs root (Permission denied: "
        f"{not_writable / 'units'}): run it with sudo"]
    assert out == "" and "Traceback" not in err


def test_backup_create_as_a_user_says_it_needs_root_in_one_line(not_writable):
    rc, out, err = run_ctl(["backup", "create"],
                           {"UNIFIED_BACKUP_DIR": str(not_writable / "backups"),
                            "UNIFIED_STATE_DIR": str(not_writable / "state")}, not_writable)
    assert rc == EXIT_NOPERM
    assert len(err.splitlines()) == 1 and "internal error" not in err, err
    assert err.startswith("Error: unified-ctl backup create: needs root (Permission denied: ")
    assert err.rstrip().endswith("): run it with sudo")


def test_a_command_path_skips_options_and_stops_at_arguments():
    assert cli_mod.command_path(["-c", "x.yaml", "backup", "create", "/tmp/b"]) == \
        "unified-ctl backup create"
    assert cli_mod.command_path(["--config", "backup", "auto-restart", "disable"]) == \
        "unified-ctl auto-restart disable"
    assert cli_mod.command_path(["profile", "switch", "--dry-run", "core"]) == \
        "unified-ctl profile switch"
    assert cli_mod.command_path(["no-such-command"]) == "unified-ctl"
    assert cli_mod.command_path(["--lock-timeout", "0", "profile", "switch", "core"]) == \
        "unified-ctl profile switch"
    assert cli_mod.command_path(["--lock-timeout=0", "apply"]) == "unified-ctl apply"


def test_permission_denied_as_root_does_not_tell_root_to_use_sudo(monkeypatch, capsys):
    from unified_core import runtime

    def refuse(enabled):
        raise PermissionError(13, "Permission denied", "/run/systemd/system/x.d")

    monkeypatch.setattr(runtime, "set_auto_restart", refuse)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cli_mod.main(["-c", CATALOG, "auto-restart", "disable"]) == EXIT_NOPERM
    err = capsys.readouterr().err
    assert err == ("Error: unified-ctl auto-restart disable: Permission denied: "
                   "/run/systemd/system/x.d, even as root\n")


def fake_systemctl(tmp_path, message: str) -> str:
    exe = tmp_path / "systemctl"
    exe.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.parametrize("message, call, shown", [
    ("Failed to start unified.target: Access denied", lambda sd: sd.start(["unified.target"]),
     "start -- unified.target`: Access denied"),
    ("Failed to reload daemon: Interactive authentication required.", Systemd.daemon_reload,
     "daemon-reload`: Interactive authentication required"),
])
def test_systemd_refusing_a_user_is_needs_root(tmp_path, message, call, shown):
    sd = Systemd(systemctl=fake_systemctl(tmp_path, message))
    with pytest.raises(NeedsRoot) as e:
        call(sd)
    assert e.value.message.startswith("systemd refused `") and e.value.message.endswith(shown)
    assert e.value.exit_code == EXIT_NOPERM


def test_other_systemctl_failures_stay_systemd_errors(tmp_path):
    sd = Systemd(systemctl=fake_systemctl(tmp_path, "Unit x.service not found."))
    with pytest.raises(SystemdError) as e:
        sd.start(["x.service"])
    assert not isinstance(e.value, NeedsRoot) and e.value.exit_code == 3


def test_a_bug_is_still_one_line_and_70(monkeypatch, capsys):
    from unified_core import runtime

    monkeypatch.setattr(runtime, "auto_restart_disabled", lambda: {}["boom"])
    monkeypatch.delenv("UNIFIED_DEBUG", raising=False)
    assert cli_mod.main(["auto-restart", "status"]) == EXIT_INTERNAL == 70
    assert capsys.readouterr().err.startswith("internal error: KeyError: 'boom' ")


def man_exit_status(page: Path) -> dict[int, str]:
    """{code: text} of the .SH "EXIT STATUS" section (.TP / .B code / text)."""
    text = page.read_text()
    m = re.search(r'^\.SH "?EXIT STATUS"?\n(.*?)(?=^\.SH )', text, re.S | re.M)
    assert m, f"{page.name} has no EXIT STATUS section"
    return {int(code): body.strip() for code, body in
            re.findall(r"^\.TP\n\.B (\d+)\n(.*?)(?=^\.TP|\Z)", m.group(1), re.S | re.M)}


def test_the_man_page_lists_every_exit_status_of_unified_ctl():
    assert set(man_exit_status(MAN)) == set(EXIT_STATUS)


def test_the_agent_man_page_lists_the_agent_exit_statuses():
    assert set(man_exit_status(ROOT / "packaging" / "debian" / "unified-agent.1")) == \
        {0, 1, 2, 130}


def test_journal_maintenance_refused_to_a_user_is_needs_root(tmp_path, monkeypatch, capsys):
    journalctl = tmp_path / "journalctl"
    journalctl.write_text("#!/bin/sh\necho 'Failed to connect to "
                          "/run/systemd/journal/io.systemd.journal: Permission denied' >&2\nexit 1\n")
    journalctl.chmod(0o755)
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: Systemd(journalctl=str(journalctl))))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli_mod.main(["-c", CATALOG, "logs", "rotate"]) == EXIT_NOPERM
    assert capsys.readouterr().err == ("Error: unified-ctl logs rotate: needs root (journald "
                                       "refused `journalctl --rotate`): run it with sudo\n")


def test_monitoring_setup_as_a_user_needs_root_and_points_at_dry_run(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli_mod.main(["-c", CATALOG, "monitoring", "setup"]) == EXIT_NOPERM
    err = capsys.readouterr().err
    assert err.startswith("Error: unified-ctl monitoring setup: needs root (") and "--dry-run" in err
    assert len(err.splitlines()) == 1
