"""VRAMOptimizerAgent as a real process next to a real ModelManagerSuite (no GPU here)."""
from __future__ import annotations

from tests.promlint import promtool_findings

from .test_models_manager_agent import curl_post, wait_for

MM, VO = "builtin:model_manager", "builtin:vram_optimizer"
MB = 1 << 20


def start_both(fleet, **env):
    mm = fleet.start("ModelManagerSuite", MM, **env)
    vo = fleet.start("VRAMOptimizerAgent", VO, VRAM_OPTIMIZER_INTERVAL_S=0.2, **env)
    assert wait_for(lambda: vo.request("GET", "/vram")[1]["model_manager"]["reachable"])
    return mm, vo


def test_cleanup_unloads_idle_models_asks_active_gpu_agents_and_reports_bytes(models_fleet):
    f = models_fleet
    mm, vo = start_both(f)
    f.start("Speech", "entry_point:models_test_agents:CacheHolder")   # opts in
    f.start("Vision", "reference")                                    # no hook: 404
    f.start("Chat", "entry_point:models_test_agents:CacheHolder")     # holds no VRAM
    f.registry.active = {"ModelManagerSuite", "VRAMOptimizerAgent", "Speech", "Vision", "Chat"}
    mm.request("POST", "/models/phi3_mini/load")
    mm.request("POST", "/models/tinyllama/load")
    status, out = curl_post(vo.port, "/vram/cleanup")            # the runbook's bare POST
    assert status == 200, out
    assert sorted(out["models"]["unloaded"]) == ["phi3_mini", "tinyllama"]
    assert out["models"]["freed_bytes"] == 3300 * MB
    assert out["agents"] == {"Speech": {"status": "released", "freed_bytes": 300 * MB},
                             "Vision": {"status": "unsupported", "freed_bytes": 0}}
    assert out["freed_bytes"] == 3600 * MB and out["method"].startswith("estimate (no GPU")
    assert out["vram"]["used_bytes"] == 0
    assert any("state=active" in q for q in f.registry.queries)   # only active agents asked
    assert mm.request("GET", "/models")[1]["budget"]["reserved_mb"] == 0
    metrics = vo.request("GET", "/metrics", health=True)[1].decode()
    assert "unified_vram_cleanups_total 1" in metrics
    assert f"unified_vram_freed_bytes_total {3600 * MB}" in metrics
    again = curl_post(vo.port, "/vram/cleanup")[1]                 # nothing left to free
    assert again["freed_bytes"] == 0 and again["agents"]["Speech"]["status"] == "released"


def test_without_a_registry_cleanup_still_frees_models_and_says_who_was_not_asked(models_fleet):
    f = models_fleet
    mm, vo = start_both(f, SERVICE_REGISTRY_URL="http://127.0.0.1:9")
    mm.request("POST", "/models/tinyllama/load")
    out = curl_post(vo.port, "/vram/cleanup")[1]
    assert out["models"]["unloaded"] == ["tinyllama"] and out["agents"] == {}
    assert "ServiceRegistry unreachable" in out["agents_note"]


def test_metrics_for_the_vram_exhaustion_alert_follow_the_live_limit(models_fleet):
    f = models_fleet
    mm, vo = start_both(f, VRAM_OPTIMIZER_ENFORCE_IDLE_S=0)
    f.local.delay_s = 1.5                                          # a long generation ...
    import threading
    t = threading.Thread(target=lambda: mm.request("POST", "/generate", {
        "task_type": "greeting", "prompt": "hi"}, timeout=10))
    t.start()
    assert wait_for(lambda: mm.request("GET", "/models/phi3_mini")[1]["in_use"] == 1)
    assert wait_for(lambda: f"unified_vram_used_bytes {2600 * MB}" in
                    vo.request("GET", "/metrics", health=True)[1].decode())
    m = vo.request("GET", "/metrics", health=True)[1].decode()
    assert f"unified_vram_budget_bytes {4000 * MB}" in m and "unified_vram_exhausted 0" in m
    assert "unified_vram_gpu_available 0" in m
    # ... keeps phi3 (2600 MB) busy while the live limit drops to 2000 MB: it cannot be
    # evicted now, so VRAM is exhausted and the optimizer's health degrades
    status, out, _ = vo.request("POST", "/vram/limit", {"mb": 2000})
    assert status == 200 and out["budget"]["budget_mb"] == 2000 and out["evicted"] == []
    assert wait_for(lambda: "unified_vram_exhausted 1" in
                    vo.request("GET", "/metrics", health=True)[1].decode())
    h = vo.request("GET", "/health", health=True)[1]
    assert h["status"] == "degraded" and h["checks"]["vram"]["status"] == "degraded"
    assert f"unified_vram_limit_bytes {2000 * MB}" in vo.request(
        "GET", "/metrics", health=True)[1].decode()
    # enforcement: once the generation is over, the over-budget model is unloaded
    t.join(10)
    assert wait_for(lambda: mm.request("GET", "/models/phi3_mini")[1]["state"] == "unloaded")
    m = vo.request("GET", "/metrics", health=True)[1].decode()
    assert "unified_vram_enforcements_total 0" not in m
    assert promtool_findings(m) == "", m
    assert wait_for(lambda: "unified_vram_exhausted 0" in
                    vo.request("GET", "/metrics", health=True)[1].decode())
    assert mm.request("GET", "/vram")[1]["limit_source"].startswith("live override")


def test_limit_and_bad_input(models_fleet):
    f = models_fleet
    mm, vo = start_both(f)
    for bad in ({}, {"mb": -5}, {"mb": True}):
        status, err, _ = vo.request("POST", "/vram/limit", bad)
        assert status == 400 and "mb" in err["error"]
    status, err, _ = vo.request("POST", "/vram/limit", b"[1,2]")
    assert status == 400 and "JSON object" in err["error"]
    mm.proc.kill()
    mm.proc.wait(5)
    f.spawner.sockets.remove(mm.lsock)
    mm.lsock.close()
    status, err, _ = vo.request("POST", "/vram/limit", {"mb": 100})
    assert status == 502 and "ModelManagerSuite owns the VRAM limit" in err["error"]
    v = vo.request("GET", "/vram")[1]
    assert v["model_manager"]["reachable"] is False and "unreachable" in v["source"]
    assert wait_for(lambda: vo.request("GET", "/health", health=True)[1]["checks"]
                    ["model_manager"]["status"] == "degraded")
    assert vo.request("GET", "/health", health=True)[0] == 200
