"""ModelManagerSuite and VRAMOptimizerAgent on real systemd, from the installed package
(issue: models on a VRAM budget, hybrid LLM routing). No GPU in the container: the budget
is VRAM_LIMIT_MB, and a local OpenAI-compatible test server stands in for llama.cpp.

Every test leaves the core profile selected and running, no test server, no live limit.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

MB = 1 << 20
TEST_SERVER = Path(__file__).resolve().parents[1] / "unit" / "models" / "openai_test_server.py"


def curl_json(c, *args, timeout=30):
    r = c.run(["curl", "-sS", "-m", "20", *args], timeout=timeout)
    return json.loads(r.stdout)


def switch(c, name, env=None):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=180,
              env=env)
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["ok"], f"switch {name} failed: {r.stdout}\n{r.stderr}"
    return data


@pytest.fixture
def core(container):
    switch(container, "core")
    container.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8211/health"], timeout=30)
    container.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:6572/health"], timeout=30)
    yield container
    container.run(["curl", "-sS", "-m", "10", "-X", "POST", "http://127.0.0.1:7211/vram/limit",
                   "-d", '{"mb": null}'], check=False)
    container.run(["curl", "-sS", "-m", "10", "-X", "POST", "http://127.0.0.1:7211/routing/reset"],
                  check=False)
    switch(container, "core")


@pytest.fixture
def fake_llm(core):
    """An OpenAI-compatible server on 127.0.0.1:8080, phi3_mini's endpoint in the catalog."""
    core.write_file("/root/openai_test_server.py", TEST_SERVER.read_text())
    core.run(["systemd-run", "--unit=systest-fake-llm", "--property=Type=exec",
              "/usr/bin/python3", "/root/openai_test_server.py", "8080", "phi-3-mini-q4"])
    core.wait_until(["curl", "-sf", "-m", "2", "http://127.0.0.1:8080/v1/models"], timeout=20)
    yield core
    core.systemctl("stop", "systest-fake-llm.service", check=False)
    core.systemctl("reset-failed", "systest-fake-llm.service", check=False)
    core.run(["rm", "-f", "/root/openai_test_server.py"])


def test_runbook_commands_work_literally(core):
    """RUNBOOK.md: the four commands exactly as written (no body, no Content-Type)."""
    stats = json.loads(core.run("curl http://localhost:7211/routing/stats").stdout)
    assert stats["threshold"] == 0.7 and stats["rules"]["code_generation"]["backend"] == "cloud"
    assert json.loads(core.run("curl -X POST http://localhost:7211/routing/reset").stdout)["reset"]
    cleared = json.loads(core.run("curl -X POST http://localhost:7211/cache/clear").stdout)
    assert cleared["cleared"] is True
    cleanup = json.loads(core.run("curl -X POST http://localhost:5572/vram/cleanup").stdout)
    assert cleanup["freed_bytes"] >= 0 and "models" in cleanup and "agents" in cleanup
    # the active GPU agents of core (catalog vram_mb > 0) were asked; reference agents
    # have no cache hook yet and say so
    assert set(cleanup["agents"]) >= {"STTService", "TTSService"}
    assert {r["status"] for r in cleanup["agents"].values()} <= {"unsupported", "released"}


def test_no_gpu_is_said_in_health_and_budget_is_vram_limit(core):
    h = curl_json(core, "http://127.0.0.1:8211/health")
    assert h["status"] == "healthy", h
    assert h["gpu"]["available"] is False and h["gpu"]["reason"].startswith("no GPU")
    assert "VRAM_LIMIT_MB=4000 (no GPU" in h["checks"]["vram_budget"]["source"]
    vo = curl_json(core, "http://127.0.0.1:6572/health")
    assert vo["status"] == "healthy" and vo["gpu"]["available"] is False, vo


def test_routing_decisions_reach_prometheus_metrics(core):
    core.run("curl -X POST http://localhost:7211/routing/reset")
    for task in ("code_generation", "greeting", "emotion_detection"):
        d = curl_json(core, "-X", "POST", "http://127.0.0.1:7211/route", "-d",
                      json.dumps({"task_type": task}))
        assert d["task_type"] == task and d["backend"] in ("local", "cloud", "local_small")
    # no network in the container: the cloud is unreachable, code_generation fails over
    core.wait_until(["sh", "-c", "curl -s http://127.0.0.1:7211/routing/stats | "
                     "grep -q '\"reachable\":false'"], timeout=30)
    d = curl_json(core, "-X", "POST", "http://127.0.0.1:7211/route", "-d",
                  '{"task_type": "code_generation"}')
    assert (d["backend"], d["reason"], d["wanted"]) == ("local", "cloud_unreachable", "cloud")
    stats = curl_json(core, "http://localhost:7211/routing/stats")
    assert stats["decisions"] == 4 and stats["by_task_type"]["greeting"] == {"local": 1}
    metrics = core.run("curl -s http://localhost:8211/metrics").stdout
    assert "# TYPE unified_llm_routing_decisions_total counter" in metrics
    assert 'unified_llm_routing_decisions_total{backend="local",reason="cloud_unreachable"}' in metrics


def test_load_generate_and_vram_cleanup_report_bytes_freed(fake_llm):
    c = fake_llm
    m = curl_json(c, "-X", "POST", "http://127.0.0.1:7211/models/phi3_mini/load")
    assert m["state"] == "loaded" and m["info"]["server_models"] == ["phi-3-mini-q4"], m
    out = curl_json(c, "-X", "POST", "http://127.0.0.1:7211/generate", "-d",
                    '{"task_type": "greeting", "prompt": "hello", "temperature": 0}')
    assert (out["text"], out["backend"], out["model"]) == ("echo: hello", "local", "phi3_mini")
    vram = curl_json(c, "http://127.0.0.1:5572/vram")
    c.wait_until(["sh", "-c", "curl -s http://127.0.0.1:6572/metrics | grep -q "
                  f"'^unified_vram_used_bytes {2600 * MB}$'"], timeout=20)
    assert vram["budget_bytes"] == 4000 * MB
    cleanup = json.loads(c.run("curl -X POST http://localhost:5572/vram/cleanup").stdout)
    assert cleanup["models"]["unloaded"] == ["phi3_mini"]
    assert cleanup["freed_bytes"] >= 2600 * MB and cleanup["method"].startswith("estimate")
    assert curl_json(c, "http://127.0.0.1:7211/models/phi3_mini")["state"] == "unloaded"
    cleared = json.loads(c.run("curl -X POST http://localhost:7211/cache/clear").stdout)
    assert cleared["entries"] == 1


def test_live_vram_limit_refuses_big_models_and_degrades_routing(fake_llm):
    c = fake_llm
    out = curl_json(c, "-X", "POST", "http://127.0.0.1:5572/vram/limit", "-d", '{"mb": 2000}')
    assert out["budget"]["budget_mb"] == 2000
    r = c.run(["curl", "-sS", "-w", "\\n%{http_code}", "-X", "POST",
               "http://127.0.0.1:7211/models/phi3_mini/load"])
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "409" and "needs 2600 MB" in json.loads(body)["error"]
    d = curl_json(c, "-X", "POST", "http://127.0.0.1:7211/route", "-d",
                  '{"task_type": "simple_chat"}')
    assert (d["backend"], d["reason"]) == ("local_small", "vram_exhausted")
    # the live limit is on disk: it survives a kill -9 of the manager
    pid = c.unit_property("unified-agent@ModelManagerSuite.service", "MainPID")
    assert int(pid) > 0
    c.run(["kill", "-9", pid])
    unit = "unified-agent@ModelManagerSuite.service"
    c.wait_until(["sh", "-c", f'p=$(systemctl show -p MainPID --value {unit}); '
                  f'[ "$p" != 0 ] && [ "$p" != {pid} ]'], timeout=30)   # restarted by systemd
    c.wait_until(["sh", "-c", "curl -sf -m 2 http://127.0.0.1:7211/vram | "
                  "grep -q '\"budget_mb\":2000'"], timeout=30)


def test_vram_limit_mb_given_to_a_profile_switch_reaches_the_budget(core):
    """Runbook "export VRAM_LIMIT_MB=2000": in our world the variable goes to a launch
    (profile switch), which running agents take at their next start (unified-ctl says so);
    only ModelManagerSuite owns the limit, the optimizer reads it from there."""
    try:
        switch(core, "core", env={"VRAM_LIMIT_MB": "2000"})
        core.run(["unified-ctl", "agent", "restart", "ModelManagerSuite"], timeout=60)
        core.wait_until(["sh", "-c", "curl -sf -m 2 http://127.0.0.1:7211/vram | "
                         "grep -q '\"budget_mb\":2000'"], timeout=30)
        assert curl_json(core, "http://127.0.0.1:7211/vram")["limit_source"] == "VRAM_LIMIT_MB"
        core.wait_until(["sh", "-c", "curl -s http://127.0.0.1:6572/metrics | grep -q "
                         f"'^unified_vram_budget_bytes {2000 * MB}$'"], timeout=30)
    finally:
        # a switch's variables stay in force until cleared (RUNBOOK; `overrides clear`
        # restarts the running agents, ModelManagerSuite among them)
        core.run(["unified-ctl", "overrides", "clear"], timeout=120)
    core.wait_until(["sh", "-c", "curl -sf -m 2 http://127.0.0.1:7211/vram | "
                     "grep -q '\"budget_mb\":4000'"], timeout=30)
