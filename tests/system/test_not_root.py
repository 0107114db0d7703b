"""A normal user running unified-ctl on the installed package: commands that change the
system end in one line that names the command and says it needs root, exit 77 (the man
page's EXIT STATUS), no traceback and nothing changed; commands that only read work."""
import json

import pytest

NEEDS_ROOT = 77
USER = "nobody"

# (command, its arguments, what the line says was refused); the first two are the issue's.
# Commands that change the fleet are refused at the fleet lock, before anything else.
CHANGING = [
    ("auto-restart disable", [], "Permission denied: /run/systemd/system/unified-agent@.service.d"),
    ("backup create", [], "Permission denied: /var/backups/unified"),
    ("profile switch", ["core"], "Permission denied: /run/unified/fleet.lock"),
    ("apply", [], "Permission denied: /run/unified/fleet.lock"),
    ("agent restart", ["ServiceRegistry"], "Permission denied: /run/unified/fleet.lock"),
    ("emergency-stop", ["--yes"], "Permission denied: /run/unified/fleet.lock"),
    ("logs vacuum", ["--keep", "7d"], "journald refused `journalctl --rotate --vacuum-time=7d`"),
    ("logs rotate", [], "journald refused `journalctl --rotate`"),
    ("monitoring setup", ["--no-start"], "changes /etc/prometheus"),
    ("monitoring remove", ["--yes"], "changes /etc/prometheus"),
    ("report weekly", ["--no-plot"], "Permission denied: /var/lib/unified-system"),
]
READING = [["status"], ["validate"], ["profile", "list"], ["auto-restart", "status"],
           ["backup", "list"], ["logs", "usage"]]


@pytest.fixture()
def settled(container):
    """The agent the state looks at is up (the boot starts the selected profile)."""
    container.wait_until(["systemctl", "is-active", "--quiet",
                          "unified-agent@ServiceRegistry.service"], timeout=120)
    return container


def _state(c) -> dict:
    """What the changing commands would change: a running agent (same invocation: neither
    stopped nor restarted), the target, drop-ins, backups, catalog and profile, reports.
    (Not every unit's state: peers socket-activate dormant agents at any time.)"""
    return {
        "registry": c.run(["systemctl", "show", "-p", "ActiveState,InvocationID",
                           "unified-agent@ServiceRegistry.service"]).stdout,
        "target": c.run(["systemctl", "is-active", "unified.target"], check=False).stdout,
        "runtime": c.run("ls -R /run/systemd/system 2>/dev/null || true").stdout,
        "backups": c.run("ls -l /var/backups/unified 2>/dev/null || true").stdout,
        "etc": c.run(["ls", "-la", "/etc/unified"]).stdout,
        "reports": c.run("ls -R /var/lib/unified-system 2>/dev/null || true").stdout,
    }


@pytest.mark.parametrize("command, args, refused", CHANGING, ids=[c for c, _, _ in CHANGING])
def test_a_changing_command_run_by_a_user_says_it_needs_root_in_one_line(settled, command,
                                                                           args, refused):
    container = settled
    before = _state(container)
    r = container.run(["unified-ctl", *command.split(), *args], user=USER, check=False, cwd="/",
                      timeout=120)
    assert r.returncode == NEEDS_ROOT, (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip()
    assert line.startswith(f"Error: unified-ctl {command}: needs root ("), line
    assert refused in line and line.endswith("): run it with sudo"), line
    assert _state(container) == before


def test_commands_that_only_read_work_for_a_user(container):
    for args in READING:
        r = container.run(["unified-ctl", *args], user=USER, check=False, cwd="/", timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    r = container.run(["unified-ctl", "status", "--json"], user=USER, cwd="/")
    assert json.loads(r.stdout)["agents"]
