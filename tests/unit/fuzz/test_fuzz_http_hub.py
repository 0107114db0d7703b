"""ObservabilityHub's endpoints under random requests (its world: tests/unit/hub's HubEnv,
stand-in systemctl/journalctl). Afterwards the hub runs, its health is no worse, its summary
still lists the profile's agents, /metrics still exports the fleet view, and the journal
position it keeps in STATE_DIRECTORY still moves on new entries."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings

from ..hub.conftest import HubEnv, wait_for
from ..sdk.harness import Spawner, sdk_path  # noqa: F401  (fixture)
from .conftest import examples
from .fuzz_http import (RANK, Coverage, alive, check_answer, drain_notifications, health,
                        requests, sdk_routes, send)


@pytest.fixture(scope="module")
def hub(sdk_path, tmp_path_factory):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path_factory.mktemp("hubfuzz"))
    env = HubEnv(tmp_path_factory.mktemp("hubworld"), sp)
    for a in ("ObservabilityHub", "Worker", "RequestCoordinator"):
        env.set_state(a, "active", MainPID=os.getpid())
    env.set_state("Sleeper", "inactive")
    env.log("unified-agent@Worker.service", "before the fuzz", priority=3)
    p = env.spawn()
    drain_notifications(p)
    try:
        yield env, p
    finally:
        sp.close()


def test_random_requests_never_crash_the_hub(hub):
    from unified_agents.builtin.observability_hub import AGENT

    env, p = hub
    routes = sdk_routes(AGENT)
    ports = {"agent": p.port, "health": p.health_port}
    h0 = health(p)[1]["status"]
    cov = Coverage(routes)

    @settings(max_examples=examples(400))
    @given(req=requests(routes, ("summary", "alerts", "state")))
    def one(req):
        listener, method, target, data, hdrs, route = req
        status, ctype, payload = send(ports, listener, method, target, data, hdrs)
        check_answer(status, ctype, payload, method, f"hub {method} {target}")
        cov.record(route, status)
        alive(p)

    one()
    print(f"\nObservabilityHub: {cov.count} requests, statuses "
          f"{dict(sorted(cov.statuses.items()))}")
    assert not cov.missed(), f"routes never reached: {sorted(cov.missed())}"
    alive(p)
    assert RANK[health(p)[1]["status"]] <= RANK[h0]
    status, summary, _ = p.request("GET", "/health/summary")
    assert status == 200 and {"Worker", "Sleeper"} <= {a["name"] for a in summary["agents"]}
    status, metrics, _ = p.request("GET", "/metrics")
    assert status == 200 and b"unified_agent_state" in metrics
    env.log("unified-agent@Worker.service", "after the fuzz", priority=3)
    wait_for(lambda: any((a.get("last_error") or {}).get("message") == "after the fuzz"
                         for a in p.request("GET", "/health/summary")[1]["agents"]),
             what="the journal still followed after the fuzz")
