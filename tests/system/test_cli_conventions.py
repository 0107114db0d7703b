"""unified-ctl as an operator used to systemctl and journalctl expects it, on real systemd:
globs, --group and `all`; agent list/show; profile diff and config show with no systemd at all;
journalctl's flags through `logs`; --dry-run that changes nothing (PIDs, files, history).

Tests share the session container and leave the core profile selected and running.
"""
from __future__ import annotations

import json

import pytest

NO_SYSTEMD = ["env", "-i", "PATH=/nonexistent", "/usr/bin/unified-ctl"]  # systemctl cannot be found


def ctl(c, *args, **kw):
    return c.run(["unified-ctl", *args], **kw)


def ctl_json(c, *args, **kw):
    return json.loads(ctl(c, *args, "--json", **kw).stdout)


def switch_core(c):
    r = ctl(c, "profile", "switch", "core", "--json", check=False, timeout=180)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr


def main_pid(c, agent) -> int:
    return int(c.unit_property(f"unified-agent@{agent}.service", "MainPID"))


def running_processes(c) -> list[str]:
    out = c.run(["systemctl", "list-units", "--plain", "--no-legend", "--state=active", "unified-agent@*.service"]).stdout
    return sorted(line.split()[0][len("unified-agent@"):-len(".service")] for line in out.splitlines() if line.strip())


@pytest.fixture
def core(container):
    switch_core(container)
    yield container
    container.run(["rm", "-f", "/etc/unified/conf.d/50-systest-conventions.yaml"])
    container.run(["unified-ctl", "overrides", "clear"], check=False, timeout=180)
    container.run(["unified-ctl", "apply", "--restart"], check=False, timeout=180)
    switch_core(container)


def test_globs_groups_and_all_act_on_the_agents_they_match(core):
    c = core
    data = ctl_json(c, "status", "Memory*", "--no-health", "--no-pager")
    assert [(a["name"], a["agent"], a["state"]) for a in data["agents"]] == [
        ("MemoryClient", "MemoryClient", "active"), ("MemoryOrchestratorService", "MemoryOrchestratorService", "stopped")]
    pid = main_pid(c, "MemoryClient")
    assert ctl(c, "agent", "restart", "Memory*").stdout == "restarted MemoryClient (the running ones matching)\n"
    assert main_pid(c, "MemoryClient") != pid
    assert c.is_active("unified-agent@MemoryOrchestratorService.service") != "active"
    r = ctl(c, "status", "memory*", check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "no agent matches 'memory*'; close names: MemoryClient, MemoryOrchestratorService" in r.stderr
    group = ctl_json(c, "status", "--group", "memory_foundation", "--no-health")
    assert len(group["agents"]) == 3
    # restart all: every running process, and no dormant agent is started by it
    running = running_processes(c)
    pids = {a: main_pid(c, a) for a in running}
    out = ctl(c, "agent", "restart", "all", timeout=180).stdout
    assert out.startswith("restarted ") and out.endswith("(the running ones matching)\n")
    assert running_processes(c) == running
    assert all(main_pid(c, a) != pids[a] for a in running)


def test_agent_list_and_show_tell_group_profiles_port_units_and_state(core):
    c = core
    rows = {r["name"]: r for r in ctl_json(c, "agent", "list")}
    assert len(rows) == 77
    mc = rows["MemoryClient"]
    assert mc["state"] == "active" and "core" in mc["profiles"] and mc["group"] == "memory_foundation"
    assert rows["FaceRecognitionAgent"]["state"] == "stopped"
    show = ctl_json(c, "agent", "show", "MemoryClient")
    svc = show["units"]["unified-agent@MemoryClient.service"]
    assert svc["ActiveState"] == "active" and svc["FragmentPath"].endswith("unified-agent@.service")
    assert show["catalog"]["port"] == mc["port"] and show["sources"] == ["/etc/unified/unified.yaml"]
    assert show["state"]["pid"] == main_pid(c, "MemoryClient")


def test_profile_diff_and_config_show_need_no_systemd(core):
    c = core
    d = json.loads(c.run([*NO_SYSTEMD, "profile", "diff", "core", "vision", "--json"]).stdout)
    assert d["autoload"]["added"] == ["FaceRecognitionAgent", "VisionProcessingAgent"]
    assert d["start_timeout_s"] == {"from": 60.0, "to": 90.0}
    c.write_file("/etc/unified/conf.d/50-systest-conventions.yaml", "agents:\n  MemoryClient:\n    description: shown\n")
    ctl(c, "profile", "switch", "core", env={"LOG_LEVEL": "DEBUG"}, timeout=180)
    shown = c.run([*NO_SYSTEMD, "config", "show"]).stdout
    assert "# overrides in force (settings.*; `unified-ctl overrides clear` drops them): LOG_LEVEL=DEBUG" in shown
    assert "log_level: DEBUG" in shown and "description: shown" in shown
    c.write_file("/root/shown.yaml", shown)
    assert ctl(c, "validate", "/root/shown.yaml").stdout.startswith("OK /root/shown.yaml: 77 agents")
    c.run(["rm", "-f", "/root/shown.yaml"])


def test_logs_takes_journalctls_flags_and_arguments(core):
    c = core
    r = ctl(c, "logs", "ServiceRegistry", "-n", "3", "-S", "-1h", "--until", "now", "-o", "cat", "--", "--reverse")
    assert r.returncode == 0 and len(r.stdout.splitlines()) <= 3
    r = ctl(c, "logs", "ServiceRegistry", "-g", "ServiceRegistry", "-n", "2", "-o", "short-iso")
    assert r.returncode == 0 and "ServiceRegistry" in r.stdout
    ctl(c, "debug", "capture", "-O", "/root/conventions-capture.json", timeout=120)
    assert json.loads(c.read_file("/root/conventions-capture.json"))["systemd"]
    c.run(["rm", "-f", "/root/conventions-capture.json"])
    assert "status" in ctl_json(c, "health", "-i", "1", check=False)


def _unchanged(c):
    """What a --dry-run must leave as it is: the processes, /etc/unified and its history, the
    databases (by inode: a restore installs new files, a recover deletes them; the running
    agents keep writing into them, and the hub replaces its cursor file, meanwhile)."""
    return ({a: main_pid(c, a) for a in running_processes(c)},
            c.sh("cd /etc/unified && find . -type f | sort | xargs sha256sum"),
            c.sh("find /var/lib/unified -name '*.db' -printf '%i %p\\n' | sort"))


def test_dry_runs_change_nothing_on_systemd(core):
    c = core
    # a baseline: earlier tests of this container may have left the files ahead of what was
    # last applied (a drop-in removed without `apply`); the dry run must see only ours
    ctl(c, "apply", timeout=120)
    c.write_file("/etc/unified/conf.d/50-systest-conventions.yaml",
                 "agents:\n  MemoryClient:\n    environment: {SYSTEST_CONVENTIONS: '1'}\n")
    before = _unchanged(c)
    d = ctl_json(c, "apply", "--dry-run")
    assert d["changed"] and d["stale"] == {"MemoryClient": "its unit changed"}
    assert _unchanged(c) == before
    ctl(c, "apply", timeout=120)  # now a rollback has something to go back from
    before = _unchanged(c)
    d = ctl_json(c, "config", "rollback", "--dry-run")
    assert d["removed_dropins"] == ["conf.d/50-systest-conventions.yaml"] and "MemoryClient" in d["restart"]
    assert _unchanged(c) == before
    ctl(c, "backup", "create", "/root/conventions.tar.gz", timeout=120)
    d = ctl_json(c, "backup", "restore", "--dry-run", "/root/conventions.tar.gz", timeout=120)
    assert "/etc/unified/conf.d/50-systest-conventions.yaml" in d["install"]["config"]
    assert _unchanged(c) == before
    c.run(["rm", "-f", "/root/conventions.tar.gz"])
    d = ctl_json(c, "recover", "--dry-run")
    assert d["clear"] and d["profile"] == "core" and "unified-agent@MemoryClient.service" in d["stop"]
    assert d["delete"] == sorted(c.sh("ls -A /var/lib/unified").split())
    assert _unchanged(c) == before
