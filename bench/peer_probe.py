#!/usr/bin/python3
"""Clock and probes for bench_peer.py, run INSIDE the container so that both supervisors
(systemd + unified-ctl, and supervisord) are timed by the same code, to the same end point:
every health port answering 200 to GET /health. Prints one JSON line.

    peer_probe.py start PORTS -- CMD...      CMD started at t0; until every port answers 200;
                                             with the CPU seconds each party spent on the start
    peer_probe.py change PORT OLDPID -- CMD  until PORT answers 200 from a PID other than OLDPID
    peer_probe.py kill PORT PID              kill -9 PID; until PORT answers 200 from another PID
    peer_probe.py pss slice UNIT | tree PID  PSS summed over the slice's / the process tree's PIDs

Times are time.monotonic() (CLOCK_MONOTONIC, the host's too: nspawn has no time namespace).
"""
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import time

POLL = 0.05


def health(port, timeout=0.5):
    """(status, pid) of GET /health, or (None, None) when nothing answers."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", "/health")
        r = c.getresponse()
        body = r.read()
        c.close()
    except (OSError, http.client.HTTPException):
        return None, None
    try:
        pid = json.loads(body).get("pid")
    except ValueError:
        pid = None
    return r.status, pid


def until(pred, deadline):
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(POLL)
    return False


TCK = os.sysconf("SC_CLK_TCK")
DAEMONS = {"pid1": "systemd", "journald": "systemd-journal", "supervisord": "supervisord"}


def cpu_s(pid):
    """User + system CPU seconds of one process so far (None once it is gone)."""
    try:
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(st[11]) + int(st[12])) / TCK


def daemons():
    """{role: pid} of the processes that do a supervisor's own work (PID 1 is always systemd)."""
    found = {"pid1": 1}
    for d in os.listdir("/proc"):
        if d.isdigit() and d != "1":
            try:
                comm = open(f"/proc/{d}/comm").read().strip()
            except OSError:
                continue
            for role, name in DAEMONS.items():
                if comm == name and role != "pid1":
                    found[role] = int(d)
    return found


def busy_s():
    """CPU seconds every CPU of the host has been busy (nspawn shows the host's /proc/stat)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TCK   # all but idle and iowait


def cmd_start(ports, cmd, limit=120.0):
    busy = [p for p in ports if health(p, 0.2)[0] is not None]
    if busy:
        sys.exit(f"ports already answer before the start: {busy}")
    before = {role: cpu_s(pid) for role, pid in daemons().items()}
    host0, self0 = busy_s(), time.process_time()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready, pids, cmd_s = {}, {}, None
    deadline = t0 + limit
    while time.monotonic() < deadline and (len(ready) < len(ports) or cmd_s is None):
        if cmd_s is None and proc.poll() is not None:
            cmd_s = time.monotonic() - t0
        for p in ports:
            if p not in ready:
                status, pid = health(p)
                if status == 200:
                    ready[p], pids[p] = time.monotonic() - t0, pid
        time.sleep(POLL)
    err = proc.communicate()[1] if proc.poll() is not None else "still running"
    if len(ready) < len(ports):
        sys.exit(f"not ready after {limit} s: {sorted(set(ports) - set(ready))}; command: {err[-500:]}")
    # Read right after the last agent is ready: an agent's CPU time includes what ran in its
    # process before exec (under systemd, the sandbox's namespace setup in the forked child).
    agents = {p: cpu_s(pid) for p, pid in pids.items() if pid}
    after = {role: cpu_s(pid) for role, pid in daemons().items()}
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"agents": sum(v for v in agents.values() if v), "agent_each": agents,
           "command": child.ru_utime + child.ru_stime, "probe": time.process_time() - self0,
           "host_busy": busy_s() - host0, "ncpu": os.cpu_count()}
    for role, v in after.items():
        if v is not None:
            cpu[role] = v - (before.get(role) or 0.0)
    print(json.dumps({"ready_s": max(ready.values()), "cmd_s": cmd_s, "rc": proc.returncode,
                      "t0": t0, "boot_minus_mono": time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic(),
                      "ports": ready, "cpu": cpu}))


def _new_pid_healthy(port, old):
    status, pid = health(port)
    return status == 200 and pid is not None and pid != old


def cmd_change(port, old, cmd, limit=60.0):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    cmd_s = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"{cmd} exited {r.returncode}: {r.stdout[-500:]} {r.stderr[-500:]}")
    if not until(lambda: _new_pid_healthy(port, old), t0 + limit):
        sys.exit(f"port {port}: no new healthy process within {limit} s")
    print(json.dumps({"ready_s": time.monotonic() - t0, "cmd_s": cmd_s, "pid": health(port)[1]}))


def cmd_kill(port, pid, limit=60.0):
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    if not until(lambda: _new_pid_healthy(port, pid), t0 + limit):
        sys.exit(f"port {port}: no new healthy process within {limit} s of kill -9 {pid}")
    print(json.dumps({"ready_s": time.monotonic() - t0, "pid": health(port)[1]}))


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def cmd_pss(kind, what):
    if kind == "slice":
        cg = subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", what],
                            capture_output=True, text=True).stdout.strip()
        pids = set()
        for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"):
            for dirpath, _dirs, files in os.walk(root + cg):
                if "cgroup.procs" in files:
                    pids |= {int(x) for x in open(os.path.join(dirpath, "cgroup.procs")).read().split()}
    else:
        kids, pids, todo = _children(), set(), [int(what)]
        while todo:
            p = todo.pop()
            pids.add(p)
            todo += kids.get(p, [])
    pss = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    print(json.dumps({"pss": pss, "pids": len(pids)}))


def main(argv):
    mode = argv[0]
    if mode == "start":
        i = argv.index("--")
        cmd_start([int(p) for p in argv[1].split(",")], argv[i + 1:])
    elif mode == "change":
        i = argv.index("--")
        cmd_change(int(argv[1]), int(argv[2]), argv[i + 1:])
    elif mode == "kill":
        cmd_kill(int(argv[1]), int(argv[2]))
    elif mode == "pss":
        cmd_pss(argv[1], argv[2])
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
