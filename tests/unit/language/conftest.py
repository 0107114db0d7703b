"""Fixtures for the language agents' tests: real agent processes (the SDK tests' spawner)
running the real engines: Apertium with apertium-eng-spa, langdetect, NLTK's ELIZA and VADER.
A missing engine fails the test naming its package (tests/host_tools.py); the project
installs them on the host (scripts/dev/host-tools)."""
from __future__ import annotations

import os

import pytest

from tests.host_tools import require_module, require_tool
from ..sdk.harness import builtin_env as agent_env  # noqa: F401  (the tests import it from here)
from ..sdk.harness import ROOT, sdk_path, spawn, spawn_module  # noqa: F401  (fixtures)


@pytest.fixture
def _need_apertium():
    require_tool("apertium")
    if not os.path.exists("/usr/share/apertium/modes/eng-spa.mode"):
        pytest.fail("the Apertium English-Spanish pair is missing: install it with "
                    "scripts/dev/install_deps.sh (Debian package apertium-eng-spa)",
                    pytrace=False)


@pytest.fixture
def _need_langdetect():
    require_module("langdetect")


@pytest.fixture
def _need_nltk():
    require_module("nltk")


needs_apertium = pytest.mark.usefixtures("_need_apertium")
needs_langdetect = pytest.mark.usefixtures("_need_langdetect")
needs_nltk = pytest.mark.usefixtures("_need_nltk")


def vader_lexicon() -> str:
    """The VADER lexicon of PyPI's vaderSentiment (a test-only package: no Debian package
    ships one; docs/LANGUAGE.md)."""
    require_module("vaderSentiment")
    import vaderSentiment

    return os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt")


# notify=False: module-wide agents; nobody reads a stand-in notify socket meanwhile (see
# tests/unit/speech/conftest.py)
@pytest.fixture(scope="module")
def translation(spawn_module):  # noqa: F811
    return spawn_module("TranslationService", agent_env(
        spawn_module, "translation_service", TRANSLATION_MAX_CHARS=2000), notify=False)


@pytest.fixture(scope="module")
def streaming(spawn_module):  # noqa: F811
    return spawn_module("FixedStreamingTranslation", agent_env(
        spawn_module, "fixed_streaming_translation", STREAM_TRANSLATION_MAX_PENDING=60,
        STREAM_TRANSLATION_MAX_SESSIONS=2), notify=False)


@pytest.fixture(scope="module")
def nllb(spawn_module):  # noqa: F811
    return spawn_module("NLLBAdapter", agent_env(spawn_module, "nllb_adapter"), notify=False)


@pytest.fixture(scope="module")
def analyzer(spawn_module):  # noqa: F811
    return spawn_module("StreamingLanguageAnalyzer", agent_env(
        spawn_module, "streaming_language_analyzer", SENTIMENT_LEXICON=vader_lexicon()),
        notify=False)


@pytest.fixture(scope="module")
def chitchat(spawn_module):  # noqa: F811
    return spawn_module("ChitchatAgent", agent_env(
        spawn_module, "chitchat_agent", CHITCHAT_MAX_CHARS=300), notify=False)


def task(agent, body: dict):
    status, out, _ = agent.request("POST", "/task", body, timeout=60)
    return status, out


def ok(agent, body: dict) -> dict:
    status, out = task(agent, body)
    assert status == 200, out
    return out["result"]


def refused(agent, body: dict, status: int, words: str) -> None:
    got, out = task(agent, body)
    assert got == status and words in out["error"], out
    s, health, _ = agent.request("GET", "/health", health=True)
    assert s == 200 and health["status"] == "healthy", health


def start_fails(spawn, module: str, **env) -> tuple[int, list[str]]:  # noqa: F811
    a = spawn("Language", agent_env(spawn, module, **env), wait_ready=False)
    return a.wait_exit(30), a.stderr().strip().splitlines()
