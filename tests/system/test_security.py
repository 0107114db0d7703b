"""Security on the installed package (issue 9, item 5; docs/SECURITY.md):

- `systemd-analyze security` exposure of each kind of unit an agent runs in stays at or
  under MAX_EXPOSURE (systemd calls <= 3.0 "OK"; we measure 1.6-1.8 and fail above 2.0 so
  that a lost directive shows at once);
- the fleet token is a root-only file, handed to agents as a credential, never in their
  environment nor in any log;
- with the agents bound to every address, a caller that is not on this host is refused the
  endpoints that change state unless it presents the token, whatever X-Forwarded-For says;
- files under /etc/unified and /var/lib/unified have tight modes.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_EXPOSURE = 2.0

SEC_DROPIN = "/etc/unified/conf.d/90-systest-security.yaml"
# Two command agents (not in any profile: they never start here; their units still load):
# one whose command takes the socket systemd holds, one behind systemd-socket-proxyd.
SEC_AGENTS = """\
agents:
  SecCommand:
    group: systest_security
    port: 7991
    health_port: 8991
    required: false
    run:
      command: ['/usr/bin/python3', '-c', 'import time; time.sleep(60)']
  SecProxied:
    group: systest_security
    port: 7990
    health_port: 8990
    required: false
    run:
      command: ['/usr/bin/python3', '-m', 'http.server', '--bind', '127.0.0.1', '{backend_port}']
      binds_own_port: true
      backend_port: 17990
"""


def catalog():
    import sys

    sys.path.insert(0, str(ROOT))
    from unified_core.catalog import load_catalog

    return load_catalog(str(ROOT / "etc" / "unified" / "unified.yaml"), env={}, dropins=False)


def reference_agent() -> str:
    # core has none left (every agent of it is real since issue 14): any agent of the catalog
    cat = catalog()
    return next(n for n in sorted(cat.agents) if cat.agents[n].run.kind == "reference")


def exposure(c, unit: str) -> tuple[float, str]:
    out = c.run(["systemd-analyze", "security", "--no-pager", unit]).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", out)
    assert m, f"no exposure level for {unit}:\n{out[-2000:]}"
    return float(m.group(1)), m.group(2)


@pytest.fixture
def command_agents(container):
    container.write_file(SEC_DROPIN, SEC_AGENTS)
    container.run(["unified-ctl", "apply"], timeout=120)
    yield container
    container.run(["rm", "-f", SEC_DROPIN])
    container.run(["unified-ctl", "apply"], timeout=120)
    container.run(["unified-ctl", "profile", "switch", "core", "--json"], timeout=180)


def test_every_kind_of_agent_unit_is_sandboxed(command_agents):
    c = command_agents
    kinds = {
        "reference agent": f"unified-agent@{reference_agent()}.service",
        "builtin agent (ServiceRegistry)": "unified-agent@ServiceRegistry.service",
        "builtin with a state DB (SystemDigitalTwin)": "unified-agent@SystemDigitalTwin.service",
        "hub (journal group, file_sd dir)": "unified-agent@ObservabilityHub.service",
        "speech agent with the audio group (AudioCapture)": "unified-agent@AudioCapture.service",
        "command agent": "unified-agent@SecCommand.service",
        "socket-proxyd in front of a command": "unified-agent@SecProxied.service",
        "command behind socket-proxyd": "unified-backend@SecProxied.service",
    }
    table = {kind: exposure(c, unit) for kind, unit in kinds.items()}
    print("\n" + "\n".join(f"| {k} | `{kinds[k]}` | {v[0]} {v[1]} |" for k, v in table.items()))
    worse = {k: v for k, v in table.items() if v[0] > MAX_EXPOSURE}
    assert not worse, f"exposure above {MAX_EXPOSURE}: {worse}"
    # the directives that got us from 1.8 to 1.4 are really in effect
    props = c.run(["systemctl", "show", "-p", "PrivateUsers,SystemCallFilter,User",
                   kinds["builtin agent (ServiceRegistry)"]]).stdout
    assert "PrivateUsers=yes" in props and "User=unified" in props
    allowed = props.split("SystemCallFilter=", 1)[1].split("\n")[0].split()
    assert "read" in allowed and "chown" not in allowed and "setrlimit" not in allowed


def test_kernel_tunables_sysfs_and_cgroups_are_read_only_inside_an_agent(container):
    """The template makes /proc/sys and /sys read-only with ReadOnlyPaths= (two mounts)
    instead of ProtectKernelTunables= (20; docs/SECURITY.md says why): both, and the
    cgroup tree under /sys, are read-only mounts in the agent's own namespace."""
    c = container
    pid = c.unit_property("unified-agent@ServiceRegistry.service", "MainPID")
    table = c.run(["cat", f"/proc/{pid}/mountinfo"]).stdout
    options = {}
    for line in table.splitlines():  # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
        f = line.split()
        options[f[4]] = f[5].split(",")  # the last mount on a point is the one in effect
    for point in ("/proc/sys", "/sys", "/sys/fs/cgroup"):
        assert "ro" in options.get(point, []), f"{point} not read-only: {options.get(point)}"
    assert "ro" not in options["/var/lib/unified"], "the state dir must stay writable"


def token_of(c) -> str:
    return c.run(["cat", "/etc/unified/token"]).stdout.strip()


def test_the_token_is_root_only_and_reaches_agents_as_standard_input_only(container):
    c = container
    assert c.run(["stat", "-c", "%a %U %G", "/etc/unified/token"]).stdout.split() == \
        ["600", "root", "root"]
    token = token_of(c)
    assert re.fullmatch(r"[0-9a-f]{64}", token), "not 32 random bytes as hex"
    unit = "unified-agent@ServiceRegistry.service"
    assert c.unit_property(unit, "StandardInput") == "file"
    pid = c.unit_property(unit, "MainPID")
    # read once at start, then standard input is /dev/null: no program it runs inherits it
    assert c.run(["readlink", f"/proc/{pid}/fd/0"]).stdout.strip() == "/dev/null"
    leaks = c.run(["sh", "-c", "grep -l " + shlex.quote(token) + " /proc/" + pid + "/environ "
                   "/proc/" + pid + "/cmdline; systemctl show 'unified-agent@*' "
                   "-p Environment | grep -c " + shlex.quote(token)], check=False).stdout
    assert leaks.split() == ["0"], f"the token shows outside the agent: {leaks}"
    # no per-unit credential mount any more (each one cost every other cold start)
    assert c.run(["sh", "-c", "grep -c /run/credentials/unified-agent /proc/self/mountinfo"],
                 check=False).stdout.strip() == "0"
    # the agent user cannot read the file itself
    r = c.run(["runuser", "-u", "unified", "--", "cat", "/etc/unified/token"], check=False)
    assert r.returncode != 0


def test_without_the_token_file_agents_still_start(container):
    """systemd fails a start whose StandardInput=file: is missing (208/STDIN): the generator
    renders that drop-in only while the file exists, so after a daemon-reload the fleet
    runs without a token."""
    c = container
    unit = "unified-agent@ServiceRegistry.service"
    drop_in = "/run/systemd/generator/unified-agent@.service.d/20-token.conf"
    c.run(["mv", "/etc/unified/token", "/etc/unified/token.systest"])
    try:
        c.systemctl("daemon-reload", timeout=120)
        assert c.run(["test", "-e", drop_in], check=False).returncode != 0
        c.systemctl("restart", unit, timeout=60)
        c.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8200/health"], timeout=30)
        assert c.unit_property(unit, "StandardInput") == "null"
    finally:
        c.run(["mv", "/etc/unified/token.systest", "/etc/unified/token"])
        c.systemctl("daemon-reload", timeout=120)
        c.systemctl("restart", unit, timeout=60)
        c.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8200/health"], timeout=30)
    assert c.unit_property(unit, "StandardInput") == "file"


def test_a_remote_caller_needs_the_token_to_change_state(new_container):
    """Agents bound to 0.0.0.0; 10.99.0.1 (added to lo) is an address of this host that is
    not loopback, so a connection from it stands for a remote caller."""
    c = new_container()
    cat = catalog()
    mm, ll = cat.agents["ModelManagerSuite"], cat.agents["LazyLoader"]
    c.write_file("/etc/unified/conf.d/90-bind-all.yaml", "settings:\n  bind_address: 0.0.0.0\n")
    c.run(["unified-ctl", "apply"], timeout=120)
    c.run(["systemctl", "restart", "unified-agent@ModelManagerSuite.service",
           "unified-agent@LazyLoader.service"], timeout=120)
    c.run(["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"])
    for a in (mm, ll):
        c.wait_until(["curl", "-sf", "-m", "2", f"http://10.99.0.1:{a.health_port}/health"],
                     timeout=30)
    token = token_of(c)

    def post(url, *headers, source="10.99.0.1"):
        args = ["curl", "-s", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}",
                "--interface", source, "-X", "POST", url, "-d", "{}"]
        for h in headers:
            args += ["-H", h]
        return c.run(args).stdout.strip()

    clear = f"http://10.99.0.1:{mm.port}/cache/clear"
    assert post(clear) == "403"
    assert post(clear, "X-Forwarded-For: 127.0.0.1", "X-Real-IP: 127.0.0.1",
                "Forwarded: for=127.0.0.1") == "403"
    assert post(clear, "Authorization: Bearer not-the-token-0123456789") == "403"
    assert post(clear, f"Authorization: Bearer {token}") == "200"
    assert post(f"http://127.0.0.1:{mm.port}/cache/clear", source="127.0.0.1") == "200"
    # the runbook's load goes to the health port: same rule there
    load = f"http://10.99.0.1:{ll.health_port}/load"
    assert post(load) == "403"
    # what does not change state stays open to the network
    r = c.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface",
               "10.99.0.1", f"http://10.99.0.1:{mm.port}/routing/stats"])
    assert r.stdout == "200"
    log = c.run(["journalctl", "--no-pager", "-o", "cat", "-u", "unified-agent@*"]).stdout
    assert "refused POST /cache/clear from 10.99.0.1" in log
    assert token not in log and "not-the-token-0123456789" not in log


def modes(c, *paths) -> dict:
    out = c.run(["sh", "-c", "for p in \"$@\"; do stat -c '%n %a %U %G' \"$p\"; done",
                 "sh", *paths]).stdout
    return {line.split()[0]: tuple(line.split()[1:]) for line in out.splitlines()}


def test_files_under_etc_unified_and_var_lib_unified_are_tight(container):
    c = container
    c.run(["unified-ctl", "apply"], timeout=120)  # writes .last-good and the history
    m = modes(c, "/etc/unified", "/etc/unified/unified.yaml", "/etc/unified/token",
              "/etc/unified/.last-good", "/etc/unified/.last-good/unified.yaml",
              "/etc/unified/.history", "/var/lib/unified")
    assert m["/etc/unified/unified.yaml"][0] == "644"            # not secret: agents read it
    assert m["/etc/unified/token"] == ("600", "root", "root")
    assert m["/etc/unified/.last-good"] == ("750", "root", "unified")
    assert m["/etc/unified/.last-good/unified.yaml"] == ("640", "root", "unified")
    assert m["/etc/unified/.history"][:2] == ("750", "root")
    assert m["/var/lib/unified"] == ("750", "unified", "unified")
    # nothing under the state dir or the private /etc dirs is readable by others
    loose = c.run(["find", "/var/lib/unified", "/etc/unified/.last-good", "/etc/unified/.history",
                   "-perm", "/o+rwx", "-printf", "%p %m\n"]).stdout.strip()
    under_private_dir = [line for line in loose.splitlines()
                         if not line.startswith("/etc/unified/.history/")]
    assert not under_private_dir, f"world-accessible: {loose}"
    dbs = c.run(["sh", "-c", "stat -c '%n %a %U' /var/lib/unified/*.db"]).stdout.splitlines()
    assert dbs and all(line.split()[1:] == ["640", "unified"] for line in dbs), dbs
    # a backup archive of it all (the token included) stays root's
    out = c.run(["unified-ctl", "backup", "create", "--json"], timeout=120).stdout
    path = json.loads(out)["path"]
    try:
        b = modes(c, str(Path(path).parent), path)
        assert b[str(Path(path).parent)][0][-1] == "0" and b[path][0][-1] == "0", b
    finally:
        c.run(["rm", "-f", path])
