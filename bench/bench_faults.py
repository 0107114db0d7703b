"""Fault table: what happens, requests lost, recovery time (loopback load inside the container)."""
from __future__ import annotations

import pathlib
import sys
import tempfile
import time

ORDER = 70
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "system"))

import harness  # noqa: E402
from test_faults import (CORE_PORTS, check_acknowledged_and_integrity,  # noqa: E402
                         fill_state_disk_and_write, finish_load, main_pid,
                         move_state_dir_to_small_tmpfs, restart_journald_and_log, start_load)


def _kill9(c):
    urls = [f"http://127.0.0.1:{p}/health" for p in CORE_PORTS.values()]
    load = start_load(c, urls, rate=160, duration=16, retries=1)
    time.sleep(2)
    for agent in CORE_PORTS:
        c.run(["kill", "-9", str(main_pid(c, agent))])
        time.sleep(0.5)
    r = finish_load(load)
    return ("kill -9 of each of the 16 core agents, 0.5 s apart, under 160 req/s to their agent ports",
            "systemd restarts each (Restart=on-failure); the socket queues connections meanwhile; "
            f"{r['retried']} reset in flight and repeated once by the client",
            f"{r['failed']} of {r['sent']}", f"slowest request {r['max_ms'] / 1000:.2f} s")


def _watchdog(c):
    dropin = "/etc/unified/conf.d/90-bench-watchdog.yaml"
    c.write_file(dropin, "settings:\n  supervision:\n    watchdog: 3s\n")
    try:
        c.run(["unified-ctl", "apply"])
        c.run(["unified-ctl", "agent", "restart", "AudioCapture"])
        pid = main_pid(c, "AudioCapture")
        load = start_load(c, ["http://127.0.0.1:6550/health"], rate=20, duration=12)
        time.sleep(1)
        t0 = time.monotonic()
        c.run(["kill", "-STOP", str(pid)])
        c.wait_until(f"test $(systemctl show -p MainPID --value unified-agent@AudioCapture.service) -ne {pid} "
                     "&& curl -sf -m 2 http://127.0.0.1:7550/health", timeout=30, interval=0.1)
        rec = time.monotonic() - t0
        r = finish_load(load)
    finally:
        c.run(["rm", "-f", dropin])
        c.run(["unified-ctl", "apply"])
        c.run(["unified-ctl", "agent", "restart", "AudioCapture"])
    return ("SIGSTOP of AudioCapture (WatchdogSec=3s) under 20 req/s",
            "watchdog timeout → SIGABRT → restart; requests wait in the socket",
            f"{r['failed']} of {r['sent']}", f"{rec:.1f} s to healthy again")


def _garbage(c):
    before = {a: main_pid(c, a) for a in CORE_PORTS}
    c.run(["cp", "/etc/unified/unified.yaml", "/root/u.bak"])
    try:
        c.run(["sh", "-c", "echo 'agents: [' > /etc/unified/unified.yaml && systemctl daemon-reload"])
        time.sleep(2)
        after = {a: main_pid(c, a) for a in CORE_PORTS}
    finally:
        c.run(["cp", "/root/u.bak", "/etc/unified/unified.yaml"])
        c.run(["systemctl", "daemon-reload"])
    changed = sum(before[a] != after[a] for a in before)
    return ("catalog overwritten with garbage, then daemon-reload", "generator renders the last good catalog; "
            "nothing stops", "0 (no load)", f"{changed} of 16 agents restarted")


def _journald(c):
    took = [restart_journald_and_log(c, how=how) for how in ("restart", "kill")]
    return ("journald restarted, then killed with SIGKILL (systemd restarts it)",
            "the hub's `journalctl --follow` keeps reading; the hub itself does not restart",
            "0 (no load)", f"new lines counted {took[0]:.1f} s / {took[1]:.1f} s after")


def _disk_full(rootfs, deb):
    c = harness.boot(rootfs, deb, label="bench-diskfull")
    try:
        c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
        move_state_dir_to_small_tmpfs(c)
        acked, message, changed = fill_state_disk_and_write(c)
        check_acknowledged_and_integrity(c, acked)   # raises: the row is not written
        t0 = time.monotonic()
        c.run(["rm", "/var/lib/unified/filler"])
        c.run(["curl", "-sf", "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary",
               '{"value": 1}', "http://127.0.0.1:5713/items/bench-full/after"])
        rec = time.monotonic() - t0
    finally:
        c.stop()
    return ("state directory's file system full (tmpfs), writes of 30 kB to MemoryClient",
            f"{len(acked)} items acknowledged (all before the disk filled), then HTTP 507 \"{message}\"; "
            f"{len(changed)} processes restarted; acknowledged items intact, integrity_check ok",
            "0 acknowledged writes lost", f"next write after freeing space: {rec:.2f} s")


def _upgrade_and_reboot(rootfs, deb):
    up = harness.make_higher_version_deb(deb, tempfile.mkdtemp(prefix="bench-upgrade-"))
    c = harness.boot(rootfs, deb, label="bench-upgrade")
    try:
        c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
        load = start_load(c, ["http://127.0.0.1:7200/health", "http://127.0.0.1:5801/health",
                              "http://127.0.0.1:7201/health"], rate=100, duration=25)
        time.sleep(3)
        t0 = time.monotonic()
        c.install_deb(up)
        inst = time.monotonic() - t0
        r = finish_load(load)
        row1 = ("`apt install` of a newer .deb under 100 req/s (3 agents)",
                "every agent service restarts (PartOf=unified.target); sockets stay open",
                f"{r['failed']} of {r['sent']}", f"install {inst:.1f} s; slowest request {r['max_ms'] / 1000:.2f} s")
        c.run(["unified-ctl", "profile", "switch", "tutoring"], timeout=240)
        t0 = time.monotonic()
        c.reboot()
        c.wait_until(["systemctl", "is-active", "unified-profile-tutoring.target"], timeout=120)
        c.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8200/health"], timeout=120)
        row2 = ("container reboot with profile tutoring selected", "the generator links the selected profile "
                "into unified.target at boot; state under /var/lib/unified persists", "—",
                f"{time.monotonic() - t0:.1f} s from reboot to ServiceRegistry healthy")
    finally:
        c.stop()
    return [row1, row2]


def run(c, runs, summary):
    c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
    rows = [_kill9(c), _watchdog(c), _garbage(c), _journald(c)]
    deb = harness.find_or_build_deb()
    rootfs = harness.ensure_rootfs(deb)
    rows.append(_disk_full(rootfs, deb))
    rows += _upgrade_and_reboot(rootfs, deb)
    out = ["## Faults", "", "Each fault once, load from a client inside the container on loopback; "
           "the system tests (tests/system/test_faults.py) assert the same outcomes.", "",
           "| fault | what happened | requests lost | recovery |", "| --- | --- | --- | --- |"]
    out += [f"| {a} | {b} | {l} | {r} |" for a, b, l, r in rows]
    out += [""]
    return out
