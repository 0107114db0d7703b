"""Fixtures for NLUAgent's tests: the real agent process (the SDK tests' spawner) trained from
the shipped intent files and the repository's catalog, and the engine in process."""
from __future__ import annotations

import datetime as dt
import os
import sys

import pytest

from ..sdk.harness import ROOT, sdk_path, spawn, spawn_module  # noqa: F401  (fixtures)

INTENTS = str(ROOT / "etc/unified/intents.d")
CATALOG = str(ROOT / "etc/unified/unified.yaml")
NOW = dt.datetime(2026, 12, 3, 10, 0)  # a Thursday


def nlu_env(spawner, **env) -> dict:
    e = {"UNIFIED_RUN": "builtin:nlu_agent", "UNIFIED_CATALOG": CATALOG,
         "NLU_INTENTS_DIR": INTENTS, "PYTHONPATH": f"{spawner.sdk_path}{os.pathsep}{ROOT}"}
    e.update({k: str(v) for k, v in env.items()})
    return e


@pytest.fixture(scope="module")
def nlu(spawn_module):  # noqa: F811
    return spawn_module("NLUAgent", nlu_env(spawn_module, NLU_MAX_CHARS=500), notify=False)


@pytest.fixture(scope="session")
def model(sdk_path):  # noqa: F811
    """The engine in this process, trained as the agent trains it."""
    if str(sdk_path) not in sys.path:
        sys.path.insert(0, str(sdk_path))
    from unified_agents.builtin.nlu import load

    return load(INTENTS, CATALOG)


def parse(agent, text: str, **extra):
    status, out, _ = agent.request("POST", "/task", {"type": "nlu", "text": text,
                                                     "now": NOW.isoformat(), **extra})
    return status, out
