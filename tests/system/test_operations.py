"""Operations on real systemd (issue: maintenance, emergency procedures and the runbook):
backup → wipe → restore round trip with the real state agents, a corrupted archive refused,
config rollback with the running profile following it, staged rollout dropped by a reboot,
debug capture with the hub down, the weekly report seeing a crash, journald maintenance.

Tests share the session container and leave the core profile selected and running.
"""
from __future__ import annotations

import json
import time

import pytest

STATE_TOOL = "/root/ops_state.py"
# Fills and dumps what the state agents hold, through their HTTP APIs (agents/builtin/*):
# MemoryClient items, KnowledgeBase documents, SystemDigitalTwin conversation turns and its
# own records (profile history, lifecycle events, snapshots).
STATE_TOOL_SRC = r'''
import json, sys, urllib.request

def call(method, port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")

if sys.argv[1] == "fill":
    n = int(sys.argv[2])
    for i in range(n):
        call("PUT", 5713, f"/items/systest-ops/item{i}", {"value": {"i": i, "text": f"memory item {i}"},
                                                         "tags": ["systest"]})
        call("POST", 5715, "/documents", {"title": f"systest doc {i}", "body": f"knowledge body {i}",
                                          "tags": ["systest-ops"]})
        call("POST", 7220, "/memory", {"session": "systest-ops", "role": "user", "content": f"turn {i}"})
    call("POST", 7220, "/snapshots", {})
elif sys.argv[1] == "dump":
    items = call("GET", 5713, "/items/systest-ops?values=true&limit=1000")
    docs = call("GET", 5715, "/documents?tag=systest-ops&limit=1000")
    turns = call("GET", 7220, "/memory?session=systest-ops&limit=1000")
    snaps = call("GET", 7220, "/history/snapshots?since=0&limit=1000")
    life = call("GET", 7220, "/history/lifecycle?since=0&limit=10000")
    profs = call("GET", 7220, "/history/profiles?since=0&limit=10000")
    print(json.dumps({"items": items, "docs": docs, "turns": turns,
                      "snapshot_ids": [s["id"] for s in snaps["snapshots"]],
                      "lifecycle_ids": [e["id"] for e in life["events"]],
                      "profile_ids": [p["id"] for p in profs["profiles"]]}, sort_keys=True))
'''


def ctl_json(c, *args, check=True, timeout=180):
    r = c.run(["unified-ctl", *args, "--json"], check=check, timeout=timeout)
    return json.loads(r.stdout), r


def switch_core(c):
    data, r = ctl_json(c, "profile", "switch", "core", check=False)
    assert r.returncode == 0 and data["ok"], r.stdout + r.stderr


def main_pid(c, agent):
    return int(c.unit_property(f"unified-agent@{agent}.service", "MainPID"))


def environ(c, pid):
    return c.run(["cat", f"/proc/{pid}/environ"]).stdout.split("\0")


@pytest.fixture
def core(container):
    switch_core(container)
    yield container
    if container.run(["test", "-e", "/run/unified/trial/unified.yaml"], check=False).returncode == 0:
        container.run(["unified-ctl", "config", "abort"], check=False, timeout=180)
    switch_core(container)


@pytest.fixture
def state_tool(core):
    core.write_file(STATE_TOOL, STATE_TOOL_SRC)
    missing = [a for a in ("MemoryClient", "KnowledgeBase", "SystemDigitalTwin")
               if '"implementation": "reference"' in core.run(
                   ["curl", "-s", f"http://127.0.0.1:{ {'MemoryClient': 6713, 'KnowledgeBase': 6715, 'SystemDigitalTwin': 8220}[a]}/health"]).stdout]
    assert not missing, f"the catalog still runs {missing} as reference agents: no state to back up"
    return core


def dump(c):
    return json.loads(c.run(["python3", STATE_TOOL, "dump"], timeout=60).stdout)


def test_backup_wipe_restore_brings_back_every_memory_item_document_and_twin_record(state_tool):
    c = state_tool
    c.run(["python3", STATE_TOOL, "fill", "25"], timeout=120)
    before = dump(c)
    assert len(before["items"]["items"]) >= 25 and before["snapshot_ids"] and before["lifecycle_ids"]
    made, _ = ctl_json(c, "backup", "create", "/root/ops-backup.tar.gz")
    dbs = sorted(f["path"] for f in made["files"] if f.get("sqlite"))
    assert {"/var/lib/unified/memory.db", "/var/lib/unified/knowledge.db", "/var/lib/unified/twin.db"} <= set(dbs)
    # the disaster: complete recovery wipes the state and starts core again, empty
    c.run(["unified-ctl", "recover", "--yes"], timeout=240)
    empty = dump(c)
    assert empty["items"] != before["items"] and empty["turns"]["count"] == 0
    res, r = ctl_json(c, "backup", "restore", "--yes", "/root/ops-backup.tar.gz", check=False, timeout=240)
    assert r.returncode == 0 and res["ok"], r.stdout + r.stderr
    assert {"MemoryClient", "KnowledgeBase", "SystemDigitalTwin"} <= set(res["stopped"])
    after = dump(c)
    assert after["items"] == before["items"] and after["docs"] == before["docs"]
    assert after["turns"] == before["turns"]
    # every twin record of the backup is back (the twin keeps adding its own after restart)
    for key in ("snapshot_ids", "lifecycle_ids", "profile_ids"):
        assert set(before[key]) <= set(after[key]), key
    modes = c.run(["stat", "-c", "%n %U %G %a", *dbs]).stdout.split("\n")
    assert all(m.split()[1:] == ["unified", "unified", "640"] for m in modes if m), modes
    c.run(["rm", "-f", "/root/ops-backup.tar.gz", STATE_TOOL])


def test_a_corrupted_archive_is_refused_and_nothing_is_touched(core):
    c = core
    c.run(["unified-ctl", "backup", "create", "/root/ops-corrupt.tar.gz"], timeout=120)
    c.run(["python3", "-c", "p='/root/ops-corrupt.tar.gz'; d=bytearray(open(p,'rb').read()); "
           "d[len(d)//2] ^= 0xff; open(p,'wb').write(bytes(d))"])
    pids = {a: main_pid(c, a) for a in ("MemoryClient", "SystemDigitalTwin")}
    r = c.run(["unified-ctl", "backup", "restore", "--yes", "/root/ops-corrupt.tar.gz"], check=False, timeout=120)
    assert r.returncode == 1 and "corrupt" in r.stderr, r.stdout + r.stderr
    assert {a: main_pid(c, a) for a in pids} == pids  # nobody was stopped
    c.run(["rm", "-f", "/root/ops-corrupt.tar.gz"])


V2 = """agents:
  ServiceRegistry:
    environment: {SYSTEST_MARK: v2}
profiles:
  core:
    agents: [CacheManager]
"""


def test_rollback_restores_the_previous_catalog_and_the_running_profile_follows_it(core):
    c = core
    shipped = c.run(["sha256sum", "/etc/unified/unified.yaml"]).stdout.split()[0]
    c.run(["unified-ctl", "apply"])
    c.run(["mkdir", "-p", "/root/stage/conf.d"])
    c.run(["cp", "/etc/unified/unified.yaml", "/root/stage/unified.yaml"])
    c.write_file("/root/stage/conf.d/50-systest-v2.yaml", V2)
    try:
        # staged rollout: tried, not permanent
        r = c.run(["unified-ctl", "profile", "switch", "core", "--json"], env={"CONFIG": "/root/stage/unified.yaml"},
                  timeout=180)
        assert json.loads(r.stdout)["ok"]
        assert "SYSTEST_MARK=v2" in environ(c, main_pid(c, "ServiceRegistry"))
        assert c.is_active("unified-agent@CacheManager.socket") == "active"
        assert c.run(["test", "-e", "/etc/unified/conf.d/50-systest-v2.yaml"], check=False).returncode == 1
        promoted, _ = ctl_json(c, "config", "promote")
        assert promoted["ok"] and c.read_file("/etc/unified/conf.d/50-systest-v2.yaml") == V2
        before = {a: main_pid(c, a) for a in ("ServiceRegistry", "MemoryClient", "SystemDigitalTwin")}
        back, r = ctl_json(c, "config", "rollback", check=False)
        assert r.returncode == 0 and back["ok"], r.stdout + r.stderr
        # the catalog is the previous one again ...
        assert c.run(["test", "-e", "/etc/unified/conf.d/50-systest-v2.yaml"], check=False).returncode == 1
        assert c.run(["sha256sum", "/etc/unified/unified.yaml"]).stdout.split()[0] == shipped
        # ... and the running profile follows: the changed agent restarted without the mark,
        # the agent the old catalog's core lacks stopped, the others untouched
        pid = main_pid(c, "ServiceRegistry")
        assert pid != before["ServiceRegistry"] and not any(e.startswith("SYSTEST_MARK") for e in environ(c, pid))
        assert "CacheManager" in back["stopped"]
        assert c.is_active("unified-agent@CacheManager.socket") == "inactive"
        assert {a: main_pid(c, a) for a in ("MemoryClient", "SystemDigitalTwin")} == \
               {a: before[a] for a in ("MemoryClient", "SystemDigitalTwin")}
        assert back["restarted"] == ["ServiceRegistry"]
        hist, _ = ctl_json(c, "config", "history")
        assert [e["reason"] for e in hist["entries"][-2:]] == ["promote", f"rollback to {back['to']['id']}"]
    finally:
        c.run(["rm", "-rf", "/root/stage", "/etc/unified/conf.d/50-systest-v2.yaml"])


MODELS_DROPIN = "/etc/unified/conf.d/50-systest-models.yaml"


def started(c, agent):
    """(MainPID, ActiveEnterTimestamp) of an agent's service: both change when it restarts."""
    out = c.run(["systemctl", "show", "-p", "MainPID,ActiveEnterTimestampMonotonic",
                 f"unified-agent@{agent}.service"]).stdout
    return tuple(sorted(out.split()))


def test_rolling_back_a_models_change_restarts_the_model_manager_and_nothing_else(core):
    # models: is read by ModelManagerSuite only at start; no unit changes with it
    c = core
    c.run(["unified-ctl", "apply", "--restart"])
    c.write_file(MODELS_DROPIN, "models:\n  vram_budget_percentage: 70\n")
    try:
        data, _ = ctl_json(c, "apply", "--restart")
        assert data["stale"] == {"ModelManagerSuite": "it reads models and routing only at start"}, data
        others = ("ServiceRegistry", "MemoryClient", "SystemDigitalTwin", "LazyLoader", "VRAMOptimizerAgent")
        before = {a: started(c, a) for a in ("ModelManagerSuite",) + others}
        back, r = ctl_json(c, "config", "rollback", check=False, timeout=180)
        assert r.returncode == 0 and back["ok"], r.stdout + r.stderr
        assert back["removed_dropins"] == ["conf.d/50-systest-models.yaml"]
        assert back["restarted"] == ["ModelManagerSuite"], back
        assert back["why_restarted"] == {"ModelManagerSuite": "it reads models and routing only at start"}
        assert started(c, "ModelManagerSuite") != before["ModelManagerSuite"]
        assert {a: started(c, a) for a in others} == {a: before[a] for a in others}
    finally:
        c.run(["rm", "-f", MODELS_DROPIN])
        c.run(["unified-ctl", "apply", "--restart"])


def test_a_reboot_drops_a_trial_and_boots_the_permanent_catalog(new_container):
    c = new_container()
    c.run(["mkdir", "-p", "/root/stage/conf.d"])
    c.run(["cp", "/etc/unified/unified.yaml", "/root/stage/unified.yaml"])
    c.write_file("/root/stage/conf.d/50-systest-v2.yaml", V2)
    c.run(["unified-ctl", "profile", "switch", "core"], env={"CONFIG": "/root/stage/unified.yaml"}, timeout=180)
    assert "SYSTEST_MARK=v2" in environ(c, main_pid(c, "ServiceRegistry"))
    c.reboot()
    c.wait_until(["systemctl", "is-active", "unified-agent@ServiceRegistry.service"], timeout=60)
    gen = json.loads(c.read_file("/run/unified/generator.json"))
    assert gen["trial"] is None and gen["source"] == "/etc/unified/unified.yaml"
    assert not any(e.startswith("SYSTEST_MARK") for e in environ(c, main_pid(c, "ServiceRegistry")))


def test_debug_capture_works_with_the_hub_down(core):
    c = core
    hub = ["unified-agent@ObservabilityHub.service", "unified-agent@ObservabilityHub.socket"]
    c.systemctl("stop", *hub)
    try:
        out = c.run(["unified-ctl", "debug", "capture", "-o", "/root/ops-capture.json"]).stdout
        assert "hub: ObservabilityHub is not running" in out
        data = json.loads(c.read_file("/root/ops-capture.json"))
        assert c.run(["stat", "-c", "%a", "/root/ops-capture.json"]).stdout.strip() == "600"
        units = {u["unit"]: u for u in data["systemd"]["units"]}
        assert units["unified-agent@ServiceRegistry.service"]["active"] == "active"
        assert data["systemd"]["properties"]["unified-agent@ServiceRegistry.service"]["MainPID"] != "0"
        assert data["journal"]["last"] and "skipped" in data["hub"]
        assert c.is_active("unified-agent@ObservabilityHub.service") == "inactive"  # not woken
    finally:
        c.systemctl("start", *hub)
        c.run(["rm", "-f", "/root/ops-capture.json"])


def test_weekly_report_sees_a_crash_and_its_restart(core):
    c = core
    agent = "SessionMemoryAgent"
    old = main_pid(c, agent)
    c.run(["kill", "-9", str(old)])
    c.wait_until(f"test $(systemctl show -p MainPID --value unified-agent@{agent}.service) -ne {old} && "
                 f"systemctl is-active unified-agent@{agent}.service", timeout=30)
    time.sleep(0.5)
    out, _ = ctl_json(c, "report", "weekly", "--out-dir", "/root/ops-reports")
    data = json.loads(c.read_file(out["json"]))
    row = next(a for a in data["agents"] if a["agent"] == agent)
    # started again by Restart= or, sooner, by a connection to its socket: either way one
    # failure, some downtime, and a start after it
    assert row["failures"] >= 1 and row["down_s"] > 0 and row["availability"] < 1.0 and row["starts"] >= 1
    assert any(e["agent"] == agent for e in data["alerts"]["EssentialAgentDown"])
    md = c.read_file(out["markdown"])
    assert f"| {agent} | essential |" in md
    assert out["png"] or "python3-matplotlib" in out["plot_note"]
    cap, _ = ctl_json(c, "report", "capacity", "--out-dir", "/root/ops-reports")
    assert json.loads(c.read_file(cap["json"]))["now"]["agents_running"] >= 16
    c.run(["rm", "-rf", "/root/ops-reports"])


def test_logs_vacuum_and_the_rotate_script_act_on_journald(core):
    out = core.run(["/usr/share/unified-system/scripts/rotate_logs.sh"]).stdout
    assert "Vacuuming done" in out and "before:" in out and "after:" in out
    r = core.run(["unified-ctl", "logs", "vacuum", "--keep", "7d"])
    assert "journals take up" in r.stdout
    assert "ServiceRegistry" in core.run(["unified-ctl", "logs", "ServiceRegistry", "-n", "5"]).stdout
