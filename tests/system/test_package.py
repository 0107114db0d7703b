"""The Debian package in a real systemd: installs offline, works, upgrades, goes away.

Tests on the shared `container` only read; tests that change the package state use
their own `new_container()`, discarded afterwards.
"""
import json
import re

import harness

PKG = "unified-system"
VOICE = "unified-system-voice"


def _unified_processes(c) -> list[str]:
    """Processes of the package still running: user unified, or our code in the args."""
    out = c.run(["ps", "-eo", "pid=,user:32=,args="]).stdout
    left = []
    for line in out.splitlines():
        pid, user, args = (line.split(None, 2) + ["", ""])[:3]
        if user == "unified" or "unified_agents" in args or "unified_ctl" in args \
                or "unified_core" in args \
                or "unified-ctl" in args:
            if "ps -eo" not in args:
                left.append(line.strip())
    return left


def _leftover_units(c) -> list[str]:
    """unified* units still active: any service/socket/scope (they hold processes and
    ports), or any unit whose file is gone (not-found) yet active, e.g. a generated
    profile target. Empty slices (systemd synthesizes .slice units) don't count."""
    out = c.systemctl("list-units", "--all", "--plain", "--no-legend",
                      "--state=active,activating,deactivating,reloading,failed",
                      "unified*").stdout
    left = []
    for line in out.splitlines():
        unit, load, active = (line.split() + ["", "", ""])[:3]
        if unit.endswith((".service", ".socket", ".scope")) or load == "not-found":
            left.append(f"{unit} ({load} {active})")
    return left


def test_installs_offline(container, deb):
    """The session container installed the .deb with `apt-get install ./…deb`, no network."""
    assert container.dpkg_version(PKG) == harness.deb_field(deb, "Version")
    links = container.run(["ip", "-o", "link", "show"]).stdout
    assert [ln.split(":")[1].strip() for ln in links.splitlines()] == ["lo"], links
    routes = container.run(["ip", "route", "show", "default"]).stdout
    assert routes.strip() == "", routes


def test_unified_ctl_help(container):
    r = container.run(["unified-ctl", "--help"])
    assert "Usage" in r.stdout


def test_validate_shipped_catalog(container):
    r = container.run(["unified-ctl", "validate", "/etc/unified/unified.yaml"])
    assert r.returncode == 0


def test_unified_target_is_known(container):
    assert container.unit_property("unified.target", "LoadState") == "loaded"
    r = container.systemctl("status", "unified.target", check=False)
    # 0 active, 3 inactive; 4 would be "no such unit"
    assert r.returncode in (0, 3), r
    assert "Loaded: loaded" in r.stdout, r.stdout


# Where bash-completion, Debian's zsh (its default fpath) and fish (vendor_completions.d)
# look for a command's completion, and the shipped file for each.
COMPLETIONS = {"bash": ("/usr/share/bash-completion/completions/unified-ctl", "unified-ctl"),
               "zsh": ("/usr/share/zsh/vendor-completions/_unified-ctl", "_unified-ctl"),
               "fish": ("/usr/share/fish/vendor_completions.d/unified-ctl.fish", "unified-ctl.fish")}


def test_completion_files_are_installed_where_each_shell_looks(container):
    listed = container.run(["dpkg", "-L", PKG]).stdout.splitlines()
    for shell, (path, name) in COMPLETIONS.items():
        assert path in listed, shell
        installed = container.run(["cat", path]).stdout
        assert installed == (harness.REPO / "packaging" / "completions" / name).read_text(), shell


def test_installed_unified_ctl_answers_each_shells_completion_request(container):
    """What the shims ask the installed unified-ctl (the catalog in /etc/unified) and get."""
    for shell in COMPLETIONS:
        out = container.run(["unified-ctl"], check=False, env={
            "_UNIFIED_CTL_COMPLETE": f"{shell}_complete", "COMP_WORDS": "unified-ctl profile switch le",
            "COMP_CWORD": "3" if shell != "fish" else "le"}).stdout
        # bash and fish answer "plain,learning", zsh "plain\nlearning\n_" (its description)
        assert "learning" in re.split(r"[\s,]+", out), (shell, out)


def test_user_and_state_dir_exist(container):
    passwd = container.run(["getent", "passwd", "unified"]).stdout
    assert passwd.startswith("unified:"), passwd
    container.run(["test", "-d", "/var/lib/unified"])


def test_install_starts_the_core_profile(new_container):
    """README's promise: `apt install` alone starts the fleet. The postinst (dh_installsystemd)
    enables and starts unified.target; the generator, run by the postinst's daemon-reload,
    linked the catalog's settings.profile (core) into it. No `profile switch` here."""
    c = new_container()
    assert c.systemctl("is-enabled", "unified.target").stdout.strip() == "enabled"
    assert c.is_active("unified.target") == "active"
    wants = c.run(["systemctl", "show", "-p", "Wants", "--value", "unified.target"]).stdout.split()
    assert "unified-profile-core.target" in wants, wants
    c.run(["test", "!", "-e", "/etc/unified/selected-profile"])   # nobody switched
    all_healthy = ("import json, sys; a = json.load(sys.stdin)['agents']; "
                   "sys.exit(len(a) != 16 or any((x['state'], x['health']) != ('active', 'healthy') for x in a))")
    c.wait_until(["sh", "-c", f'unified-ctl status --json | python3 -c "{all_healthy}"'], timeout=60)


def test_the_base_package_alone_installs_and_a_speech_agent_names_the_voice_package(new_container, deb):
    """Speech ships in unified-system-voice (a Recommends): installed without it, the base
    works and a speech agent's start fails once (exit 2, not retried) naming the package;
    installing the package brings the agent up."""
    c = new_container(install=False)
    c.install_deb(deb, companions=False, timeout=600)
    assert c.dpkg_version(PKG) and c.dpkg_version(VOICE) is None
    c.run(["test", "!", "-e", "/usr/lib/python3/dist-packages/unified_agents/builtin/speech"])
    unit = "unified-agent@TTSService.service"
    c.systemctl("start", unit, check=False, timeout=60)
    c.wait_until(["sh", "-c", f"systemctl is-failed {unit}"], timeout=30)
    assert c.unit_property(unit, "ExecMainStatus") == "2"
    assert c.unit_property(unit, "NRestarts") == "0"
    log = c.run(["journalctl", "-u", unit, "-o", "cat", "--no-pager"]).stdout
    assert "ships in the Debian package unified-system-voice" in log, log
    assert "apt install unified-system-voice" in log, log
    assert "Traceback" not in log, log

    companions = {harness.deb_field(d, "Package"): d for d in harness.companion_debs(deb)}
    assert sorted(companions) == [VOICE, "unified-system-wakeword"], companions
    c.install_deb(companions[VOICE])
    c.systemctl("reset-failed", unit, check=False)
    c.systemctl("start", unit, timeout=60)
    c.wait_until(["curl", "-sf", "http://127.0.0.1:6801/health"], timeout=60)
    c.systemctl("stop", unit, timeout=60)


def test_upgrade_to_higher_version(new_container, deb, upgrade_deb):
    c = new_container()
    old = c.dpkg_version(PKG)
    target_before = c.is_active("unified.target")
    c.sh("echo '# local operator edit' >> /etc/unified/unified.yaml\n"
         "echo keep > /var/lib/unified/systest-sentinel")

    c.install_deb(upgrade_deb)

    new = c.dpkg_version(PKG)
    assert new == harness.deb_field(upgrade_deb, "Version") and new != old
    assert c.dpkg_version(VOICE) == new   # the speech package moves with the base
    # the operator's conffile edit and the state survive an upgrade
    assert "# local operator edit" in c.read_file("/etc/unified/unified.yaml")
    assert c.read_file("/var/lib/unified/systest-sentinel").strip() == "keep"
    assert c.unit_property("unified.target", "LoadState") == "loaded"
    assert c.is_active("unified.target") == target_before
    c.run(["unified-ctl", "validate", "/etc/unified/unified.yaml"])


# What the package's commands create, each made here by the command itself; purge removes
# them all (packaging/debian/unified-system.postrm).
CREATED_BY_COMMANDS = {
    "/etc/unified/.history": ["unified-ctl", "apply"],                 # config history
    "/var/lib/unified-system/reports": ["unified-ctl", "report", "weekly", "--no-plot"],
    "/var/lib/unified-prometheus": ["unified-ctl", "monitoring", "setup", "--no-start"],
    "/run/systemd/system/unified-agent@.service.d/90-disable-auto-restart.conf":
        ["unified-ctl", "auto-restart", "disable"],
    "/etc/unified/selected-profile": ["unified-ctl", "profile", "switch", "core"],
}
CREATED_BY_PACKAGE = ["/var/lib/unified", "/etc/unified/token", "/etc/unified/.last-good",
                      "/run/unified"]


def test_remove_then_purge(new_container):
    c = new_container()
    for path, cmd in CREATED_BY_COMMANDS.items():
        c.run(cmd, timeout=300)
        c.run(["test", "-e", path])
    for path in CREATED_BY_PACKAGE:
        c.run(["test", "-e", path])
    # the operator's backups are theirs: a purge keeps them (the way back)
    backup = c.run(["unified-ctl", "backup", "create", "--json"], timeout=300)
    # whatever the package runs, removal must stop it
    c.systemctl("start", "unified.target", check=False, timeout=120)

    c.run(["apt-get", "remove", "-y", "-o", "Dpkg::Use-Pty=0", PKG], timeout=300)
    assert c.dpkg_version(PKG) is None
    assert c.unit_property("unified.target", "LoadState") == "not-found"
    assert _leftover_units(c) == []
    assert _unified_processes(c) == []
    # remove keeps conffiles (Debian policy), purge deletes them
    c.run(["test", "-e", "/etc/unified/unified.yaml"])

    c.run(["apt-get", "purge", "-y", "-o", "Dpkg::Use-Pty=0", PKG], timeout=300)
    status = c.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", PKG], check=False)
    assert status.returncode != 0 or status.stdout.strip() in ("", "un"), status.stdout
    c.run(["test", "!", "-e", "/etc/unified/unified.yaml"])
    units = c.run("ls /lib/systemd/system /usr/lib/systemd/system "
                  "/lib/systemd/system-generators /usr/lib/systemd/system-generators "
                  "2>/dev/null | grep -i unified || true").stdout
    assert units.strip() == "", units
    assert _unified_processes(c) == []
    left = [p for p in [*CREATED_BY_COMMANDS, *CREATED_BY_PACKAGE, "/etc/unified"]
            if c.run(["test", "-e", p], check=False).returncode == 0]
    assert left == []
    c.run(["test", "-s", json.loads(backup.stdout)["path"]])
