"""Against a peer, side by side in one container: systemd + unified-ctl vs Debian's supervisord.

Both supervise the same core agents (the real package's `python3 -s -m unified_agents run
NAME`, same environment as the generator renders, user unified, same state dir). Every
number is measured by bench/peer_probe.py inside the container, to the same end point (each
health port answering 200), in alternating rounds:

  start    ours: `unified-ctl emergency-stop`, then `unified-ctl profile switch core`
           supervisord: ours stopped (sockets closed), supervisord up, `supervisorctl start all`
  memory   PSS summed: ours over unified-agents.slice, supervisord over its process tree
  kill -9  of MemoryClient under 100 req/s for 3 s: requests lost, time to a healthy new process
  config   LOG_LEVEL of MemoryClient changed under 100 req/s: ours a catalog drop-in and
           `unified-ctl apply --restart`, supervisord the program's environment= and
           `supervisorctl update MemoryClient && supervisorctl start MemoryClient`

supervisord cannot hand over a listening socket, so its agents bind their ports themselves
(the SDK does that when LISTEN_FDS is absent) and get the fleet token from a file
(UNIFIED_TOKEN_FILE) instead of standard input opened by systemd; they run without
systemd's sandbox.
"""
from __future__ import annotations

import json
import os
import pathlib
import shlex
import statistics
import sys
import time

ORDER = 12
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "system"))

from bench_sandbox import TEMPLATE, shipped_directives, without  # noqa: E402
from test_faults import finish_load, start_load  # noqa: E402

AGENT = "MemoryClient"  # the kill -9 and config-change victim (as in the issue)
RUN = "/run/unified-peer"
CONF = "/etc/unified-peer/supervisord.conf"
PROBE = "/root/peer_probe.py"
DROPIN = "/etc/unified/conf.d/90-bench-peer.yaml"
# the template itself, outranking /lib: every sandbox directive deleted (bench_sandbox's "none")
NO_SANDBOX_UNIT = "/run/systemd/system/unified-agent@.service"
SCTL = ["supervisorctl", "-c", CONF]
SHIM = f"{RUN}/shim"
SHIM_LOG = f"{RUN}/systemctl.log"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ----------------------------------------------------------------- the agents, as rendered
def _core_agents(c) -> list[str]:
    r = c.run(["unified-ctl", "profile", "switch", "core", "--json"], timeout=240)
    agents = json.loads(r.stdout)["agents"]
    optional = [a["agent"] for a in agents if a["mode"] != "service"]
    if optional:  # supervisord has no dormant mode: a like-for-like start needs all running
        raise RuntimeError(f"core has optional (socket-only) agents {optional}: not comparable")
    return [a["agent"] for a in agents]


def _rendered(c, name: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart argv and Environment= of unified-agent@NAME.service as systemd has them."""
    unit = f"unified-agent@{name}.service"
    env = dict(kv.split("=", 1) for kv in shlex.split(c.unit_property(unit, "Environment")))
    exec_start = c.unit_property(unit, "ExecStart")  # { path=… ; argv[]=… ; ignore_errors=… }
    argv = exec_start.split("argv[]=", 1)[1].split(" ;", 1)[0].split()
    return argv, env


def _program(name: str, argv: list[str], env: dict[str, str]) -> str:
    pairs = ",".join(f'{k}="{v}"' for k, v in sorted(env.items()))
    return "\n".join([
        f"[program:{name}]",
        "command=" + " ".join(argv),
        "user=unified", "directory=/var/lib/unified",
        "environment=" + pairs.replace("%", "%%"),
        "autostart=false", "autorestart=true", "startretries=10",
        "stopasgroup=true", "killasgroup=true", "stopwaitsecs=15",
        "redirect_stderr=true", f"stdout_logfile={RUN}/{name}.log", "stdout_logfile_maxbytes=1MB", ""])


def _supervisor_conf(programs: dict[str, tuple[list[str], dict[str, str]]]) -> str:
    head = f"""[unix_http_server]
file={RUN}/supervisor.sock
chmod=0700

[supervisord]
logfile={RUN}/supervisord.log
pidfile={RUN}/supervisord.pid
childlogdir={RUN}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{RUN}/supervisor.sock

"""
    return head + "\n".join(_program(n, a, e) for n, (a, e) in programs.items())


# ----------------------------------------------------------------- probes
def _probe(c, *args, env=None, timeout=180):
    return json.loads(c.run(["python3", PROBE, *map(str, args)], env=env, timeout=timeout).stdout)


def _pid_of(c, side: str, name: str) -> int:
    if side == "ours":
        return int(c.unit_property(f"unified-agent@{name}.service", "MainPID"))
    return int(c.run([*SCTL, "pid", name]).stdout.strip())


def _environ(c, pid: int) -> dict[str, str]:
    raw = c.run(["cat", f"/proc/{pid}/environ"]).stdout
    return dict(kv.split("=", 1) for kv in raw.split("\0") if "=" in kv)


def _under_load(c, port: int, duration: float, action):
    load = start_load(c, [f"http://127.0.0.1:{port}/health"], rate=100, duration=duration)
    time.sleep(0.5)
    try:
        res = action()
    finally:
        lost = finish_load(load)
    return res, lost


# ----------------------------------------------------------------- the two sides
class Ours:
    side = "ours"

    def __init__(self, c, ports, sandbox=True):
        self.c, self.ports, self.sandbox = c, ports, sandbox

    def stop(self):
        self.c.run(["unified-ctl", "emergency-stop", "--yes"], timeout=120)

    def start(self, env=None):
        self.stop()
        if not self.sandbox:
            template = self.c.read_file(TEMPLATE)
            self.c.write_file(NO_SANDBOX_UNIT, without(template, shipped_directives(template)))
            self.c.run(["systemctl", "daemon-reload"])
        try:
            return _probe(self.c, "start", ",".join(map(str, self.ports)), "--",
                          "unified-ctl", "profile", "switch", "core", env=env)
        finally:
            if not self.sandbox:
                self.c.run(["rm", "-f", NO_SANDBOX_UNIT])
                self.c.run(["systemctl", "daemon-reload"])

    def memory(self):
        return _probe(self.c, "pss", "slice", "unified-agents.slice")

    def set_log_level(self, level, health_port):
        old = _pid_of(self.c, "ours", AGENT)
        if level:
            self.c.write_file(DROPIN, f"agents:\n  {AGENT}:\n    environment: {{LOG_LEVEL: {level}}}\n")
        else:
            self.c.run(["rm", "-f", DROPIN])
        return _probe(self.c, "change", health_port, old, "--", "unified-ctl", "apply", "--restart")


class SystemdAlone(Ours):
    """Diagnostic: the same units started by `systemctl start` of the profile's target, without
    the CLI (no catalog load, no daemon-reload, no wait loop asking systemd)."""
    side = "systemd alone"

    def start(self, env=None):
        self.stop()
        return _probe(self.c, "start", ",".join(map(str, self.ports)), "--",
                      "systemctl", "start", "--no-block", "unified-profile-core.target", "unified.target")


class Supervisord:
    side = "supervisord"

    def __init__(self, c, ports, programs):
        self.c, self.ports, self.programs = c, ports, programs

    def write_conf(self, level=None):
        progs = dict(self.programs)
        if level:
            argv, env = progs[AGENT]
            progs[AGENT] = (argv, {**env, "LOG_LEVEL": level})
        self.c.write_file(CONF, _supervisor_conf(progs))

    def start(self, env=None):
        Ours(self.c, self.ports).stop()  # ours fully down: services and sockets
        self.write_conf()
        self.c.run(["supervisord", "-c", CONF])
        self.c.wait_until([*SCTL, "pid"], timeout=30, interval=0.05)
        return _probe(self.c, "start", ",".join(map(str, self.ports)), "--", *SCTL, "start", "all")

    def memory(self):
        return _probe(self.c, "pss", "tree", self.c.run([*SCTL, "pid"]).stdout.strip())

    def set_log_level(self, level, health_port):
        old = _pid_of(self.c, "supervisord", AGENT)
        self.write_conf(level)
        return _probe(self.c, "change", health_port, old, "--", "sh", "-c",
                      f"{shlex.join(SCTL)} update {AGENT} && {shlex.join(SCTL)} start {AGENT}")

    def stop(self):
        pid = self.c.run([*SCTL, "pid"], check=False).stdout.strip()
        self.c.run([*SCTL, "shutdown"], check=False)
        if pid.isdigit():
            self.c.wait_until(["sh", "-c", f"! kill -0 {pid} 2>/dev/null"], timeout=60)


def _round(c, side, agent_port, health_port, agents):
    """One round of one side: start, memory, kill -9 under load, config change under load."""
    r = {"start": side.start()}
    time.sleep(1)
    r["mem"] = side.memory()
    pid = _pid_of(c, side.side, AGENT)
    r["kill"], r["kill_load"] = _under_load(c, agent_port, 3, lambda: _probe(c, "kill", health_port, pid))
    time.sleep(0.5)
    r["config"], r["config_load"] = _under_load(c, agent_port, 6,
                                                lambda: side.set_log_level("DEBUG", health_port))
    got = _environ(c, r["config"]["pid"]).get("LOG_LEVEL")
    if got != "DEBUG":
        raise RuntimeError(f"{side.side}: the restarted {AGENT} has LOG_LEVEL={got!r}, not DEBUG")
    side.set_log_level(None, health_port)
    side.stop()
    return r


# ----------------------------------------------------------------- where ours spends the time
SHIM_SCRIPT = f"""#!/bin/sh
# bench_peer: logs each systemctl call the CLI makes (wall clock, start and end).
a=$(date +%s.%N)
/bin/systemctl "$@"
rc=$?
echo "$a $(date +%s.%N) $*" >> {SHIM_LOG}
exit $rc
"""

STARTS = r"""
import json, os, sys
tck = os.sysconf("SC_CLK_TCK")
out = {}
for name, pid in json.loads(sys.argv[1]).items():
    st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    out[name] = int(st[19]) / tck   # starttime: CLOCK_BOOTTIME, in clock ticks
print(json.dumps(out))
"""


def _exec_times(c, side, agents, start):
    """Seconds from t0 to each agent's exec (its process start time, 10 ms resolution)."""
    pids = {a: _pid_of(c, side, a) for a in agents}
    boot = json.loads(c.run(["python3", "-c", STARTS, json.dumps(pids)]).stdout)
    t0_boot = start["t0"] + start["boot_minus_mono"]
    return {a: boot[a] - t0_boot for a in agents}


def _phases(c, agents, ports_of, ours, sup):
    """One instrumented start of each side: systemctl calls (PATH shim), exec spread, own startup."""
    c.run(["mkdir", "-p", SHIM])
    c.write_file(f"{SHIM}/systemctl", SHIM_SCRIPT, mode=0o755)
    ours.stop()
    c.run(["rm", "-f", SHIM_LOG])
    wall0 = float(c.run(["date", "+%s.%N"]).stdout)
    mono0 = float(c.run(["python3", "-c", "import time; print(time.monotonic())"]).stdout)
    start = ours.start(env={"PATH": f"{SHIM}:{PATH}"})
    calls = []
    for line in c.read_file(SHIM_LOG).splitlines():
        a, b, args = line.split(" ", 2)
        # wall → monotonic via the pair read just before (both read within a few ms)
        calls.append((float(a) - wall0 + mono0 - start["t0"], float(b) - float(a), args))
    ex = _exec_times(c, "ours", agents, start)
    own = {a: start["ports"][str(ports_of[a])] - ex[a] for a in agents}
    ours.stop()
    s_start = sup.start()
    s_ex = _exec_times(c, "supervisord", agents, s_start)
    s_own = {a: s_start["ports"][str(ports_of[a])] - s_ex[a] for a in agents}
    sup.stop()
    c.run(["rm", "-rf", SHIM])
    return start, calls, ex, own, s_start, s_ex, s_own


# ----------------------------------------------------------------- import time
IMPORTTIME = r"""
import json, os, signal, subprocess, sys, time, http.client
argv, env = json.loads(sys.argv[1]), json.loads(sys.argv[2])
hp = int(env["UNIFIED_HEALTH_PORT"])
p = subprocess.Popen(["runuser", "-u", "unified", "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                      argv[0], "-X", "importtime", *argv[1:]], cwd="/var/lib/unified",
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
t0 = time.monotonic()
while time.monotonic() - t0 < 30:
    try:
        c = http.client.HTTPConnection("127.0.0.1", hp, timeout=0.5); c.request("GET", "/health")
        if c.getresponse().status == 200: break
    except OSError: pass
    time.sleep(0.05)
p.send_signal(signal.SIGTERM)
err = p.communicate(timeout=20)[1]
rows = []
for line in err.splitlines():
    if line.startswith("import time:") and "cumulative" not in line:
        own, cum, name = line[12:].split("|")
        rows.append((len(name) - len(name.lstrip()), int(cum), name.strip()))
top = [r for r in rows if r[0] == min(x[0] for x in rows)]
def chain(mod):  # who imported mod: -X importtime lists a module's imports before it, indented deeper
    i = next((i for i, r in enumerate(rows) if r[2] == mod), None)
    if i is None:
        return None
    out, depth = [mod], rows[i][0]
    for r in rows[i + 1:]:
        if r[0] < depth:
            out.append(r[2]); depth = r[0]
    return " <- ".join(out)
print(json.dumps({"total_us": sum(r[1] for r in top), "modules": [r[2] for r in rows],
                  "largest": sorted(((r[1], r[2]) for r in top), reverse=True)[:5],
                  "click_via": chain("click"), "rich_via": chain("rich")}))
"""


def _importtime(c, programs, name):
    """The agent's real start path (`python3 -X importtime -s -m unified_agents run NAME`, its
    rendered environment, up to /health 200), with ours stopped so it can bind its ports."""
    argv, env = programs[name]
    return json.loads(c.run(["python3", "-c", IMPORTTIME, json.dumps(argv), json.dumps(env)], timeout=90).stdout)


# ----------------------------------------------------------------- the section
def _med(xs):
    return statistics.median(xs)


def _fmt_range(xs, unit="s", scale=1.0, digits=2):
    xs = [x * scale for x in xs]
    return f"{_med(xs):.{digits}f} {unit} ({min(xs):.{digits}f}–{max(xs):.{digits}f})"


def run(c, runs, summary):
    runs = min(runs, 5)
    agents = _core_agents(c)
    c.copy_in(pathlib.Path(__file__).with_name("peer_probe.py"), PROBE)
    programs = {a: _rendered(c, a) for a in agents}
    ports_of = {a: int(programs[a][1]["UNIFIED_HEALTH_PORT"]) for a in agents}
    ports = [ports_of[a] for a in agents]
    agent_port, health_port = int(programs[AGENT][1]["UNIFIED_PORT"]), ports_of[AGENT]
    # The fleet token: standard input opened by systemd for ours (UNIFIED_TOKEN_FROM=stdin,
    # dropped here); a file only unified can read for supervisord.
    c.run(["install", "-d", "-m", "0755", RUN])
    c.run(["install", "-m", "0400", "-o", "unified", "-g", "unified", "/etc/unified/token", f"{RUN}/token"])
    for a in agents:
        programs[a][1].pop("UNIFIED_TOKEN_FROM", None)
        programs[a][1]["UNIFIED_TOKEN_FILE"] = f"{RUN}/token"
    c.run(["mkdir", "-p", "/etc/unified-peer"])
    ours, sup = Ours(c, ports), Supervisord(c, ports, programs)
    bare = Ours(c, ports, sandbox=False)
    res = {"ours": [], "supervisord": []}
    bare_start, alone_start, loads = [], [], []
    alone = SystemdAlone(c, ports)
    for i in range(runs):
        order = (ours, sup) if i % 2 == 0 else (sup, ours)
        for side in order:
            res[side.side].append(_round(c, side, agent_port, health_port, agents))
        bare_start.append(bare.start())
        try:
            alone_start.append(alone.start())
        except Exception as e:  # a diagnostic: never lose the comparison for it
            print(f"  systemd alone failed: {e}", flush=True)
        loads.append(os.getloadavg()[0])
        o, s = res["ours"][-1], res["supervisord"][-1]
        print(f"  run {i + 1}: start ours {o['start']['ready_s']:.2f}s supervisord {s['start']['ready_s']:.2f}s "
              f"(ours sandbox off {bare_start[-1]['ready_s']:.2f}s); kill lost {o['kill_load']['failed']}/"
              f"{s['kill_load']['failed']}; config lost {o['config_load']['failed']}/{s['config_load']['failed']}",
              flush=True)
    phases = _phases(c, agents, ports_of, ours, sup)
    ours.stop()
    imports = {a: _importtime(c, programs, a) for a in ("ServiceRegistry", "ObservabilityHub")}
    c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
    c.run(["rm", "-rf", RUN, "/etc/unified-peer"])
    names = {str(port): a for a, port in ports_of.items()}
    return _section(res, bare_start, alone_start, phases, imports, len(agents), runs, loads, names)


def _section(res, bare_start, alone_start, phases, imports, n_agents, runs, loads, names):
    o, s = res["ours"], res["supervisord"]
    so = [r["start"]["ready_s"] for r in o]
    ss = [r["start"]["ready_s"] for r in s]
    sb = [r["ready_s"] for r in bare_start]
    cmd_o = [r["start"]["cmd_s"] for r in o]
    mem = lambda rs: _med([r["mem"]["pss"] / 2**20 for r in rs])
    pids = lambda rs: rs[-1]["mem"]["pids"]
    def lost(rs, k):
        """'F of N' and, when some failed, how (the load generator's error kinds, all rounds)."""
        kinds: dict[str, int] = {}
        for r in rs:
            for kind, n in r[k].get("errors", {}).items():
                kinds[kind] = kinds.get(kind, 0) + n
        how = f" ({', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))})" if kinds else ""
        return f"{sum(r[k]['failed'] for r in rs)} of {sum(r[k]['sent'] for r in rs)}{how}"
    slow = lambda rs, k: max(r[k]["max_ms"] or 0 for r in rs) / 1000
    ko, ks = lost(o, "kill_load"), lost(s, "kill_load")
    co, cs = lost(o, "config_load"), lost(s, "config_load")
    rec = lambda rs, k: [r[k]["ready_s"] for r in rs]
    out = [
        "## Against a peer: supervisord, side by side", "",
        f"One container, the same {n_agents} core agents (the real package's `python3 -s -m unified_agents run NAME`, "
        f"the environment the generator renders, user unified, the same state dir), {runs} alternating rounds. "
        "Every time is measured by `bench/peer_probe.py` inside the container to the same end point: every "
        "agent's health port answering 200 to `GET /health`. Ours: `unified-ctl emergency-stop`, then "
        "`unified-ctl profile switch core` (sandboxed units, sockets held by systemd). supervisord (Debian "
        "`supervisor` 4.2): one `[program:NAME]` per agent, `supervisorctl start all` with supervisord already up "
        "and ours fully stopped; the agents bind their own ports (no socket passing), get the fleet token from a "
        "file, and run without a sandbox. Median (min–max) over the rounds. Host 1-minute load average at the end "
        f"of each round: {', '.join(f'{x:.1f}' for x in loads)} ({os.cpu_count()} CPUs; the benches' own work "
        "counts in it): a busy, shared machine, so read the ratios of the same round, not the absolute times.", "",
        "| measure | ours | supervisord | ours / supervisord |", "| --- | --- | --- | --- |",
        f"| start: nothing running → every health port 200 | {_fmt_range(so)} | {_fmt_range(ss)} | "
        f"**{_med(so) / _med(ss):.2f}×** (goal ≤ 0.7×) |",
        f"| same, ours with the sandbox off (diagnostic: the template without any of its sandbox directives, "
        f"bench_sandbox's \"none\") | "
        f"{_fmt_range(sb)} | — | {_med(sb) / _med(ss):.2f}× |",
        (f"| same, systemd alone (diagnostic: emergency-stop, then `systemctl start --no-block "
         f"unified-profile-core.target unified.target`, no CLI) | {_fmt_range([r['ready_s'] for r in alone_start])} | — | "
         f"{_med([r['ready_s'] for r in alone_start]) / _med(ss):.2f}× |") if alone_start else
        "| same, systemd alone | failed in this run | — | — |",
        f"| memory once ready (PSS summed; ours: unified-agents.slice, {pids(o)} PIDs; supervisord: its tree, "
        f"{pids(s)} PIDs incl. supervisord) | {mem(o):.0f} MB | {mem(s):.0f} MB | {mem(o) / mem(s):.2f}× |",
        f"| kill -9 of {AGENT} under 100 req/s for 3 s: requests lost (all rounds) | {ko} | {ks} | — |",
        f"| same: kill → new process healthy | {_fmt_range(rec(o, 'kill'))} | {_fmt_range(rec(s, 'kill'))} | "
        f"{_med(rec(o, 'kill')) / _med(rec(s, 'kill')):.2f}× |",
        f"| config change (LOG_LEVEL of {AGENT}) under 100 req/s for 6 s: requests lost (all rounds) | "
        f"{co} | {cs} | — |",
        f"| same: command → new process with the change healthy | {_fmt_range(rec(o, 'config'))} | "
        f"{_fmt_range(rec(s, 'config'))} | {_med(rec(o, 'config')) / _med(rec(s, 'config')):.2f}× |",
        f"| slowest answered request during kill / config change | {slow(o, 'kill_load'):.2f} s / "
        f"{slow(o, 'config_load'):.2f} s | {slow(s, 'kill_load'):.2f} s / {slow(s, 'config_load'):.2f} s | — |",
        "",
        "How: config change, ours: a drop-in `/etc/unified/conf.d/` with the agent's `environment: {LOG_LEVEL: "
        "DEBUG}`, then `unified-ctl apply --restart`; supervisord: the program's `environment=` edited, then "
        f"`supervisorctl update {AGENT} && supervisorctl start {AGENT}` (update removes and re-adds the changed "
        "program; with autostart=false it must be started). Both checked: the new process has LOG_LEVEL=DEBUG.",
        "",
    ]
    out += _cpu_lines(o, s, bare_start, names)
    out += _phase_lines(phases, cmd_o)
    out += _import_lines(imports)
    return out


CPU_ROWS = (("agents", "the 16 agents, summed (each process's user + system time once every port is 200; "
                       "under systemd it includes the sandbox set up in the forked child before exec)"),
            ("pid1", "PID 1 (systemd: units, cgroups, fork, sd_notify)"),
            ("journald", "systemd-journald (the agents' log lines)"),
            ("supervisord", "supervisord"),
            ("command", "the command and what it ran (unified-ctl + systemctl / supervisorctl)"),
            ("probe", "the probe polling 16 health ports every 50 ms (the same on both sides)"))


def _cpu_lines(o, s, bare, names):
    """Where the CPU of a start goes, each side: on 2 CPUs a start of 16 Python processes is
    CPU-bound, so (CPU seconds spent) / (CPUs) is a floor under its wall time."""
    if "cpu" not in o[0]["start"]:
        return []
    cols = [[r["start"] for r in o], list(bare), [r["start"] for r in s]]
    med = lambda starts, k: _med([st["cpu"].get(k, 0.0) for st in starts])
    per = lambda starts: _med([v for st in starts for v in st["cpu"]["agent_each"].values() if v])
    total = lambda starts: _med([sum(st["cpu"].get(k, 0.0) for k, _ in CPU_ROWS) for st in starts])
    wall = lambda starts: _med([st["ready_s"] for st in starts])
    ncpu = o[0]["start"]["cpu"]["ncpu"]
    row = lambda label, f: f"| {label} | " + " | ".join(f(c) for c in cols) + " |"
    lines = ["### Where the CPU of a start goes (median over the rounds)", "",
             "| CPU seconds | ours | ours, sandbox off | supervisord |", "| --- | --- | --- | --- |"]
    lines += [row(label, lambda c, k=k: f"{med(c, k):.2f}") for k, label in CPU_ROWS]
    lines += [
        row("one agent's start, median", lambda c: f"{per(c):.3f}"),
        row("**all of the above**", lambda c: f"**{total(c):.2f}**"),
        row(f"floor under the wall time: all of the above / {ncpu} CPUs", lambda c: f"{total(c) / ncpu:.2f} s"),
        row("measured wall time (start rows above)", lambda c: f"{wall(c):.2f} s"),
        row("host CPUs busy during the start, host-wide (other jobs included)", lambda c: f"{med(c, 'host_busy'):.2f}"),
        "",
        f"Read: {ncpu} CPUs cannot finish a start in less than its CPU seconds / {ncpu}. ≤ 0.7× "
        f"supervisord here would be {0.7 * wall(cols[2]):.2f} s, against a floor of "
        f"{total(cols[0]) / ncpu:.2f} s for ours and {total(cols[2]) / ncpu:.2f} s for supervisord "
        "itself, running the same agent code.", ""]
    return lines + _per_agent_cpu_lines(cols, names)


def _per_agent_cpu_lines(cols, names):
    """Each agent's own CPU for its start, median over the rounds, so that a gap between the
    columns can be pinned on the agents that make it."""
    keys = sorted({a for c in cols for st in c for a in st["cpu"]["agent_each"]})

    def each(starts, a):
        vals = [st["cpu"]["agent_each"][a] for st in starts if st["cpu"]["agent_each"].get(a)]
        return _med(vals) if vals else float("nan")

    rows = sorted(((names.get(a, a), [each(c, a) for c in cols]) for a in keys), key=lambda r: -r[1][0])
    fmt = lambda v: f"{v * 1000:.0f}" if v == v else "—"  # NaN: the agent had no CPU sample in that column
    return ["| each agent's start, CPU ms (median; /proc counts in 10 ms ticks) | ours | ours, sandbox off | "
            "supervisord |",
            "| --- | --- | --- | --- |"] + [f"| {a} | " + " | ".join(fmt(v) for v in vs) + " |" for a, vs in rows] + [""]


def _phase_lines(phases, cmd_o):
    start, calls, ex, own, s_start, s_ex, s_own = phases
    first_call = calls[0][0] if calls else float("nan")
    lines = ["### Where ours spends the start (one instrumented round of each)", "",
             "Seconds after the command started (t0). systemctl calls logged by a PATH shim around `systemctl` "
             "(the shim adds a few ms per call); exec = the agent process's start time (/proc, 10 ms steps); "
             "own start = exec → health 200 (Python start, imports, bind, READY).", "",
             "| step | ours (systemd + unified-ctl) | supervisord |", "| --- | --- | --- |",
             f"| command start → first systemctl call (Python start, imports, catalog load, plan) | "
             f"{first_call:.2f} s | — |"]
    for at, dur, args in calls:
        lines.append(f"| `systemctl {args[:70]}` | at {at:.2f} s, took {dur:.2f} s | — |")
    lines += [
        f"| first agent exec | {min(ex.values()):.2f} s | {min(s_ex.values()):.2f} s |",
        f"| last agent exec | {max(ex.values()):.2f} s | {max(s_ex.values()):.2f} s |",
        f"| agent's own start, median (max) | {_med(list(own.values())):.2f} s ({max(own.values()):.2f} s) | "
        f"{_med(list(s_own.values())):.2f} s ({max(s_own.values()):.2f} s) |",
        f"| every health port 200 | {start['ready_s']:.2f} s | {s_start['ready_s']:.2f} s |",
        f"| the command itself exits | {start['cmd_s']:.2f} s | {s_start['cmd_s']:.2f} s |",
        "",
        f"(Command exit over the timed rounds, ours: median {_med(cmd_o):.2f} s; `profile switch` waits for "
        "readiness itself, then checks for strays.)", ""]
    return lines


def _import_lines(imports):
    lines = ["### Import time of an agent's start (`python3 -X importtime`, real start path up to /health 200)", "",
             "| agent | top-level imports, cumulative | modules | click / rich loaded | largest |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in imports.items():
        mods = set(r["modules"])
        heavy = ", ".join(f"{m} {us / 1000:.0f} ms" for us, m in r["largest"])
        lines.append(f"| {name} | {r['total_us'] / 1000:.0f} ms | {len(mods)} | "
                     f"{'click' if 'click' in mods else 'no click'} / {'rich' if 'rich' in mods else 'no rich'} | "
                     f"{heavy} |")
    lines.append("")
    for name, r in imports.items():
        for lib in ("click", "rich"):
            if r.get(f"{lib}_via"):
                lines.append(f"{name} imports {lib} through: `{r[f'{lib}_via']}`.  ")
    lines += ["", "-X importtime inflates the sums; cold activation of one dormant agent (sandbox on and off) is "
              "in the section \"One agent under systemd (SDK)\".", ""]
    return lines
