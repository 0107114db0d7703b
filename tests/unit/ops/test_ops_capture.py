"""`debug capture` (runbook: capture state before an emergency stop) and journal maintenance
(`logs vacuum|rotate`)."""
from __future__ import annotations

import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from click.testing import CliRunner

from unified_ctl import cli as cli_mod
from unified_core import paths
from unified_core.catalog import load_catalog

from .opsfakes import JournalFakeSystemd


@pytest.fixture()
def sd(ops_env, monkeypatch):
    fake = JournalFakeSystemd(load_catalog(paths.catalog_file(), env={}), answers={
        "err": "2025-01-01T00:00:00+0000 vm MemoryClient[7]: error: disk full\n",
        "--disk-usage": "Archived and active journals take up 24.0M in the file system.\n",
    })
    monkeypatch.setattr(cli_mod.Ctx, "sd", property(lambda self: fake))
    return fake


def ctl(*args):
    return CliRunner().invoke(cli_mod.cli, ["-c", paths.catalog_file(), *args], catch_exceptions=False)


def test_capture_with_the_hub_down_still_has_systemd_state_and_the_journal(sd, ops_env):
    sd.start([sd.catalog.profiles["core"].target])
    sd.stop(["unified-agent@ObservabilityHub.service"])
    out = ops_env / "cap.json"
    res = ctl("debug", "capture", "-O", str(out))
    assert res.exit_code == 0, res.output
    assert "hub: ObservabilityHub is not running" in res.output
    data = json.loads(out.read_text())
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "not running" in data["hub"]["skipped"]
    assert any(u["unit"] == "unified-agent@ServiceRegistry.service" for u in data["systemd"]["units"])
    assert data["journal"]["errors_this_boot"] == ["2025-01-01T00:00:00+0000 vm MemoryClient[7]: error: disk full"]
    assert {a["agent"] for a in data["agents"]} >= set(sd.catalog.profiles["core"].agents)
    assert data["profile"] == "core"
    # no connection was made to the hub's port: nothing may socket-activate it now
    assert not sd.is_active("unified-agent@ObservabilityHub.service")


class _Hub(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "alerts": [{"name": "EssentialAgentDown"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_capture_includes_the_hubs_debug_state_when_it_runs(sd, ops_env):
    server = HTTPServer(("127.0.0.1", 0), _Hub)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        main = ops_env / "etc" / "unified.yaml"
        main.write_text(main.read_text().replace("port: 9000", f"port: {port}", 1))
        sd.start(["unified-agent@ObservabilityHub.service"])
        res = ctl("debug", "capture", "-O", "-")
    finally:
        server.shutdown()
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["hub"] == {"path": "/debug/state", "alerts": [{"name": "EssentialAgentDown"}]}


def test_capture_works_with_a_broken_catalog(sd, ops_env):
    (ops_env / "etc" / "unified.yaml").write_text("version: 1\nagents: [\n")
    res = ctl("debug", "capture", "-O", "-")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["catalog"] is None and "units" in data["systemd"] and "skipped" in data["hub"]


def test_logs_vacuum_rotates_then_vacuums_by_age(sd):
    res = ctl("logs", "vacuum", "--keep", "7d")
    assert res.exit_code == 0, res.output
    assert ("journalctl", ("--rotate", "--vacuum-time=7d")) in sd.calls
    assert "24.0M" in res.output


def test_logs_vacuum_refuses_a_span_journalctl_would_misread(sd):
    res = CliRunner().invoke(cli_mod.cli, ["logs", "vacuum", "--keep", "7 days please"])
    assert res.exit_code == 2 and "not a time span" in res.output
    assert not [c for c in sd.calls if c[0] == "journalctl"]


def test_logs_with_agent_names_still_shows_their_logs(sd):
    res = ctl("logs", "ServiceRegistry", "-n", "5")
    assert res.exit_code == 0, res.output
    call = next(c for c in sd.calls if c[0] == "journal-exec")[1]
    assert "unified-agent@ServiceRegistry.service" in call and "-n" in call and "5" in call
    res = ctl("logs")
    assert res.exit_code == 0
