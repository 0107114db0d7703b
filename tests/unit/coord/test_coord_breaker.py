"""Circuit breaker (agents/breaker.py): the state machine RequestCoordinator runs per agent."""
import threading

import pytest

from unified_agents.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerOpen


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def make(threshold=3, reset=10.0, **kw):
    clock = Clock()
    return Breaker("Agent", threshold, reset, clock=clock, wall=lambda: 1_700_000_000.5,
                   **kw), clock


def fail(br, n=1, reason="boom"):
    for _ in range(n):
        br.record(br.admit(), False, reason)


def test_opens_after_exactly_the_configured_consecutive_failures():
    br, _ = make(threshold=3)
    fail(br, 2)
    assert br.state == CLOSED
    fail(br, 1)
    assert br.state == OPEN
    snap = br.snapshot()
    assert snap["failures"] == 3 and snap["opens_total"] == 1
    assert snap["opened_at"] == "2023-11-14T22:13:20.500Z"
    assert snap["last_failure"] == "boom"


def test_a_success_resets_the_consecutive_count():
    br, _ = make(threshold=3)
    fail(br, 2)
    br.record(br.admit(), True)
    fail(br, 2)
    assert br.state == CLOSED and br.snapshot()["failures"] == 2
    assert br.snapshot()["failures_total"] == 4


def test_open_refuses_with_the_time_left_until_the_probe():
    br, clock = make(threshold=1, reset=10)
    fail(br)
    clock.t += 4
    with pytest.raises(BreakerOpen) as e:
        br.admit()
    assert e.value.retry_after == pytest.approx(6)
    assert "open after 1 consecutive failures" in str(e.value)
    assert br.snapshot()["rejected_total"] == 1


def test_after_the_reset_timeout_exactly_one_probe_goes_through():
    br, clock = make(threshold=1, reset=10)
    fail(br)
    clock.t += 10
    assert br.state == HALF_OPEN
    probe = br.admit()
    with pytest.raises(BreakerOpen) as e:   # everyone else waits for the probe's outcome
        br.admit()
    assert e.value.retry_after == 0
    assert br.snapshot()["probe_in_flight"] is True
    br.record(probe, True)
    assert br.state == CLOSED
    assert br.snapshot()["opened_at"] is None and br.snapshot()["failures"] == 0
    br.record(br.admit(), True)  # closed again: calls flow


def test_a_failed_probe_opens_again_for_a_full_reset_timeout():
    br, clock = make(threshold=2, reset=10)
    fail(br, 2)
    clock.t += 11
    fail(br)   # the probe
    assert br.state == OPEN and br.snapshot()["opens_total"] == 2
    clock.t += 9.9
    with pytest.raises(BreakerOpen):
        br.admit()
    clock.t += 0.1
    assert br.admit()[1] is True  # the next probe


def test_results_of_calls_admitted_before_opening_move_no_state():
    br, clock = make(threshold=2, reset=10)
    old = br.admit()              # a slow call, still in flight
    fail(br, 2)                   # the breaker opens meanwhile
    br.record(old, True)          # the straggler succeeds: no evidence of recovery
    assert br.state == OPEN
    assert br.snapshot()["successes_total"] == 1


def test_transitions_are_reported_to_the_hook():
    seen = []
    br, clock = make(threshold=1, reset=1, on_change=lambda b, o, n: seen.append((o, n)))
    fail(br)
    clock.t += 1
    br.record(br.admit(), True)
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_a_broken_hook_never_breaks_a_call():
    def hook(b, o, n):
        raise RuntimeError("log sink gone")

    br, _ = make(threshold=1, on_change=hook)
    fail(br)
    assert br.state == OPEN


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="failure_threshold=0"):
        Breaker("A", 0, 1)
    with pytest.raises(ValueError, match="reset_timeout=0"):
        Breaker("A", 1, 0)


def test_concurrent_failures_are_all_counted():
    br = Breaker("A", failure_threshold=10_000, reset_timeout=1)
    def worker():
        for _ in range(1000):
            br.record(br.admit(), False, "x")
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = br.snapshot()
    assert snap["failures_total"] == 8000 and snap["failures"] == 8000 and snap["state"] == CLOSED
