"""The catalog as the rest of unified-system sees it: the real 77-agent catalog, profiles,
drop-in merging and the runbook's environment overrides."""
from __future__ import annotations

import dataclasses
import pathlib

import pytest

from unified_core import catalog as catalog_mod
from unified_core.catalog import (DEFAULT_PATH, ENV_OVERRIDES, catalog_path, dependency_order, find_cycle,
                                 load_catalog)
from unified_core.errors import CatalogInvalid

HERE = pathlib.Path(__file__).resolve().parent
MINI_PATH = HERE / "catalogs" / "mini.yaml"
MINI = MINI_PATH.read_text()
REAL_PATH = HERE.parent.parent / "etc" / "unified" / "unified.yaml"

CORE_GROUPS = ("infrastructure_registry", "coordination_resource", "memory_foundation", "speech_io")
RUNBOOK_VARS = ("PROFILE", "LOG_LEVEL", "DEBUG_MODE", "CPU_PERCENT", "MEMORY_MB", "MAX_THREADS", "VRAM_LIMIT_MB",
                "ENABLE_METRICS", "ENABLE_TRACING", "ENABLE_DATA_OPTIMIZER", "CONFIG")


@pytest.fixture(scope="module")
def real():
    return load_catalog(str(REAL_PATH), env={})


def mini(tmp_path: pathlib.Path, dropins: dict[str, str] | None = None, text: str = MINI) -> pathlib.Path:
    path = tmp_path / "unified.yaml"
    path.write_text(text)
    if dropins:
        (tmp_path / "conf.d").mkdir()
        for name, body in dropins.items():
            (tmp_path / "conf.d" / name).write_text(body)
    return path


# -- the real catalog --------------------------------------------------------------------------

def test_real_catalog_has_77_agents_24_essential_53_optional(real):
    assert (len(real.agents), len(real.essential), len(real.optional)) == (77, 24, 53)
    assert real.path == str(REAL_PATH) and real.sources == (str(REAL_PATH),)


def test_real_catalog_has_the_five_profiles_with_their_sizes(real):
    assert {n: len(p.agents) for n, p in real.profiles.items()} == {
        "core": 16, "vision": 21, "learning": 34, "tutoring": 26, "full": 77}
    assert real.selected_profile == real.settings.profile == "core"


def test_core_is_exactly_the_agents_of_its_four_groups(real):
    core = real.profile("core")
    expected = {a for g in CORE_GROUPS for a in real.groups[g]}
    assert set(core.agents) == set(core.declared) == expected
    assert len(core.agents) == 16 and core.via_dependency == () and core.autoload == ()


def test_vision_is_core_plus_two_autoloaded_agents_and_three_dependencies(real):
    vision, core = real.profile("vision"), real.profile("core")
    assert set(vision.declared) == set(core.agents) | {"FaceRecognitionAgent", "VisionProcessingAgent"}
    assert vision.via_dependency == ("ObservabilityHub_PC2", "MemoryOrchestratorService", "CacheManager")
    assert vision.autoload == ("FaceRecognitionAgent", "VisionProcessingAgent")


def test_learning_is_core_plus_pc2_learning_and_reasoning_with_two_autoloaded(real):
    learning = real.profile("learning")
    groups = CORE_GROUPS + ("pc2_core", "learning_services", "reasoning_services")
    assert set(learning.declared) == {a for g in groups for a in real.groups[g]}
    assert learning.autoload == ("LearningOrchestrationService", "LearningManager")


def test_tutoring_is_core_plus_pc2_core_and_tutoring_services(real):
    tutoring = real.profile("tutoring")
    groups = CORE_GROUPS + ("pc2_core", "tutoring_services")
    assert set(tutoring.declared) == {a for g in groups for a in real.groups[g]}


def test_full_is_every_agent_in_catalog_order(real):
    assert real.profile("full").agents == tuple(real.agents)


@pytest.mark.parametrize("name", ["core", "vision", "learning", "tutoring", "full"])
def test_every_profile_is_closed_under_dependencies(real, name):
    members = set(real.profile(name).agents)
    missing = {(a, d) for a in members for d in real.agents[a].depends_on if d not in members}
    assert not missing


@pytest.mark.parametrize("name, cpu, mem", [("core", 50, 2048), ("vision", 70, 4096), ("learning", 80, 6144),
                                            ("tutoring", 70, 4096), ("full", 80, 8192)])
def test_profile_resource_overrides(real, name, cpu, mem):
    res = real.profile(name).resources
    assert (res.cpu_percent, res.memory_mb) == (cpu, mem)


def test_autoloaded_agents_are_optional_members_of_their_profile(real):
    for p in real.profiles.values():
        for a in p.autoload:
            assert a in p.agents and not real.agents[a].required


def test_real_catalog_ports_are_all_distinct_and_clear_of_other_listeners(real):
    ports = [p for a in real.agents.values() for p in (a.port, a.health_port)]
    assert len(ports) == len(set(ports)) == 154
    assert dict(real.settings.other_listeners)["prometheus"] == 9090
    assert not set(ports) & {p for _, p in real.settings.other_listeners}


def test_real_catalog_keeps_agents_off_node_exporters_port_and_has_no_warnings(real):
    # Debian's prometheus Recommends prometheus-node-exporter (9100): the original catalog's
    # port of ObservabilityHub_PC2, which then could not bind
    pc2 = real.agents["ObservabilityHub_PC2"]
    assert (pc2.port, pc2.health_port) == (9010, 9011)
    assert dict(real.settings.other_listeners)["node_exporter"] == 9100
    assert real.warnings == ()


def test_an_agent_on_a_well_known_exporter_port_is_a_warning_naming_agent_field_and_software(tmp_path):
    text = MINI.replace("port: 7201\n", "port: 9100\n").replace("health_port: 8202", "health_port: 9187")
    cat = load_catalog(str(mini(tmp_path, text=text)), env={})   # valid: a warning is no error
    got = [(w.where, w.line, w.message) for w in cat.warnings]
    assert [g[:1] for g in got] == [("agents.Hub.port",), ("agents.Memory.health_port",)]
    lines = text.splitlines()
    assert lines[got[0][1] - 1].strip() == "port: 9100"
    assert got[0][2] == ("Hub is on port 9100, where the node exporter (prometheus-node-exporter, recommended "
                         "by Debian's prometheus) listens by default: once that is installed one of them "
                         "cannot bind; move the agent to a free port")
    assert "the PostgreSQL exporter (prometheus-postgres-exporter)" in got[1][2]


def test_a_port_listed_in_other_listeners_is_an_error_not_a_warning(tmp_path):
    text = MINI.replace("port: 7201\n", "port: 9090\n")
    with pytest.raises(CatalogInvalid) as e:
        load_catalog(str(mini(tmp_path, text=text)), env={})
    assert "port 9090 is already used by other listener 'prometheus'" in str(e.value)


def test_essential_agents_depend_only_on_essential_agents(real):
    for a in real.essential:
        assert all(real.agents[d].required for d in a.depends_on), a.name


def test_optional_agents_scale_to_zero_and_essential_ones_never_do(real):
    assert all(a.idle_timeout_s == 0 for a in real.essential)
    assert all(a.idle_timeout_s == real.lazy_loader.idle_timeout_s == 300 for a in real.optional)


def test_dependency_order_starts_every_agent_after_its_dependencies(real):
    order = dependency_order(real.profile("full").agents, real.agents)
    seen = set()
    for name in order:
        assert set(real.agents[name].depends_on) <= seen, name
        seen.add(name)
    assert len(order) == 77


def test_routing_and_models_sections(real):
    assert real.routing.complexity_threshold == 0.7
    assert ("code_generation",) in [r.tasks for r in real.routing.rules]
    assert {m.name for m in real.models.declared} >= {"phi3_mini", "tinyllama", "cloud_llm"}


def test_catalog_is_immutable(real):
    with pytest.raises(dataclasses.FrozenInstanceError):
        real.selected_profile = "full"
    with pytest.raises(TypeError):
        real.agents["Intruder"] = real.agents["ServiceRegistry"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        real.agents["ServiceRegistry"].port = 1


def test_agent_and_profile_lookups_name_what_is_allowed(real):
    assert real.agent("ServiceRegistry").service == "unified-agent@ServiceRegistry.service"
    assert real.profile("core").target == "unified-profile-core.target"
    with pytest.raises(Exception, match=r"unknown agent 'ServiceRegistri' \(did you mean ServiceRegistry"):
        real.agent("ServiceRegistri")
    with pytest.raises(Exception, match="unknown profile 'nope'; allowed: core, vision, learning, tutoring, full"):
        real.profile("nope")


# -- the small catalog: every kind of run spec -------------------------------------------------

def test_mini_catalog_run_specs_and_environment(tmp_path):
    cat = load_catalog(str(mini(tmp_path)), env={})
    assert cat.agents["Registry"].run.spec == "reference"
    assert cat.agents["Vision"].run.spec == "entry_point:vision_pkg.main:run"
    helper = cat.agents["Helper"].run
    assert (helper.kind, helper.argv, helper.binds_own_port, helper.backend_port) == (
        "command", ("/usr/bin/helper", "--port", "{backend_port}"), True, 17301)
    assert cat.agents["Tutor"].run.simulate.load_ms == 100
    assert cat.agents["Vision"].environment == (("VISION_MODEL", "small"),)
    assert cat.agents["Vision"].idle_timeout_s == 600
    assert cat.profile("vision").via_dependency == ("Helper",)


# -- drop-ins ------------------------------------------------------------------------------------

def test_dropins_merge_in_name_order_and_the_later_one_wins(tmp_path):
    path = mini(tmp_path, {
        "20-later.yaml": "settings:\n  limits:\n    cpu_percent: 70\n",
        "10-first.yaml": "settings:\n  limits:\n    cpu_percent: 60\n    memory_mb: 1000\n",
    })
    cat = load_catalog(str(path), env={})
    assert cat.sources == (str(path), str(tmp_path / "conf.d" / "10-first.yaml"),
                           str(tmp_path / "conf.d" / "20-later.yaml"))
    assert cat.settings.limits.cpu_percent == 70  # 20- over 10-
    assert cat.settings.limits.memory_mb == 1000  # 10- kept: mappings merge key by key
    assert cat.settings.limits.max_threads == 8  # main file kept


def test_dropin_lists_replace_the_main_files_lists(tmp_path):
    path = mini(tmp_path, {"10-x.yaml": "profiles:\n  core:\n    groups: [infra]\nagents:\n  Vision:\n"
                                        "    depends_on: [Memory]\n"})
    cat = load_catalog(str(path), env={})
    assert cat.profile("core").agents == ("Registry", "Hub")
    assert cat.profile("core").resources.memory_mb == 2048  # rest of the profile mapping kept
    assert cat.agents["Vision"].depends_on == ("Memory",)
    assert cat.agents["Vision"].port == 7300


def test_dropin_can_add_an_agent_and_a_profile(tmp_path):
    path = mini(tmp_path, {"50-extra.yaml": "agents:\n  Extra:\n    group: extra\n    port: 7600\n"
                                            "    health_port: 8600\n    required: false\n"
                                            "profiles:\n  extra:\n    extends: core\n    groups: [extra]\n"})
    cat = load_catalog(str(path), env={})
    assert list(cat.agents)[-1] == "Extra"
    assert cat.profile("extra").agents == ("Registry", "Hub", "Memory", "Extra")


def test_only_yaml_files_in_conf_d_are_read_and_empty_ones_are_fine(tmp_path):
    path = mini(tmp_path, {"README": "not: [yaml", "10-x.yaml.dpkg-old": "broken: [", "20-empty.yaml": "",
                           "30-short.yml": "settings:\n  log_level: debug\n"})
    cat = load_catalog(str(path), env={})
    assert [pathlib.Path(s).name for s in cat.sources] == ["unified.yaml", "20-empty.yaml", "30-short.yml"]
    assert cat.settings.log_level == "DEBUG"


def test_dropins_can_be_ignored(tmp_path):
    path = mini(tmp_path, {"10-x.yaml": "settings:\n  log_level: LOUD\n"})
    assert load_catalog(str(path), env={}, dropins=False).settings.log_level == "INFO"
    with pytest.raises(CatalogInvalid):
        load_catalog(str(path), env={})


# -- environment overrides (runbook variables) --------------------------------------------------

@pytest.mark.parametrize("var, raw, get, value", [
    ("LOG_LEVEL", "debug", lambda c: c.settings.log_level, "DEBUG"),
    ("DEBUG_MODE", "true", lambda c: c.settings.debug_mode, True),
    ("CPU_PERCENT", "40", lambda c: c.settings.limits.cpu_percent, 40),
    ("MEMORY_MB", "2048", lambda c: c.settings.limits.memory_mb, 2048),
    ("MAX_THREADS", "16", lambda c: c.settings.limits.max_threads, 16),
    ("VRAM_LIMIT_MB", "0", lambda c: c.settings.limits.vram_limit_mb, 0),
    ("ENABLE_METRICS", "0", lambda c: c.settings.features.metrics, False),
    ("ENABLE_TRACING", "yes", lambda c: c.settings.features.tracing, True),
    ("ENABLE_DATA_OPTIMIZER", "on", lambda c: c.settings.features.data_optimizer, True),
    ("PROFILE", "vision", lambda c: c.selected_profile, "vision"),
])
def test_valid_environment_variable_overrides_the_file(tmp_path, var, raw, get, value):
    path = mini(tmp_path)
    assert get(load_catalog(str(path), env={})) != value
    assert get(load_catalog(str(path), env={var: raw})) == value


def test_profile_override_selects_without_rewriting_settings(tmp_path):
    cat = load_catalog(str(mini(tmp_path)), env={"PROFILE": "full"})
    assert (cat.selected_profile, cat.settings.profile) == ("full", "core")


@pytest.mark.parametrize("var, raw, words", [
    ("LOG_LEVEL", "LOUD", ("'LOUD' is not a log level", "allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL")),
    ("DEBUG_MODE", "maybe", ("'maybe' is not a boolean", "allowed: true/false")),
    ("CPU_PERCENT", "150", ("150 is out of range", "allowed: an integer 1-100")),
    ("CPU_PERCENT", "half", ("'half' is not an integer", "allowed: an integer 1-100")),
    ("MEMORY_MB", "0", ("0 is out of range", "allowed: an integer >= 1")),
    ("MAX_THREADS", "5000", ("5000 is out of range", "allowed: an integer 1-1024")),
    ("VRAM_LIMIT_MB", "-1", ("-1 is out of range", "allowed: an integer >= 0")),
    ("ENABLE_METRICS", "2", ("'2' is not a boolean", "allowed: true/false")),
    ("ENABLE_TRACING", "", ("'' is not a boolean",)),
    ("ENABLE_DATA_OPTIMIZER", "enabled", ("'enabled' is not a boolean",)),
    ("PROFILE", "learning", ("'learning' is not a profile", "allowed: core, vision, tutoring, full")),
])
def test_bad_environment_value_is_an_error_naming_the_variable_value_and_range(tmp_path, var, raw, words):
    with pytest.raises(CatalogInvalid) as info:
        load_catalog(str(mini(tmp_path)), env={var: raw})
    (p,) = info.value.problems
    assert (p.source, p.line, p.where) == ("environment", None, var)
    for word in words:
        assert word in p.message
    assert f"environment: {var}: " in str(info.value.message)


def test_every_runbook_variable_is_handled():
    assert set(ENV_OVERRIDES) | {"PROFILE", "CONFIG"} == set(RUNBOOK_VARS)


def test_bad_environment_and_bad_file_are_reported_together(tmp_path):
    path = mini(tmp_path, text=MINI.replace("  log_level: INFO\n", "  log_level: LOUD\n"))
    with pytest.raises(CatalogInvalid) as info:
        load_catalog(str(path), env={"CPU_PERCENT": "0"})
    assert sorted(p.where for p in info.value.problems) == ["CPU_PERCENT", "settings.log_level"]


def test_the_process_environment_is_not_read_unless_passed(tmp_path, monkeypatch):
    # an operator's shell (LOG_LEVEL=verbose for another tool) is not configuration
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    monkeypatch.setenv("CONFIG", "/nonexistent.yaml")
    assert load_catalog(str(mini(tmp_path))).settings.log_level == "INFO"


def test_catalog_path_is_the_argument_else_the_installed_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFIG", str(mini(tmp_path)))   # `profile switch`'s alone (rollout.py)
    monkeypatch.delenv("UNIFIED_ETC", raising=False)
    assert catalog_path("/explicit.yaml") == "/explicit.yaml"
    assert catalog_path(None) == DEFAULT_PATH == "/etc/unified/unified.yaml"


# -- graph helpers -------------------------------------------------------------------------------

def test_find_cycle_returns_the_cycle_closed_on_its_first_agent():
    assert find_cycle({"A": ["B"], "B": []}) is None
    assert find_cycle({"A": ["B"], "B": ["A"]}) == ["A", "B", "A"]
    assert find_cycle({"X": ["A"], "A": ["B"], "B": ["C"], "C": ["A"]}) == ["A", "B", "C", "A"]
    assert catalog_mod.find_cycle({"A": ["A"]}) == ["A", "A"]


def test_unknown_systemd_directive_is_refused_with_the_allowlist(tmp_path):
    import pytest as _pytest

    from unified_core.catalog import load_catalog
    from unified_core.errors import CatalogInvalid

    src = (pathlib.Path(__file__).parent / "golden" / "catalog.yaml").read_text()
    p = tmp_path / "c.yaml"
    p.write_text(src.replace("LimitNOFILE: 4096", "ExecStartPre: /bin/rm"))
    with _pytest.raises(CatalogInvalid) as e:
        load_catalog(str(p), env={})
    (problem,) = e.value.problems
    assert problem.where == "agents.Registry.systemd.ExecStartPre"
    assert "unknown key 'ExecStartPre'" in problem.message and "SupplementaryGroups" in problem.message
