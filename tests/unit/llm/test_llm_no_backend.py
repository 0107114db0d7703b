"""No model to answer → 503 naming the catalog key to set, from every generative agent;
never a made-up answer. Three ways to have none: no model declared, a declared endpoint
where nothing listens, ModelManagerSuite itself not running."""
from __future__ import annotations

import socket

import pytest

from ..sdk.harness import Spawner
from .conftest import LLMFleet, task

ASKS = [("ChainOfThoughtAgent", {"type": "chain_of_thought", "question": "2+2?"}),
        ("GoTToTAgent", {"type": "tree_of_thought", "problem": "make 24 from 4 4 6 1"}),
        ("CognitiveModelAgent", {"type": "cognitive_model", "question": "why is the sky blue?"}),
        ("CodeGenerator", {"type": "code_generation", "task": "add two numbers"})]


def dead_endpoint() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(params=["none_declared", "endpoint_down", "no_model_manager"])
def nothing(request, sdk_path, tmp_path):  # noqa: F811
    sp = Spawner(sdk_path, tmp_path)
    endpoint = None if request.param == "none_declared" else dead_endpoint()
    f = LLMFleet(tmp_path, sp, endpoint=endpoint)
    if request.param != "no_model_manager":
        f.start("ModelManagerSuite")
    f.case = request.param
    yield f
    sp.close()
    f.close()


@pytest.mark.parametrize("agent,body", ASKS, ids=[a for a, _ in ASKS])
def test_no_backend_is_503_naming_the_catalog_key(nothing, agent, body):
    a = nothing.start(agent)
    status, out = task(a, body)
    assert status == 503, out
    key = "models.declared" if nothing.case == "none_declared" else \
        "models.declared.phi3_mini.endpoint"
    assert out["setting"] == key and f"set the catalog key {key}" in out["error"], out
    assert "answer" not in out and "result" not in out
    if nothing.case == "no_model_manager":
        assert "ModelManagerSuite at http://127.0.0.1:" in out["error"]
    assert a.request("GET", "/health", health=True)[1]["status"] == "healthy"
