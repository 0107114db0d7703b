"""RequestCoordinator passes on whether its caller may change state (agents/guard.py): a task
it forwards for an untrusted caller reaches the agent marked `X-Unified-Origin: remote`, so
the agent's mutating task ops refuse it although the coordinator connects from loopback."""
import pytest

from ..sdk.harness import HERE as SDK_TESTS

COORD = "builtin:request_coordinator"
VAULT = "entry_point:sdk_guard_agents:Vault"   # task data "reset" needs a trusted caller
TOKEN = "coord-guard-token-0123456789abcdef"


@pytest.fixture
def coord(fleet, tmp_path):
    cred = tmp_path / "cred"
    cred.mkdir()
    (cred / "unified-token").write_text(TOKEN)
    pypath = fleet.env()["PYTHONPATH"] + f":{SDK_TESTS}"
    fleet.start("Echo", VAULT, PYTHONPATH=pypath)
    fleet.start("Coordinator", COORD, CREDENTIALS_DIRECTORY=cred)
    return fleet


def reset(fleet, headers=None):
    return fleet.procs["Coordinator"].request(
        "POST", "/task", {"type": "echo", "data": "reset"},
        headers={"Content-Type": "application/json", **(headers or {})})


def test_a_local_callers_task_may_mutate(coord):
    status, body, headers = reset(coord)
    assert status == 200 and headers["X-Routed-To"] == "Echo", body


def test_a_task_for_an_untrusted_caller_is_refused_by_the_agent(coord):
    status, body, headers = reset(coord, {"X-Unified-Origin": "remote"})
    assert status == 403 and headers["X-Routed-To"] == "Echo"
    assert "not local" in body["error"]


def test_the_token_makes_the_caller_trusted_end_to_end(coord):
    status, body, _ = reset(coord, {"X-Unified-Origin": "remote",
                                    "Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    status, body, _ = reset(coord, {"X-Unified-Origin": "remote",
                                    "Authorization": "Bearer wrong-token-0123456789"})
    assert status == 403
