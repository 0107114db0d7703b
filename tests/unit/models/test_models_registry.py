"""Model registry: admission by VRAM budget, LRU eviction, idle unload, cleanup, live limit."""
from __future__ import annotations

import json
import threading
import time

import pytest

from unified_agents.llm_backends import Backend, BackendError
from unified_agents.model_registry import (LimitStore, LoadFailed, ModelRegistry, Refused,
                                           UnknownModel)
from unified_core.model import Model, Models


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class RecordingBackend(Backend):
    """An in-process backend that records what the registry does with it."""

    kind = "test"

    def __init__(self, model, log, fail=None, slow=0.0):
        self.model, self.log, self.fail, self.slow = model, log, fail, slow

    def check(self, timeout):
        time.sleep(self.slow)
        self.log.append(("check", self.model.name))
        if self.fail:
            raise BackendError(self.fail)
        return {"ok": True}

    def generate(self, request, timeout=None):
        return {"text": "x"}

    def unload(self):
        self.log.append(("unload", self.model.name))


def make(limit=4000, gpu_mb=None, idle=300.0, fail=(), slow=0.0, models=None):
    log: list = []
    clock = Clock()
    declared = models or (
        Model("big", "inprocess", 2600, role="local"),
        Model("mid", "inprocess", 1200),
        Model("small", "inprocess", 700, role="local_small"),
        Model("cloud", "openai", 0, endpoint="https://x/v1", role="cloud"),
    )
    reg = ModelRegistry(
        Models(vram_budget_percentage=80, idle_timeout_s=idle, declared=declared),
        limit_mb=limit, gpu_total_mb=(lambda: gpu_mb),
        backend_for=lambda m: RecordingBackend(m, log, fail=("down" if m.name in fail else None),
                                               slow=slow),
        clock=clock)
    return reg, log, clock


def states(reg):
    return {n: e.state for n, e in reg.entries.items()}


def test_no_gpu_budget_is_vram_limit_only_and_says_so():
    reg, _, _ = make(limit=4000, gpu_mb=None)
    b = reg.budget()
    assert b["budget_mb"] == 4000 and b["gpu_total_mb"] is None
    assert "no GPU" in b["source"] and "VRAM_LIMIT_MB=4000" in b["source"]


def test_with_a_gpu_the_budget_is_the_percentage_capped_by_the_limit():
    reg, _, _ = make(limit=None, gpu_mb=10000)
    assert reg.budget()["budget_mb"] == 8000
    reg, _, _ = make(limit=4000, gpu_mb=10000)
    b = reg.budget()
    assert b["budget_mb"] == 4000 and "capped by VRAM_LIMIT_MB=4000" in b["source"]
    reg, _, _ = make(limit=90000, gpu_mb=10000)
    assert reg.budget()["budget_mb"] == 8000


def test_admission_books_the_estimate_and_checks_the_backend():
    reg, log, _ = make()
    out = reg.load("big")
    assert out["state"] == "loaded" and out["reserved_mb"] == 2600
    assert log == [("check", "big")]
    assert reg.budget()["free_mb"] == 1400
    assert reg.load("big")["state"] == "loaded" and log == [("check", "big")]  # no reload


def test_loading_past_the_budget_evicts_idle_models_lru_first():
    reg, log, clock = make(limit=4000)
    reg.load("mid")            # 1200, used first → least recently used
    clock.t += 10
    reg.load("small")          # 700
    clock.t += 10
    reg.load("big")            # 2600: 1200+700+2600 = 4500 > 4000 → evict mid only
    assert states(reg)["mid"] == "unloaded"
    assert states(reg)["small"] == "loaded" and states(reg)["big"] == "loaded"
    assert ("unload", "mid") in log
    assert reg.unloads["budget"] == 1
    assert reg.budget()["reserved_mb"] == 3300


def test_using_a_model_refreshes_its_lru_position():
    reg, _, clock = make(limit=4000)
    reg.load("mid")
    clock.t += 10
    reg.load("small")
    clock.t += 10
    with reg.use("mid"):       # mid is now the most recently used
        pass
    clock.t += 10
    reg.load("big")
    assert states(reg)["small"] == "unloaded" and states(reg)["mid"] == "loaded"


def test_models_in_use_are_never_evicted_and_the_refusal_says_why():
    reg, _, _ = make(limit=4000)
    with reg.use("mid"), reg.use("small"):
        with pytest.raises(Refused) as ei:
            reg.load("big")
    msg = str(ei.value)
    assert "needs 2600 MB" in msg and "2100 MB of the 4000 MB budget are free" in msg
    assert "busy: mid, small" in msg
    assert ei.value.fields["busy"] == ["mid", "small"]
    assert states(reg)["big"] == "unloaded" and reg.refusals == 1


def test_a_model_bigger_than_the_whole_budget_is_refused_without_evicting():
    reg, log, _ = make(limit=2000)
    reg.load("small")
    with pytest.raises(Refused, match="more than the whole budget of 2000 MB"):
        reg.load("big")
    assert states(reg)["small"] == "loaded" and ("unload", "small") not in log


def test_cloud_models_take_no_vram():
    reg, _, _ = make(limit=0)
    assert reg.load("cloud")["reserved_mb"] == 0
    assert reg.budget()["reserved_mb"] == 0


def test_idle_models_unload_after_the_idle_timeout():
    reg, log, clock = make(idle=300)
    reg.load("big")
    reg.load("cloud")
    with reg.use("small"):
        clock.t += 299
        assert reg.idle_sweep() == []
        clock.t += 2
        assert sorted(reg.idle_sweep()) == ["big", "cloud"]   # small is in use
    assert states(reg)["small"] == "loaded"
    clock.t += 301
    assert reg.idle_sweep() == ["small"]
    assert reg.unloads["idle"] == 3 and reg.budget()["reserved_mb"] == 0


def test_cleanup_unloads_everything_not_serving_and_reports_what_it_freed():
    reg, _, _ = make()
    reg.load("mid")
    reg.load("small")
    with reg.use("mid"):
        out = reg.cleanup()
    assert out == {"unloaded": ["small"], "freed_mb": 700, "kept_busy": ["mid"]}


def test_lowering_the_limit_evicts_idle_models_until_they_fit():
    reg, _, clock = make(limit=4000)
    reg.load("mid")
    clock.t += 1
    reg.load("big")
    out = reg.set_limit(3000)
    assert out["evicted"] == ["mid"] and out["freed_mb"] == 1200 and out["over_budget_mb"] == 0
    with reg.use("big"):
        out = reg.set_limit(1000)                 # busy: cannot go under, says by how much
    assert out["evicted"] == [] and out["over_budget_mb"] == 1600
    assert reg.budget()["over_budget"] is True
    with pytest.raises(ValueError):
        reg.set_limit(-1)


def test_a_failed_load_frees_its_booking_and_is_held_from_routing_for_a_while():
    reg, _, clock = make(fail=("big",))
    with pytest.raises(LoadFailed, match="big: down"):
        reg.load("big")
    e = reg.entries["big"]
    assert e.state == "failed" and e.reserved_mb == 0 and e.error == "down"
    assert reg.usable("big") is False
    clock.t += 31
    assert reg.usable("big") is True           # tried again after the hold


def test_usable_counts_what_eviction_could_free():
    reg, _, _ = make(limit=3000)
    reg.load("mid")
    reg.load("small")                           # 1900 booked, 1100 free
    assert reg.usable("big") is True            # 1100 + 1900 evictable ≥ 2600
    with reg.use("mid"), reg.use("small"):
        assert reg.usable("big") is False
    assert reg.usable(None) is False


def test_unload_refuses_a_busy_model_unless_forced():
    reg, log, _ = make()
    reg.load("mid")
    with reg.use("mid"):
        with pytest.raises(Refused, match="serving 1 request"):
            reg.unload("mid")
        assert reg.unload("mid", force=True)["freed_mb"] == 1200
    assert reg.unload("mid") == {"model": "mid", "unloaded": False, "state": "unloaded",
                                 "freed_mb": 0}
    with pytest.raises(UnknownModel, match="declared: big, mid, small, cloud"):
        reg.unload("gpt5")


def test_concurrent_loads_of_one_model_check_the_backend_once():
    reg, log, _ = make(slow=0.2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(reg.load("big")["state"]))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == ["loaded"] * 4
    assert log.count(("check", "big")) == 1
    assert reg.budget()["reserved_mb"] == 2600


def test_limit_store_survives_restart_and_yields_to_a_newer_configuration(tmp_path):
    path = str(tmp_path / "vram_limit.json")
    s = LimitStore(path, env_mb=4000)
    assert s.effective() == (4000, "VRAM_LIMIT_MB")
    assert "live override" in s.set(2000)
    assert json.loads(open(path).read())["env_mb"] == 4000
    again = LimitStore(path, env_mb=4000)                # a restart, same configuration
    mb, source = again.effective()
    assert mb == 2000 and "live override" in source
    newer = LimitStore(path, env_mb=3000)                # VRAM_LIMIT_MB=3000 profile switch ...
    assert newer.effective() == (3000, "VRAM_LIMIT_MB")
    assert not (tmp_path / "vram_limit.json").exists()  # the stale override is gone
    s.set(1000)
    assert s.set(None) == "VRAM_LIMIT_MB" and s.effective() == (4000, "VRAM_LIMIT_MB")
    (tmp_path / "vram_limit.json").write_text("{corrupt")
    assert LimitStore(path, 4000).effective() == (4000, "VRAM_LIMIT_MB")
