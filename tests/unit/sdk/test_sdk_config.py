"""Config validation: bad values → one clear line naming the variable, exit 2."""
import pytest

from unified_agents import cli
from unified_agents.config import ConfigError, Env, load

from .harness import free_port, run_agent_cmd

BASE = {"UNIFIED_AGENT": "TestAgent", "UNIFIED_PORT": "7200", "UNIFIED_HEALTH_PORT": "8200"}


def test_defaults():
    c = load(dict(BASE))
    assert (c.name, c.port, c.health_port, c.bind) == ("TestAgent", 7200, 8200, "127.0.0.1")
    assert c.idle_timeout_s == 0 and c.run_kind == "reference" and c.task_types == ()
    assert c.log_level == "INFO" and c.max_threads == 8 and c.max_body_bytes == 1 << 20
    assert c.enable_metrics is True and c.required is False


def test_full_contract():
    c = load({**BASE, "UNIFIED_GROUP": "vision", "UNIFIED_REQUIRED": "true",
              "UNIFIED_BIND": "::1", "UNIFIED_IDLE_TIMEOUT_S": "300",
              "UNIFIED_RUN": "builtin:service_registry", "UNIFIED_TASK_TYPES": "vision, face,",
              "UNIFIED_DEPENDENCIES": "ServiceRegistry,ObservabilityHub",
              "UNIFIED_VRAM_MB": "2048", "LOG_LEVEL": "warning", "CPU_PERCENT": "80",
              "MEMORY_MB": "4096", "MAX_THREADS": "4", "VRAM_LIMIT_MB": "4000",
              "ENABLE_METRICS": "false", "ENABLE_TRACING": "yes"})
    assert c.required and c.bind == "::1" and c.idle_timeout_s == 300
    assert (c.run_kind, c.run_value) == ("builtin", "service_registry")
    assert c.task_types == ("vision", "face")
    assert c.dependencies == ("ServiceRegistry", "ObservabilityHub")
    assert c.log_level == "WARNING" and c.max_threads == 4 and not c.enable_metrics
    assert c.enable_tracing and c.vram_mb == 2048


def test_debug_mode_forces_debug_level():
    assert load({**BASE, "DEBUG_MODE": "true", "LOG_LEVEL": "ERROR"}).log_level == "DEBUG"


def test_port_optional_when_socket_passed():
    env = dict(BASE)
    del env["UNIFIED_PORT"]
    assert load(env, port_from_fd=True).port is None
    with pytest.raises(ConfigError, match="UNIFIED_PORT is not set"):
        load(env)


@pytest.mark.parametrize("var,value,needle", [
    ("UNIFIED_PORT", "abc", "UNIFIED_PORT='abc' is invalid; allowed: an integer 1-65535"),
    ("UNIFIED_PORT", "70000", "UNIFIED_PORT='70000' is invalid"),
    ("UNIFIED_HEALTH_PORT", "0", "UNIFIED_HEALTH_PORT='0' is invalid"),
    ("UNIFIED_HEALTH_PORT", "7200", "equals UNIFIED_PORT"),
    ("UNIFIED_IDLE_TIMEOUT_S", "-5", "UNIFIED_IDLE_TIMEOUT_S='-5' is invalid; allowed: a number >= 0"),
    ("UNIFIED_IDLE_TIMEOUT_S", "nan", "UNIFIED_IDLE_TIMEOUT_S='nan'"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is invalid; allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("DEBUG_MODE", "maybe", "DEBUG_MODE='maybe' is invalid; allowed: true/false"),
    ("UNIFIED_BIND", "localhost", "UNIFIED_BIND='localhost' is invalid; allowed: an IPv4 or IPv6"),
    ("UNIFIED_RUN", "magic:x", "UNIFIED_RUN='magic:x' is invalid"),
    ("UNIFIED_RUN", "entry_point:mod", "UNIFIED_RUN='entry_point:mod' is invalid"),
    ("UNIFIED_RUN", "command:/bin/true", "command agents are started by their own ExecStart"),
    ("UNIFIED_AGENT", "bad-name", "UNIFIED_AGENT='bad-name' is invalid"),
    ("MAX_THREADS", "0", "MAX_THREADS='0' is invalid; allowed: an integer 1-1024"),
    ("UNIFIED_MAX_BODY_BYTES", "1.5", "UNIFIED_MAX_BODY_BYTES='1.5'"),
])
def test_bad_values_name_variable_value_and_allowed(var, value, needle):
    with pytest.raises(ConfigError) as ei:
        load({**BASE, var: value})
    msg = str(ei.value)
    assert needle in msg
    assert "\n" not in msg


def test_env_reader_for_authors():
    e = Env({"MY_MB": " 64 ", "EMPTY": "", "F": "0.5"})
    assert e.integer("MY_MB", 1, lo=0) == 64
    assert e.integer("EMPTY", 7) == 7 and e.integer("UNSET", 7) == 7
    assert e.number("F") == 0.5
    with pytest.raises(ConfigError, match="MY_MB='64' is invalid; allowed: an integer <= 10"):
        e.integer("MY_MB", hi=10)



def test_a_choice_is_matched_without_case_and_answered_as_the_agent_spells_it():
    e = Env({"NLLB_DEVICE": "CPU", "SYNC": "normal", "D": "Wiener", "BAD": "gpu"})
    assert e.choice("NLLB_DEVICE", ("cpu", "cuda", "auto"), "cpu") == "cpu"
    assert e.choice("SYNC", ("OFF", "NORMAL", "FULL"), "FULL") == "NORMAL"
    assert e.choice("D", ("wiener", "none"), "none") == "wiener"
    assert e.choice("UNSET", ("wiener", "none"), "none") == "none"
    with pytest.raises(ConfigError, match="BAD='gpu' is invalid; allowed: cpu, cuda"):
        e.choice("BAD", ("cpu", "cuda"), "cpu")

def test_parse_args():
    assert cli.parse_args(["run", "X", "--port", "1", "--health-port=2"]) == (
        "run", "X", {"UNIFIED_PORT": "1", "UNIFIED_HEALTH_PORT": "2"})
    assert cli.parse_args([])[0] == "help"
    with pytest.raises(cli.UsageError):
        cli.parse_args(["run", "X", "--bogus", "1"])
    with pytest.raises(cli.UsageError):
        cli.parse_args(["run", "X", "--port"])


def test_catalog_fills_environment_by_hand(monkeypatch):
    """Outside systemd, no ports in env: the catalog (unified_core.catalog) is read."""
    import sys
    import types

    class Run:
        kind, value = "builtin", "service_registry"

    class Res:
        vram_mb = 512

    class A:
        name, group, port, health_port, required = "STTService", "speech_io", 5800, 6800, True
        depends_on, task_types, idle_timeout_s = ("ModelManagerSuite",), ("stt",), 300
        run, resources = Run, Res

    class Cat:
        agents = {"STTService": A}

    seen = []
    fake = types.ModuleType("unified_core.catalog")
    fake.load_catalog = lambda path: seen.append(path) or Cat
    monkeypatch.setitem(sys.modules, "unified_core.catalog", fake)
    env = cli.build_environment("STTService", {}, {"UNIFIED_CATALOG": "/x.yaml"}, False)
    assert seen == ["/x.yaml"]
    assert env["UNIFIED_PORT"] == "5800" and env["UNIFIED_HEALTH_PORT"] == "6800"
    assert env["UNIFIED_RUN"] == "builtin:service_registry"
    assert env["UNIFIED_TASK_TYPES"] == "stt" and env["UNIFIED_VRAM_MB"] == "512"
    assert "UNIFIED_IDLE_TIMEOUT_S" not in env  # by hand: no idle exit unless asked
    # flags win over the catalog (which is still read for the rest)
    env = cli.build_environment("STTService", {"UNIFIED_PORT": "15800",
                                               "UNIFIED_HEALTH_PORT": "16800"}, {}, False)
    assert env["UNIFIED_PORT"] == "15800" and env["UNIFIED_HEALTH_PORT"] == "16800"
    assert env["UNIFIED_RUN"] == "builtin:service_registry"
    with pytest.raises(ConfigError, match="'Nope' is not in the catalog"):
        cli.build_environment("Nope", {}, {}, False)
    # an agent the catalog does not know runs when the flags give both ports
    notes = []
    env = cli.build_environment("Nope", {"UNIFIED_PORT": "1", "UNIFIED_HEALTH_PORT": "2"}, {},
                                False, notes)
    assert "UNIFIED_RUN" not in env and "not using the catalog" in notes[0]
    # under systemd (socket passed) the catalog is never read
    seen.clear()
    cli.build_environment("STTService", {}, {"UNIFIED_HEALTH_PORT": "1"}, True)
    assert seen == []


def test_name_mismatch():
    with pytest.raises(ConfigError, match="UNIFIED_AGENT='A' but the command line names 'B'"):
        cli.build_environment("B", {}, {"UNIFIED_AGENT": "A", "UNIFIED_HEALTH_PORT": "1"}, True)


# ------------------------------------------------------------------ real processes
@pytest.mark.parametrize("env,args,needle", [
    ({"UNIFIED_PORT": "seventy"}, [], "UNIFIED_PORT='seventy' is invalid; allowed: an integer 1-65535"),
    ({"LOG_LEVEL": "verbose"}, [], "LOG_LEVEL='verbose' is invalid"),
    ({"UNIFIED_IDLE_TIMEOUT_S": "-1"}, [], "UNIFIED_IDLE_TIMEOUT_S='-1' is invalid"),
    ({"UNIFIED_RUN": "builtin:no_such_agent"}, [], "no module unified_agents.builtin.no_such_agent"),
    ({"UNIFIED_RUN": "entry_point:no_such_mod:X"}, [], "no module no_such_mod"),
    ({"UNIFIED_RUN": "entry_point:sdk_sample_agents:Nope"}, [], "has no attribute 'Nope'"),
    ({"UNIFIED_SIM_MEMORY_MB": "lots"}, [], "UNIFIED_SIM_MEMORY_MB='lots' is invalid"),
    ({}, ["--port", "x1"], "UNIFIED_PORT='x1' is invalid"),
])
def test_config_errors_exit_2_with_one_line(sdk_path, env, args, needle):
    full = {"UNIFIED_AGENT": "TestAgent", "UNIFIED_PORT": str(free_port()),
            "UNIFIED_HEALTH_PORT": str(free_port()), **env}
    r = run_agent_cmd(sdk_path, ["run", "TestAgent", *args], full)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("run,needle", [
    ("entry_point:sdk_sample_agents:BadStart", "on_start() failed: RuntimeError: database missing"),
    ("entry_point:sdk_sample_agents:Conflicting", "route POST /task is declared twice"),
    ("entry_point:sdk_sample_agents:not_an_agent", "not an instance of unified_agents.Agent"),
])
def test_agent_errors_exit_1_with_one_line(sdk_path, run, needle):
    env = {"UNIFIED_AGENT": "TestAgent", "UNIFIED_PORT": str(free_port()),
           "UNIFIED_HEALTH_PORT": str(free_port()), "UNIFIED_RUN": run}
    r = run_agent_cmd(sdk_path, ["run", "TestAgent"], env)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_port_in_use_exits_1(sdk_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        hp = s.getsockname()[1]
        r = run_agent_cmd(sdk_path, ["run", "TestAgent"],
                          {"UNIFIED_PORT": str(free_port()), "UNIFIED_HEALTH_PORT": str(hp)})
        assert r.returncode == 1
        assert f"cannot listen on 127.0.0.1:{hp} (UNIFIED_HEALTH_PORT)" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        s.close()


def test_version_and_usage(sdk_path):
    r = run_agent_cmd(sdk_path, ["--version"], {})
    assert r.returncode == 0 and r.stdout.startswith("unified-agent ")
    r = run_agent_cmd(sdk_path, ["frobnicate"], {})
    assert r.returncode == 2 and "unknown command" in r.stderr
