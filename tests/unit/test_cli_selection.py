"""Acting on many agents: globs, --group and `all` (selection.py), `agent list` and `agent show`,
with the systemd seam faked (tests/system/test_cli_conventions.py runs them on systemd)."""
from __future__ import annotations

import json

from .test_fleet_ops import cat, ctl, env, fake, out  # noqa: F401  (fixtures)

MEMORY_GLOB = ["MemoryClient", "MemoryOrchestratorService"]  # 'Memory*', catalog order


def _status_names(*args) -> list[str]:
    res = ctl("status", "--no-health", "--json", *args)
    assert res.exit_code == 0, out(res)
    return [a["name"] for a in json.loads(res.stdout)["agents"]]


def test_status_takes_a_glob_and_shows_every_agent_it_matches(fake):
    assert _status_names("Memory*") == MEMORY_GLOB
    assert _status_names("Memory*", "ServiceRegistry") == ["ServiceRegistry", *MEMORY_GLOB]


def test_status_json_names_each_agent_name_and_keeps_agent_for_older_scripts(fake):
    res = ctl("status", "--no-health", "--json", "MemoryClient")
    row = json.loads(res.stdout)["agents"][0]
    assert row["name"] == row["agent"] == "MemoryClient"


def test_status_group_and_all(fake, cat):
    assert _status_names("--group", "memory_foundation") == list(cat.groups["memory_foundation"])
    assert _status_names("all") == list(cat.agents)


def test_status_accepts_no_pager_as_systemctl_does(fake):
    assert _status_names("--no-pager", "MemoryClient") == ["MemoryClient"]


def test_a_glob_matching_nothing_is_one_line_naming_close_names(fake):
    res = ctl("status", "memory*")
    assert res.exit_code == 1 and "Traceback" not in out(res)
    assert res.stderr.strip() == ("Error: no agent matches 'memory*'; close names: MemoryClient, "
                                  "MemoryOrchestratorService (names are case-sensitive); "
                                  "`unified-ctl agent list` lists all 77")
    res = ctl("status", "Zq*")
    assert res.exit_code == 1 and "no agent matches 'Zq*'; `unified-ctl agent list` lists all 77" in res.stderr


def test_an_unknown_group_is_an_error_listing_the_groups(fake):
    res = ctl("status", "--group", "memory_fundation")
    assert res.exit_code == 1
    assert "unknown group 'memory_fundation' (did you mean memory_foundation?); allowed: " in res.stderr
    assert "audio_services, auth_security_services" in res.stderr


def test_restart_with_a_glob_restarts_only_the_running_agents_it_matches(fake, cat):
    fake.start([cat.profiles["core"].target])  # MemoryClient runs; MemoryOrchestratorService does not
    fake.calls.clear()
    res = ctl("agent", "restart", "Memory*")
    assert res.exit_code == 0, out(res)
    assert ("restart", ("unified-agent@MemoryClient.service",)) in fake.calls
    assert res.stdout == "restarted MemoryClient (the running ones matching)\n"


def test_restart_all_restarts_the_running_processes_and_no_dormant_agent(fake, cat):
    fake.start([cat.profiles["vision"].target])
    running = [n for n in cat.agents if fake.state.get(cat.agents[n].service) == "active"]
    dormant = [n for n in cat.profiles["vision"].agents if n not in running]
    assert dormant, "vision has optional agents that only listen"
    fake.calls.clear()
    res = ctl("agent", "restart", "all")
    assert res.exit_code == 0, out(res)
    restarted = next(c[1] for c in fake.calls if c[0] == "restart")
    assert list(restarted) == [cat.agents[n].service for n in running]


def test_restart_when_nothing_matching_runs_says_so_and_restarts_nothing(fake):
    res = ctl("agent", "restart", "--group", "dream_services")
    assert res.exit_code == 0
    assert res.stdout == "no running agent matches --group dream_services: nothing restarted\n"
    assert not [c for c in fake.calls if c[0] == "restart"]


def test_restart_by_name_restarts_that_agent_even_if_stopped(fake):
    res = ctl("agent", "restart", "MemoryOrchestratorService")
    assert res.exit_code == 0
    assert ("restart", ("unified-agent@MemoryOrchestratorService.service",)) in fake.calls


def test_start_all_is_refused_naming_the_profile_to_switch_to(fake):
    res = ctl("agent", "start", "all")
    assert res.exit_code == 1
    assert "`agent start all` would start all 77 agents outside any profile" in res.stderr
    assert not [c for c in fake.calls if c[0] == "start"]


def test_start_and_stop_a_group(fake, cat):
    group = list(cat.groups["dream_services"])
    assert ctl("agent", "start", "--group", "dream_services").exit_code == 0
    assert all(fake.state[cat.agents[n].service] == "active" for n in group)
    res = ctl("agent", "stop", "--group", "dream_services")
    assert res.exit_code == 0
    assert all(fake.state[cat.agents[n].socket] == "inactive" for n in group)
    assert res.stdout.startswith(f"stopped {', '.join(group)} (service and socket")


def test_agent_commands_without_any_agent_are_a_usage_error(fake):
    res = ctl("agent", "restart")
    assert res.exit_code == 2 and "name the agents: NAME, a glob such as 'Memory*', all, or --group NAME" in res.stderr


def test_agent_list_json_has_name_group_profiles_port_and_state(fake, cat):
    fake.start([cat.profiles["core"].target])
    res = ctl("agent", "list", "--json", "Memory*")
    assert res.exit_code == 0, out(res)
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == MEMORY_GLOB
    mc = rows[0]
    a = cat.agents["MemoryClient"]
    assert (mc["group"], mc["port"], mc["health_port"], mc["state"]) == (a.group, a.port, a.health_port, "active")
    assert mc["profiles"] == [p.name for p in cat.profiles.values() if "MemoryClient" in p.agents]
    assert rows[1]["state"] == "stopped" and "core" not in rows[1]["profiles"]
    assert len(json.loads(ctl("agent", "list", "--json").stdout)) == 77


def test_agent_list_table(fake):
    res = ctl("agent", "list", "--group", "dream_services")
    assert res.exit_code == 0 and "2 of 77 agents" in res.stdout


def test_agent_show_merges_the_dropins_and_names_the_files(fake, env, cat):
    dropin = env / "etc" / "conf.d" / "50-port.yaml"
    dropin.parent.mkdir(exist_ok=True)
    dropin.write_text("agents:\n  MemoryClient:\n    port: 7999\n")
    res = ctl("agent", "show", "--json", "MemoryClient")
    assert res.exit_code == 0, out(res)
    d = json.loads(res.stdout)
    assert d["name"] == "MemoryClient" and d["catalog"]["port"] == 7999
    assert d["catalog"]["health_port"] == cat.agents["MemoryClient"].health_port
    assert d["sources"] == [str(env / "etc" / "unified.yaml"), str(dropin)]
    assert d["defined_in"].startswith(str(env / "etc" / "unified.yaml") + ":")
    assert set(d["units"]) == {"unified-agent@MemoryClient.service", "unified-agent@MemoryClient.socket"}
    assert d["state"]["state"] == "stopped"
    assert "core" in d["catalog"]["profiles"]
    text = ctl("agent", "show", "MemoryClient").stdout
    assert "changed by " + str(dropin) in text and "port: 7999" in text


def test_agent_show_of_an_unknown_agent_names_close_ones(fake):
    res = ctl("agent", "show", "MemoryClinet")
    assert res.exit_code == 1 and "did you mean MemoryClient" in res.stderr


def test_logs_takes_a_glob(fake):
    res = ctl("logs", "Memory*")
    assert res.exit_code == 0, out(res)
    args = next(c[1] for c in fake.calls if c[0] == "journal-exec")
    assert [a for a in args if a.startswith("unified-agent@")] == [
        "unified-agent@MemoryClient.service", "unified-agent@MemoryOrchestratorService.service",
        "unified-agent@MemoryClient.socket", "unified-agent@MemoryOrchestratorService.socket"]


def test_a_bad_glob_or_group_is_said_before_systemd_is_asked(fake, monkeypatch):
    def down(patterns):
        raise AssertionError("systemd was asked")

    monkeypatch.setattr(fake, "list_units", down)
    for args, said in ((("restart", "Zq*"), "no agent matches 'Zq*'"), (("stop", "--group", "nope"), "unknown group"),
                       (("restart", "all", "NoSuchAgent"), "unknown agent 'NoSuchAgent'")):
        res = ctl("agent", *args)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (args, res.exception)
        assert said in res.stderr, args
