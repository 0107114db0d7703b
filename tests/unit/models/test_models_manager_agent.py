"""ModelManagerSuite as a real agent process, its models on local OpenAI-compatible servers."""
from __future__ import annotations

import json
import re
import socket
import time

from tests.promlint import promtool_findings

from ..sdk.harness import Spawner
from .conftest import ModelsFleet

RUN = "builtin:model_manager"


def curl_post(port: int, path: str) -> tuple[int, dict]:
    """Exactly what `curl -X POST http://localhost:PORT/PATH` sends: no body, no
    Content-Length, no Content-Type."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: curl/7.88.1\r\n"
                  "Accept: */*\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([h.split(b":")[1] for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += s.recv(65536)
    return int(head.split()[1]), json.loads(body)


def wait_for(fn, timeout=10.0, every=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


def test_runbook_endpoints_answer_a_bare_curl_post(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN)
    status, stats = mm.request("GET", "/routing/stats")[:2]
    assert status == 200 and stats["decisions"] == 0 and stats["threshold"] == 0.7
    assert stats["rules"]["code_generation"] == {"backend": "cloud", "complexity": 0.9}
    assert curl_post(mm.port, "/routing/reset") == (200, {"reset": True, "decisions_cleared": 0})
    assert curl_post(mm.port, "/cache/clear") == (200, {"cleared": True, "entries": 0, "bytes": 0})


def test_no_gpu_budget_comes_from_vram_limit_and_health_says_so(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN)
    status, h, _ = mm.request("GET", "/health", health=True)
    assert status == 200 and h["status"] == "healthy"
    assert h["gpu"]["available"] is False and h["gpu"]["reason"].startswith("no GPU")
    assert "VRAM_LIMIT_MB=4000 (no GPU" in h["checks"]["vram_budget"]["source"]
    models = mm.request("GET", "/models")[1]
    assert models["budget"]["budget_mb"] == 4000
    assert [m["name"] for m in models["models"]] == ["phi3_mini", "tinyllama", "cloud_llm"]


def test_load_unload_and_admission_over_http(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN, VRAM_LIMIT_MB=3000)
    status, m, _ = mm.request("POST", "/models/phi3_mini/load")
    assert status == 200 and m["state"] == "loaded" and m["reserved_mb"] == 2600
    assert m["info"]["server_models"] == ["phi-3-mini"]
    # tinyllama (700) does not fit next to phi3 (2600) in 3000: the idle phi3 is evicted
    status, m, _ = mm.request("POST", "/models/tinyllama/load")
    assert status == 200 and mm.request("GET", "/models/phi3_mini")[1]["state"] == "unloaded"
    status, m, _ = mm.request("POST", "/models/tinyllama/unload")
    assert (status, m["freed_mb"]) == (200, 700)
    status, err, _ = mm.request("POST", "/models/gpt5/load")
    assert status == 404 and "declared: phi3_mini, tinyllama, cloud_llm" in err["error"]
    models_fleet.small.fail_status = 503               # the local server is down
    status, err, _ = mm.request("POST", "/models/tinyllama/load")
    assert status == 502 and "HTTP 503" in err["error"]
    assert mm.request("GET", "/models/tinyllama")[1]["state"] == "failed"


def test_a_load_over_the_live_limit_is_refused_with_the_numbers(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN)
    status, out, _ = mm.request("POST", "/vram/limit", {"mb": 1000})
    assert status == 200 and out["budget"]["budget_mb"] == 1000
    status, err, _ = mm.request("POST", "/models/phi3_mini/load")
    assert status == 409
    assert "needs 2600 MB" in err["error"] and "budget of 1000 MB" in err["error"]
    for bad in ({"mb": -1}, {"mb": "2000"}, {}):
        status, err, _ = mm.request("POST", "/vram/limit", bad)
        assert status == 400 and "mb" in err["error"]


def test_routing_rules_and_cloud_failover(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN, MODEL_MANAGER_CLOUD_PROBE_S=1)
    route = lambda body: mm.request("POST", "/route", body)[1]  # noqa: E731
    d = route({"task_type": "code_generation"})
    assert (d["backend"], d["reason"], d["model"]) == ("cloud", "rule", "cloud_llm")
    d = route({"task_type": "greeting"})
    assert (d["backend"], d["reason"], d["model"]) == ("local", "rule", "phi3_mini")
    d = route({"prompt": "x" * 20000})            # no rule: a big prompt is complex
    assert (d["backend"], d["reason"]) == ("cloud", "complexity_above_threshold")
    models_fleet.cloud.stop()                      # the cloud goes away; the probe notices
    assert wait_for(lambda: route({"task_type": "training"})["reason"] == "cloud_unreachable")
    d = route({"task_type": "training"})
    assert (d["backend"], d["wanted"], d["live"]["cloud_ok"]) == ("local", "cloud", False)
    stats = mm.request("GET", "/routing/stats")[1]
    assert stats["by_task_type"]["code_generation"] == {"cloud": 1}
    assert stats["cloud"]["reachable"] is False
    metrics = mm.request("GET", "/metrics", health=True)[1].decode()
    # (the wait above routed `training` to the cloud until the probe noticed: ≥ 1)
    assert re.search(r'^unified_llm_routing_decisions_total\{backend="cloud",reason="rule"\} [1-9]',
                     metrics, re.M)
    assert 'unified_llm_routing_decisions_total{backend="local",reason="cloud_unreachable"}' in metrics
    for bad, words in (({"complexity": 2}, "from 0 to 1"), ({"backend": "gpu"}, "local, cloud"),
                       ({"task_type": 7}, "task_type")):
        status, err, _ = mm.request("POST", "/route", bad)
        assert status == 400 and words in err["error"]
    status, err, _ = mm.request("POST", "/route", b"{not json")
    assert status == 400 and "bad JSON" in err["error"]


def test_vram_exhausted_degrades_to_the_small_model_end_to_end(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN)
    mm.request("POST", "/vram/limit", {"mb": 1000})     # phi3 (2600) can no longer load
    d = mm.request("POST", "/route", {"task_type": "simple_chat"})[1]
    assert (d["backend"], d["reason"], d["model"]) == ("local_small", "vram_exhausted",
                                                       "tinyllama")
    status, out, _ = mm.request("POST", "/generate", {"task_type": "simple_chat",
                                                      "prompt": "hello"})
    assert status == 200 and out["text"] == "echo: hello"
    assert (out["backend"], out["model"], out["reason"]) == ("local_small", "tinyllama",
                                                             "vram_exhausted")


def test_generate_fails_over_from_a_failing_cloud_and_the_breaker_opens(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN, MODEL_MANAGER_CLOUD_PROBE_S=600)
    ok = mm.request("POST", "/generate", {"task_type": "code_generation", "prompt": "sort"})[1]
    assert (ok["backend"], ok["text"]) == ("cloud", "echo: sort")
    models_fleet.cloud.fail_status = 503               # cloud answers errors now
    for _ in range(3):
        status, out, _ = mm.request("POST", "/generate", {"task_type": "code_generation",
                                                          "prompt": "sort"})
        assert status == 200, out
        assert (out["backend"], out["reason"], out["wanted"]) == ("local", "cloud_unreachable",
                                                                  "cloud")
    d = mm.request("POST", "/route", {"task_type": "code_generation"})[1]
    assert (d["backend"], d["reason"]) == ("local", "breaker_open")   # 3 failures: open
    metrics = mm.request("GET", "/metrics", health=True)[1].decode()
    assert 'unified_llm_generate_requests_total{backend="cloud",result="error"} 3' in metrics
    assert "unified_llm_cloud_breaker_state 2" in metrics
    assert promtool_findings(metrics) == "", metrics


def test_deterministic_generations_are_cached_until_cache_clear(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN)
    body = {"task_type": "greeting", "prompt": "hi", "temperature": 0}
    first = mm.request("POST", "/generate", body)[1]
    again = mm.request("POST", "/generate", body)[1]
    assert (first["cached"], again["cached"], again["text"]) == (False, True, "echo: hi")
    assert len([r for r in models_fleet.local.requests if r[0] == "POST"]) == 1
    status, out = curl_post(mm.port, "/cache/clear")
    assert status == 200 and out["entries"] == 1 and out["bytes"] > 0
    assert mm.request("POST", "/generate", body)[1]["cached"] is False
    warm = mm.request("POST", "/generate", dict(body, temperature=0.7))[1]
    assert warm["cached"] is False                       # sampling: never cached


def test_generate_with_no_usable_backend_is_503_with_the_story(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN, VRAM_LIMIT_MB=100,
                            MODEL_MANAGER_CLOUD_PROBE_S=1)
    models_fleet.cloud.stop()
    assert wait_for(lambda: mm.request("GET", "/routing/stats")[1]["cloud"]["reachable"] is False)
    status, err, _ = mm.request("POST", "/generate", {"task_type": "greeting", "prompt": "x"})
    assert status == 503 and "no backend can serve" in err["error"]
    assert err["decision"]["reason"] == "no_backend"
    status, err, _ = mm.request("POST", "/generate", {"task_type": "greeting"})
    assert status == 400 and "prompt" in err["error"]


def test_model_tasks_through_post_task(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN,
                            UNIFIED_TASK_TYPES="model_management,llm_generate")
    out = mm.request("POST", "/task", {"type": "model_management",
                                       "data": {"action": "load", "model": "tinyllama"}})[1]
    assert out["result"]["state"] == "loaded"
    out = mm.request("POST", "/task", {"type": "llm_generate",
                                       "data": {"task_type": "emotion_detection",
                                                "prompt": "I am happy"}})[1]
    assert out["result"]["text"] == "echo: I am happy" and out["result"]["backend"] == "local"
    status, err, _ = mm.request("POST", "/task", {"type": "model_management",
                                                  "data": {"action": "explode"}})
    assert status == 400 and "allowed: list, load, unload, route" in err["error"]


def test_live_limit_survives_kill_9(models_fleet):
    mm = models_fleet.start("ModelManagerSuite", RUN)
    mm.request("POST", "/vram/limit", {"mb": 1500})
    mm.proc.kill()
    mm.proc.wait(5)
    models_fleet.spawner.sockets.remove(mm.lsock)
    mm.lsock.close()
    mm2 = models_fleet.start("ModelManagerSuite", RUN)
    v = mm2.request("GET", "/vram")[1]
    assert v["budget_mb"] == 1500 and v["limit_source"].startswith("live override")
    mm2.request("POST", "/vram/limit", {"mb": None})
    assert mm2.request("GET", "/vram")[1]["budget_mb"] == 4000


def test_idle_models_are_unloaded_by_the_agent(sdk_path, tmp_path):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path)
    f = ModelsFleet(tmp_path, sp, idle="1s")
    try:
        mm = f.start("ModelManagerSuite", RUN)
        assert mm.request("POST", "/models/tinyllama/load")[1]["state"] == "loaded"
        assert wait_for(lambda: mm.request("GET", "/models/tinyllama")[1]["state"] == "unloaded",
                        timeout=5)
        metrics = mm.request("GET", "/metrics", health=True)[1].decode()
        assert 'unified_model_unloads_total{reason="idle"} 1' in metrics
    finally:
        sp.close()
        f.close()


def test_cloud_api_key_from_a_systemd_credential(models_fleet, tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cloud_llm_api_key").write_text("sk-from-credential\n")
    models_fleet.cloud.api_key = "sk-from-credential"          # the cloud insists on it
    mm = models_fleet.start("ModelManagerSuite", RUN, CREDENTIALS_DIRECTORY=creds)
    out = mm.request("POST", "/generate", {"task_type": "code_generation", "prompt": "x"})[1]
    assert (out["backend"], out["text"]) == ("cloud", "echo: x")
