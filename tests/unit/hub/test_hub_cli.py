"""`unified-ctl health [--watch]` (the hub's view when it runs, systemd's when it does not,
exit 0/1/2 for healthy/degraded/critical) and `unified-ctl monitoring setup --dry-run`."""
from __future__ import annotations

import json

from click.testing import CliRunner

from unified_ctl.cli import cli

from .conftest import quiet_pid, wait_for
from .test_hub_monitoring import DEBIAN_ALERTMANAGER, DEBIAN_PROMETHEUS


def run(hubenv, *args):
    env = {k: v for k, v in hubenv.env().items() if k in ("PATH", "HUB_FAKE_SYSTEMD",
                                                          "UNIFIED_ETC")}
    return CliRunner(mix_stderr=False).invoke(cli, ["-c", str(hubenv.catalog), *args], env=env)


def test_health_from_the_hub_when_it_runs(hubenv):
    for a in ("ObservabilityHub", "RequestCoordinator", "Worker"):
        hubenv.set_state(a, "active", MainPID=quiet_pid())
    hubenv.set_state("Sleeper", "inactive")
    p = hubenv.spawn()
    # every collector's first reading, not only the units': until each has one, the view
    # is stale and `health` says degraded (exit 1), as it should (CI saw that under load)
    wait_for(lambda: p.request("GET", "/health/summary")[1]["status"] == "healthy",
             timeout=30, what="hub view healthy")
    r = run(hubenv, "health", "--json")
    data = json.loads(r.stdout)
    assert data["source"] == "hub" and data["health_score"] == 100 and r.exit_code == 0, data
    r = run(hubenv, "health")
    assert r.exit_code == 0 and "health 100/100 healthy" in r.stdout and "source: hub" in r.stdout


def test_health_from_systemd_when_the_hub_is_not_running(hubenv):
    hubenv.set_state("RequestCoordinator", "active", MainPID=quiet_pid())
    hubenv.set_state("Worker", "failed", Result="signal")
    r = run(hubenv, "health", "--json")
    data = json.loads(r.stdout)
    assert data["source"] == "systemd" and "not running" in data["note"]
    assert set(data["essential"]["down"]) == {"ObservabilityHub", "Worker"}
    assert {a["name"] for a in data["alerts"]} == {"EssentialAgentDown"}
    assert all(a["state"] == "pending" for a in data["alerts"])   # no history without the hub
    assert r.exit_code == 1                                           # degraded
    r = run(hubenv, "health")
    assert "Worker" in r.stdout and "failed" in r.stdout and "source: systemd" in r.stdout
    assert "EssentialAgentDown" in r.stdout and "unified-ctl agent restart Worker" in r.stdout


def test_health_never_connects_to_a_stopped_hubs_agent_port(hubenv):
    import select
    import socket

    lsock = socket.create_server(("127.0.0.1", hubenv.ports["ObservabilityHub"]))
    hubenv.spawner.sockets.append(lsock)          # like systemd's socket: would activate it
    run(hubenv, "health", "--json")
    assert select.select([lsock], [], [], 0.3)[0] == []


def test_monitoring_setup_dry_run_says_what_it_would_change(hubenv, tmp_path, monkeypatch):
    from .conftest import ROOT

    monkeypatch.setenv("UNIFIED_PROMETHEUS_DIR", str(ROOT / "etc" / "prometheus"))
    (tmp_path / "p.yml").write_text(DEBIAN_PROMETHEUS)
    (tmp_path / "a.yml").write_text(DEBIAN_ALERTMANAGER)
    r = run(hubenv, "monitoring", "setup", "--dry-run", "--json",
            "--prometheus-config", str(tmp_path / "p.yml"),
            "--alertmanager-config", str(tmp_path / "a.yml"))
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["dry_run"] and res["changed"]
    assert "scrape job unified_agents added" in res["changes"][str(tmp_path / "p.yml")]
    assert (tmp_path / "p.yml").read_text() == DEBIAN_PROMETHEUS


def test_status_adds_the_hubs_view_when_the_hub_runs(hubenv):
    for a in ("ObservabilityHub", "RequestCoordinator", "Worker"):
        hubenv.set_state(a, "active", MainPID=quiet_pid())
    r = run(hubenv, "status", "--json", "--no-health")
    assert r.exit_code == 0 and json.loads(r.stdout)["hub"] is None     # systemd only
    hubenv.log("unified-agent@Worker.service", "Worker lost its database", priority=3)
    p = hubenv.spawn()
    wait_for(lambda: p.request("GET", "/health/summary")[1]["agents"][2]["last_error"],
             what="hub read the error")
    data = json.loads(run(hubenv, "status", "--json", "--no-health").stdout)
    assert data["hub"]["health_score"] == 100
    worker = [a for a in data["agents"] if a["agent"] == "Worker"][0]
    assert worker["last_error"]["message"] == "Worker lost its database"
    text = run(hubenv, "status", "--no-health").stdout
    assert "Worker lost its database" in text and "health score 100/100" in text


def test_health_watch_refreshes_until_interrupted(hubenv, monkeypatch, capsys):
    from unified_ctl import cli as cli_mod
    from unified_ctl.cli import monitoring as cli_monitoring

    for k, v in hubenv.env().items():
        if k in ("PATH", "HUB_FAKE_SYSTEMD", "UNIFIED_ETC"):
            monkeypatch.setenv(k, v)
    ticks = []

    def sleep(s):
        ticks.append(s)
        if len(ticks) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_monitoring, "_sleep", sleep)
    rc = cli_mod.main(["-c", str(hubenv.catalog), "health", "--watch", "-i", "2"])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0 and ticks == [2.0, 2.0], captured
    assert out.count("source: systemd") == 2 and "every 2 s, Ctrl-C stops" in out
