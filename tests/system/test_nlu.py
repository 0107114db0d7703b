"""NLUAgent under systemd, from the installed package: the shipped intent files (conffiles in
/etc/unified/intents.d) and the catalog's names, a sentence per built-in intent through
RequestCoordinator, and a broken intent file as a failed start with exit 2 that systemd does
not restart, the file and line named in the journal (docs/NLU.md).

NLUAgent is in no profile but `full`; a catalog drop-in adds a small profile (core plus
NLUAgent) for these tests, removed afterwards."""
import json

import pytest

DROPIN = "/etc/unified/conf.d/90-systest-nlu.yaml"
BROKEN = "/etc/unified/intents.d/50-systest-broken.yaml"
UNIT = "unified-agent@NLUAgent.service"
PROFILE_YAML = """\
profiles:
  systest_nlu:
    description: "system test: core plus NLUAgent"
    extends: core
    agents: [NLUAgent]
"""

# (sentence, intent, slot values): spoken forms, none of them an example in the intent files
SPOKEN = [
    ("what time is it please", "GetTime", {}),
    ("what day is tomorrow", "GetDate", {"date": None}),  # the value depends on the day
    ("set a timer for ten minutes", "SetTimer", {"duration": 600}),
    ("stop the timer", "CancelTimer", {}),
    ("remember that the spare key is under the mat", "Remember",
     {"fact": "the spare key is under the mat"}),
    ("where did i put the spare key", "Recall", {"topic": "the spare key"}),
    ("tell me about the eiffel tower", "KnowledgeQuery", {"query": "the eiffel tower"}),
    ("how do you say good morning in spanish", "Translate",
     {"text": "good morning", "language": "spanish"}),
    ("define serendipity", "Define", {"word": "serendipity"}),
    ("switch to the vision profile", "SwitchProfile", {"profile": "vision"}),
    ("is the stt service running", "SystemStatus", {"agent": "STTService"}),
    ("good morning", "Greeting", {}),
    ("thanks a lot", "Thanks", {}),
    ("goodbye", "Goodbye", {}),
]


def post(c, port: int, body: dict):
    c.write_file("/root/nlu-task.json", json.dumps(body))
    r = c.run(["curl", "-sS", "-m", "60", "-w", "\n%{http_code}", "-H",
               "Content-Type: application/json", "-d", "@/root/nlu-task.json",
               f"http://127.0.0.1:{port}/task"], timeout=90)
    out, _, code = r.stdout.rpartition("\n")
    return int(code), json.loads(out)


def switch(c, name):
    r = c.run(["unified-ctl", "profile", "switch", name, "--json"], check=False, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


@pytest.fixture
def nlu(container):
    container.write_file(DROPIN, PROFILE_YAML)
    try:
        container.run(["unified-ctl", "apply"])
        switch(container, "systest_nlu")
        container.systemctl("restart", "unified-agent@RequestCoordinator.service")
        container.wait_until("curl -sf http://127.0.0.1:8201/health", timeout=30)
        yield container
    finally:
        container.run(["rm", "-f", DROPIN, BROKEN, "/root/nlu-task.json"])
        container.run(["unified-ctl", "apply"])
        switch(container, "core")
        container.systemctl("stop", "unified-agent@NLUAgent.socket", UNIT, check=False)
        container.systemctl("reset-failed", UNIT, check=False)
        container.systemctl("restart", "unified-agent@RequestCoordinator.service")


def test_a_sentence_per_built_in_intent_through_the_coordinator(nlu):
    for text, intent, slots in SPOKEN:
        status, out = post(nlu, 7201, {"type": "nlu", "text": text})
        assert status == 200 and out["agent"] == "NLUAgent", out
        r = out["result"]
        assert r["intent"] == intent, (text, r)
        got = {k: v["value"] for k, v in r["slots"].items()}
        assert got.keys() == slots.keys(), (text, r)
        assert all(want is None or got[k] == want for k, want in slots.items()), (text, r)
    status, out = post(nlu, 7201, {"type": "nlu", "text": "order a pizza"})
    assert out["result"]["intent"] == "Fallback" and out["result"]["alternatives"], out
    health = json.loads(nlu.run(["curl", "-sf", "http://127.0.0.1:6709/health"]).stdout)
    assert health["implementation"] == "builtin" and health["engine"] == "unified-nlu"
    assert health["intents"] == 14 and health["catalog"] == "ok"
    assert health["files"] == ["/etc/unified/intents.d/10-builtin.yaml"]
    # shipped as a conffile: the operator's edits survive upgrades
    conffiles = nlu.run(["cat", "/var/lib/dpkg/info/unified-system.conffiles"]).stdout
    assert "/etc/unified/intents.d/10-builtin.yaml" in conffiles.split()


def test_bad_text_is_a_clear_4xx(nlu):
    status, out = post(nlu, 7201, {"type": "nlu", "text": ""})
    assert status == 400 and '"text" is missing or empty' in out["error"], out
    status, out = post(nlu, 5709, {"type": "nlu", "text": "x" * 1001})
    assert status == 413 and "NLU_MAX_CHARS" in out["error"], out


def test_a_broken_intent_file_fails_the_start_once_naming_file_and_line(nlu):
    try:
        nlu.write_file(BROKEN, "intents:\n  Broken:\n    slots: {when: weekday}\n"
                               "    examples: ['on {when}']\n")
        nlu.systemctl("restart", UNIT, check=False)
        nlu.wait_until(f"systemctl is-failed -q {UNIT}", timeout=60)
        assert nlu.unit_property(UNIT, "ExecMainStatus") == "2"
        assert nlu.unit_property(UNIT, "NRestarts") == "0"             # no restart loop
        nlu.wait_until(f"journalctl -u {UNIT} -o cat | grep -qF "
                       f"'{BROKEN}:3: intents.Broken.slots.when: unknown slot type "
                       "'\"'\"'weekday'\"'\"'; allowed: number, duration'", timeout=15)
    finally:
        nlu.run(["rm", "-f", BROKEN])
        nlu.systemctl("reset-failed", UNIT, check=False)
    status, out = post(nlu, 7201, {"type": "nlu", "text": "what time is it"})
    assert status == 200 and out["result"]["intent"] == "GetTime", out
