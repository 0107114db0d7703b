"""Malformed catalogs: each is rejected with the problem an operator needs to fix it.

Every case starts from a valid catalog (the small tests/unit/catalogs/mini.yaml, or the real
etc/unified/unified.yaml), changes one thing, and states exactly which problems come back:
the file, the line, the field path (`where`) and key words of the message, which must name
the bad value and what is allowed. A case lists *all* its problems, so a mutation that
drags unrelated noise along fails too.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

import pytest

from unified_core.catalog import load_catalog
from unified_core.errors import CatalogInvalid

HERE = pathlib.Path(__file__).resolve().parent
MINI = (HERE / "catalogs" / "mini.yaml").read_text()
REAL = (HERE.parent.parent / "etc" / "unified" / "unified.yaml").read_text()


# -- helpers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Want:
    """One expected problem: field path, the text of its line (or a number), message words."""

    where: str
    line: str | int | None
    words: tuple[str, ...]
    file: str = "unified.yaml"  # relative to the catalog's directory


def want(where: str, line: str | int | None, *words: str, file: str = "unified.yaml") -> Want:
    return Want(where, line, words, file)


def mutate(text: str, *edits: tuple[str, str]) -> str:
    """Apply (old, new) replacements; each `old` must occur exactly once."""
    for old, new in edits:
        assert text.count(old) == 1, f"edit target must be unique: {old!r} occurs {text.count(old)}x"
        text = text.replace(old, new)
    return text


class Exactly(str):
    """A needle that must be the whole line, for lines that are substrings of others."""


def line_of(text: str, needle: str) -> int:
    """1-based number of the one line containing `needle` (or equal to an Exactly needle)."""
    hits = [n for n, line in enumerate(text.splitlines(), 1)
            if (line == needle if isinstance(needle, Exactly) else needle in line)]
    assert len(hits) == 1, f"{needle!r} must be on exactly one line, found on {hits}"
    return hits[0]


def write_catalog(tmp_path: pathlib.Path, text: str, dropins: dict[str, str] | None = None) -> pathlib.Path:
    path = tmp_path / "unified.yaml"
    path.write_text(text)
    for name, body in (dropins or {}).items():
        (tmp_path / "conf.d").mkdir(exist_ok=True)
        (tmp_path / "conf.d" / name).write_text(body)
    return path


def rejected(path: pathlib.Path, env: dict[str, str] | None = None) -> list:
    with pytest.raises(CatalogInvalid) as info:
        load_catalog(str(path), env={} if env is None else env)
    return info.value.problems


def assert_problems(problems: list, wants: list[Want], tmp_path: pathlib.Path,
                    texts: dict[str, str]) -> None:
    """Problems match `wants` one to one, in order: file, line, where and message words."""
    shown = "\n".join(f"  {p}" for p in problems)
    assert len(problems) == len(wants), f"expected {len(wants)} problem(s), got:\n{shown}"
    for p, w in zip(problems, wants):
        assert p.source == str(tmp_path / w.file), shown
        expected_line = line_of(texts[w.file], w.line) if isinstance(w.line, str) else w.line
        assert (p.where, p.line) == (w.where, expected_line), shown
        for word in w.words:
            assert word in p.message, f"{word!r} not in message: {p.message}"


# -- the table: one mutation of a valid catalog, and what must be said about it -----------

NEW_AGENT = ("\nprofiles:", "  {name}:\n    group: extra\n    port: 7500\n    health_port: 8500\n"
                            "    required: false\n\nprofiles:")


def new_agent(name: str) -> tuple[str, str]:
    return NEW_AGENT[0], NEW_AGENT[1].format(name=name)


BAD_NAME = ("is not a valid agent (systemd instance) name", "allowed: a letter, then letters, digits or '_'")


def case(id: str, *edits: tuple[str, str], wants: list[Want], base: str = MINI):
    return pytest.param(base, edits, wants, id=id)


CASES = [
    # --- YAML syntax: the parser's own words vary (libyaml or not); file and line do not ---
    case("yaml-unclosed-bracket-reported-on-the-line-after-it",
         ("    depends_on: [Registry]\n", "    depends_on: [Registry\n"),
         wants=[want("", "  Memory:", "YAML syntax error")]),
    case("yaml-key-indented-one-space-too-far",
         ("    port: 7201\n", "     port: 7201\n"),
         wants=[want("", "     port: 7201", "YAML syntax error")]),
    case("yaml-key-indented-one-space-too-little",
         ("    port: 7201\n", "   port: 7201\n"),
         wants=[want("", "   port: 7201", "YAML syntax error")]),
    case("yaml-tab-used-for-indentation",
         ("    port: 7201\n", "\tport: 7201\n"),
         wants=[want("", "\tport: 7201", "YAML syntax error")]),
    case("yaml-duplicate-key-names-the-first-line",
         ("    port: 7201\n", "    port: 7201\n    port: 7299\n"),
         wants=[want("agents.Hub.port", "port: 7299", "duplicate key 'port'",
                     f"first at line {line_of(MINI, 'port: 7201')}")]),
    case("yaml-duplicate-agent",
         ("  Tutor:\n", "  Hub:  # again\n"),
         wants=[want("agents.Hub", "# again", "duplicate key 'Hub'", f"first at line {line_of(MINI, '  Hub:')}")]),
    # --- shape of the file ---
    case("top-level-is-a-list",
         wants=[want("", 1, "['a', 'b'] is not a mapping", "'version', 'settings', 'agents'")],
         base="- a\n- b\n"),
    case("top-level-is-a-scalar",
         wants=[want("", 1, "'hello' is not a mapping", "allowed: a mapping")],
         base="hello\n"),
    case("empty-file",
         wants=[want("", None, "the catalog is empty", "'version', 'settings', 'agents'")],
         base=""),
    case("file-of-only-comments-is-empty",
         wants=[want("", None, "the catalog is empty")],
         base="# all commented out\n# version: 1\n"),
    case("unsupported-version",
         ("version: 1\n", "version: 2\n"),
         wants=[want("version", "version: 2", "2 is not a supported catalog version", "allowed: 1")]),
    case("a-removed-setting-is-named-as-removed-not-as-unknown",
         ("    startup_timeout: 30s\n", "    startup_timeout: 30s\n    failure_threshold: 3\n"),
         wants=[want("settings.health.failure_threshold", "failure_threshold: 3",
                     "settings.health.failure_threshold was removed", "delete this line")]),
    case("version-true-is-not-version-1",
         ("version: 1\n", "version: true\n"),
         wants=[want("version", "version: true", "True is not a supported catalog version")]),
    case("missing-version",
         ("version: 1\n", ""),
         wants=[want("", "settings:", "missing required key 'version' in the catalog")]),
    case("agents-is-an-empty-list",
         ("agents:\n  Registry:", "agents: []\nunused:\n  Registry:"),
         wants=[want("unused", "unused:", "unknown key 'unused'"),
                want("agents", "agents: []", "[] is not a mapping of agents", "at least one agent")]),
    # --- unknown keys at every level, each with a did-you-mean ---
    case("unknown-top-level-key",
         ("lazy_loader:\n", "lazy_loadr:\n"),
         wants=[want("lazy_loadr", "lazy_loadr:", "unknown key 'lazy_loadr'", "did you mean 'lazy_loader'",
                     "allowed in the catalog: version, settings")]),
    case("unknown-settings-key",
         ("  log_level: INFO\n", "  loglevel: INFO\n"),
         wants=[want("settings.loglevel", "loglevel:", "did you mean 'log_level'", "allowed in settings:")]),
    case("unknown-limits-key",
         ("    max_threads: 8\n", "    max_thread: 8\n"),
         wants=[want("settings.limits.max_thread", "max_thread:", "did you mean 'max_threads'",
                     "allowed in settings.limits: cpu_percent, memory_mb, max_threads, vram_limit_mb")]),
    case("unknown-agent-key",
         ("    depends_on: [Registry]\n", "    depend_on: [Registry]\n"),
         wants=[want("agents.Hub.depend_on", "depend_on:", "unknown key 'depend_on'",
                     "did you mean 'depends_on'", "allowed in agent Hub:")]),
    case("misspelt-required-agent-key-is-unknown-and-missing",
         ("    health_port: 8201\n", "    healthport: 8201\n"),
         wants=[want("agents.Hub.healthport", "healthport:", "did you mean 'health_port'"),
                want("agents.Hub", "  Hub:", "missing required key 'health_port' in agent Hub")]),
    case("unknown-resources-key",
         ("      memory_mb: 128\n", "      memory: 128\n"),
         wants=[want("agents.Memory.resources.memory", "memory: 128", "did you mean 'memory_mb'",
                     "allowed in agent Memory.resources: memory_mb, cpu_percent, vram_mb")]),
    case("unknown-run-key",
         ("      binds_own_port: true\n", "      bind_own_port: true\n"),
         wants=[want("agents.Helper.run.bind_own_port", "bind_own_port:", "did you mean 'binds_own_port'",
                     "allowed in run:")]),
    case("unknown-profile-key",
         ("    autoload: [Vision]\n", "    autoloads: [Vision]\n"),
         wants=[want("profiles.vision.autoloads", "autoloads:", "did you mean 'autoload'",
                     "allowed in profile vision:")]),
    case("unknown-routing-rule-key",
         ("      complexity: 0.9\n", "      complexty: 0.9\n"),
         wants=[want("routing.rules[0].complexty", "complexty:", "did you mean 'complexity'",
                     "allowed in a routing rule: tasks, complexity, backend"),
                want("routing.rules[0]", "- tasks: [code_generation]", "missing required key 'complexity'")]),
    case("unknown-model-key",
         ("      role: local_small\n", "      rol: local_small\n"),
         wants=[want("models.declared.tinyllama.rol", "rol:", "did you mean 'role'",
                     "allowed in model tinyllama:")]),
    # --- missing keys and wrong types ---
    case("agent-without-port",
         ("    port: 7201\n", ""),
         wants=[want("agents.Hub", "  Hub:", "missing required key 'port' in agent Hub")]),
    case("agent-with-empty-port",
         ("    port: 7201\n", "    port:\n"),
         wants=[want("agents.Hub.port", Exactly("    port:"), "required key 'port'",
                     "has no value")]),
    case("port-is-a-word",
         ("    port: 7201\n", "    port: abc\n"),
         wants=[want("agents.Hub.port", "port: abc", "'abc' is not an integer", "allowed: an integer 1024-65535")]),
    case("required-is-maybe",
         ("    required: false\n    depends_on: [Memory]", "    required: maybe\n    depends_on: [Memory]"),
         wants=[want("agents.Tutor.required", "required: maybe", "'maybe' is not a boolean", "allowed: true/false")]),
    case("depends-on-is-a-string",
         ("    depends_on: [Registry]\n", "    depends_on: Registry\n"),
         wants=[want("agents.Hub.depends_on", "depends_on: Registry", "'Registry' is not a list",
                     "allowed: a list of agent names")]),
    case("resources-is-a-list",
         ("    resources:\n      memory_mb: 128\n      cpu_percent: 25\n      vram_mb: 0\n",
          "    resources: [128, 25, 0]\n"),
         wants=[want("agents.Memory.resources", "resources: [128", "[128, 25, 0] is not a mapping",
                     "memory_mb, cpu_percent, vram_mb")]),
    case("agent-is-a-string",
         ("  Tutor:\n    group: tutoring\n    port: 7400\n    health_port: 8400\n    required: false\n"
          "    depends_on: [Memory]\n    run:\n      reference: true\n      simulate:\n        load_ms: 100\n",
          "  Tutor: yes please\n"),
         wants=[want("agents.Tutor", "Tutor: yes please", "'yes please' is not a mapping", "group, port"),
                # the unreadable agent is left out, so its group is gone too
                want("profiles.tutoring.groups[0]", "groups: [tutoring]", "unknown group 'tutoring'")]),
    case("resource-cpu-over-100-percent",
         ("      cpu_percent: 25\n", "      cpu_percent: 150\n"),
         wants=[want("agents.Memory.resources.cpu_percent", "cpu_percent: 150", "150 is out of range",
                     "allowed: an integer 1-100")]),
    # --- ports ---
    case("port-zero",
         ("    port: 7201\n", "    port: 0\n"),
         wants=[want("agents.Hub.port", "port: 0", "0 is out of range", "1024-65535")]),
    case("privileged-port-80",
         ("    port: 7201\n", "    port: 80\n"),
         wants=[want("agents.Hub.port", "port: 80", "80 is out of range", "1024-65535")]),
    case("health-port-70000",
         ("    health_port: 8201\n", "    health_port: 70000\n"),
         wants=[want("agents.Hub.health_port", "health_port: 70000", "70000 is out of range", "1024-65535")]),
    case("port-used-by-two-agents-names-both-and-the-line",
         ("    port: 7201\n", "    port: 7200  # clash\n"),
         wants=[want("agents.Hub.port", "# clash", "port 7200 is already used by",
                     "Registry.port (", f"unified.yaml:{line_of(MINI, 'port: 7200')})", "allowed: a port no other agent or listener uses")]),
    case("agent-port-equals-another-agents-health-port",
         ("    port: 7201\n", "    port: 8200  # clash\n"),
         wants=[want("agents.Hub.port", "# clash", "port 8200 is already used by Registry.health_port")]),
    case("health-port-equals-own-port",
         ("    health_port: 8201\n", "    health_port: 7201\n"),
         wants=[want("agents.Hub.health_port", "health_port: 7201", "port 7201 is already used by Hub.port")]),
    case("port-taken-by-prometheus-listener",
         ("    port: 7400\n", "    port: 9090\n"),
         wants=[want("agents.Tutor.port", "port: 9090", "port 9090 is already used by other listener 'prometheus'",
                     "settings.other_listeners")]),
    case("other-listener-port-out-of-range",
         ("    prometheus: 9090\n", "    prometheus: 90\n"),
         wants=[want("settings.other_listeners.prometheus", "prometheus: 90", "90 is out of range", "1024-65535")]),
    # --- dependencies ---
    case("dependency-on-unknown-agent-suggests-the-name",
         ("    depends_on: [Registry]\n", "    depends_on: [Registy]\n"),
         wants=[want("agents.Hub.depends_on[0]", "[Registy]", "unknown agent 'Registy'",
                     "did you mean 'Registry'", "allowed: an agent of this catalog")]),
    case("agent-depends-on-itself",
         ("    depends_on: [Registry]\n", "    depends_on: [Registry, Hub]\n"),
         wants=[want("agents.Hub.depends_on[1]", "[Registry, Hub]", "Hub depends on itself")]),
    case("dependency-listed-twice",
         ("    depends_on: [Registry]\n", "    depends_on: [Registry, Registry]\n"),
         wants=[want("agents.Hub.depends_on[1]", "[Registry, Registry]", "'Registry' is listed twice")]),
    case("dependency-cycle-of-two-prints-the-cycle",
         ("    task_types: [registry_lookup]\n", "    task_types: [registry_lookup]\n    depends_on: [Hub]  # back\n"),
         wants=[want("agents.Registry.depends_on", "# back", "dependency cycle: Registry -> Hub -> Registry")]),
    case("dependency-cycle-of-three-prints-the-cycle",
         ("    task_types: [registry_lookup]\n",
          "    task_types: [registry_lookup]\n    depends_on: [Memory]  # back\n"),
         wants=[want("agents.Registry.depends_on", "# back",
                     "dependency cycle: Registry -> Memory -> Hub -> Registry")]),
    case("essential-agent-depends-on-optional-agent",
         ("    depends_on: [Hub]\n", "    depends_on: [Hub, Helper]\n"),
         wants=[want("agents.Memory.depends_on[1]", "[Hub, Helper]",
                     "essential agent Memory depends on optional agent Helper", "make Helper required: true")]),
    # --- profiles ---
    case("profile-names-unknown-agent",
         ("    agents: [Vision]\n", "    agents: [Vision, Tutr]\n"),
         wants=[want("profiles.vision.agents[1]", "[Vision, Tutr]", "unknown agent 'Tutr'", "did you mean 'Tutor'")]),
    case("profile-names-unknown-group",
         ("    groups: [infra, memory]\n", "    groups: [infra, memroy]\n"),
         wants=[want("profiles.core.groups[1]", "[infra, memroy]", "unknown group 'memroy'",
                     "did you mean 'memory'", "allowed: infra, memory, vision, helpers, tutoring")]),
    case("profile-extends-unknown-profile",
         ("    extends: core\n    groups: [tutoring]\n", "    extends: cor\n    groups: [tutoring]\n"),
         wants=[want("profiles.tutoring.extends", Exactly("    extends: cor"), "unknown profile 'cor'",
                     "allowed: core, vision, tutoring, full")]),
    case("profile-extends-a-list",
         ("    extends: core\n    groups: [tutoring]\n", "    extends: [core]\n    groups: [tutoring]\n"),
         wants=[want("profiles.tutoring.extends", "extends: [core]", "unknown profile ['core']")]),
    case("profile-extends-cycle",
         ("    description: The essential agents.\n",
          "    description: The essential agents.\n    extends: tutoring\n"),
         wants=[want("profiles.core.extends", "extends: tutoring", "profile cycle: core -> tutoring -> core")]),
    case("autoload-agent-not-in-profile",
         ("    autoload: [Vision]\n", "    autoload: [Vision, Tutor]\n"),
         wants=[want("profiles.vision.autoload[1]", "[Vision, Tutor]", "Tutor is not in profile vision",
                     "allowed: agents of the profile")]),
    case("autoload-is-a-string",
         ("    autoload: [Vision]\n", "    autoload: Vision\n"),
         wants=[want("profiles.vision.autoload", "autoload: Vision", "'Vision' is not a list")]),
    case("profile-without-agents",
         ("  full:\n    all: true\n", "  full:\n    description: nothing yet\n"),
         wants=[want("profiles.full", "  full:", "profile full has no agents", "at least one group or agent")]),
    case("selected-profile-is-not-a-profile",
         ("  profile: core\n", "  profile: learning\n"),
         wants=[want("settings.profile", "profile: learning", "'learning' is not a profile of this catalog",
                     "allowed: core, vision, tutoring, full")]),
    case("profile-cpu-over-100-percent",
         ("      cpu_percent: 50\n", "      cpu_percent: 101\n"),
         wants=[want("profiles.core.resources.cpu_percent", "cpu_percent: 101", "101 is out of range", "1-100")]),
    # --- names ---
    case("agent-name-with-dash", new_agent("Bad-Name"),
         wants=[want("agents.Bad-Name", "Bad-Name:", "'Bad-Name'", *BAD_NAME)]),
    case("agent-name-starting-with-digit", new_agent("9Lives"),
         wants=[want("agents.9Lives", "9Lives:", "'9Lives'", *BAD_NAME)]),
    case("agent-name-with-space", new_agent("Bad Name"),
         wants=[want("agents.Bad Name", "Bad Name:", "'Bad Name'", *BAD_NAME)]),
    case("agent-name-with-at-sign", new_agent("Bad@Name"),
         wants=[want("agents.Bad@Name", "Bad@Name:", "'Bad@Name'", *BAD_NAME)]),
    case("group-name-in-camel-case",
         ("    group: helpers\n", "    group: Helpers\n"),
         wants=[want("agents.Helper.group", "group: Helpers", "'Helpers' is not a valid name", "lower-case")]),
    case("task-type-served-by-two-agents",
         ("    depends_on: [Memory]\n    run:\n      reference: true",
          "    depends_on: [Memory]\n    task_types: [vision]  # again\n    run:\n      reference: true"),
         wants=[want("agents.Tutor.task_types[0]", "# again",
                     "task type 'vision' is already served by Vision", "each task type served by one agent")]),
    # --- settings values ---
    case("health-interval-not-a-duration",
         ("    interval: 5s\n", "    interval: 5 parsecs\n"),
         wants=[want("settings.health.interval", "interval: 5 parsecs", "'5 parsecs' is not a duration",
                     "'500ms', '30s', '5m', '1h'")]),
    case("negative-duration",
         ("    stop_timeout: 15s\n", "    stop_timeout: -3\n"),
         wants=[want("settings.supervision.stop_timeout", "stop_timeout: -3", "-3 is negative")]),
    case("bad-log-level",
         ("  log_level: INFO\n", "  log_level: LOUD\n"),
         wants=[want("settings.log_level", "log_level: LOUD", "'LOUD' is not a log level",
                     "allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL")]),
    case("bind-address-is-a-hostname",
         ("  bind_address: 127.0.0.1\n", "  bind_address: localhost\n"),
         wants=[want("settings.bind_address", "bind_address: localhost", "'localhost' is not an IP address",
                     "IPv4 or IPv6")]),
    case("max-threads-over-1024",
         ("    max_threads: 8\n", "    max_threads: 5000\n"),
         wants=[want("settings.limits.max_threads", "max_threads: 5000", "5000 is out of range", "1-1024")]),
    case("idle-timeout-on-essential-agent",
         ("    depends_on: [Registry]\n", "    depends_on: [Registry]\n    idle_timeout: 5m  # essential\n"),
         wants=[want("agents.Hub.idle_timeout", "# essential", "300s is not allowed for an essential agent",
                     "allowed: 0 or omit it")]),
    # --- run specs and environment ---
    case("run-names-two-kinds",
         ("    run:\n      entry_point: 'vision_pkg.main:run'\n",
          "    run:  # two\n      entry_point: 'vision_pkg.main:run'\n      command: ['/usr/bin/vision']\n"),
         wants=[want("agents.Vision.run", "# two", "names 2 ways to run (entry_point, command)",
                     "exactly one of reference, builtin, entry_point, command")]),
    case("run-command-with-relative-path",
         ("['/usr/bin/helper',", "['bin/helper',"),
         wants=[want("agents.Helper.run.command", "bin/helper", "is not a command",
                     "starting with an absolute path")]),
    case("run-entry-point-without-callable",
         ("      entry_point: 'vision_pkg.main:run'\n", "      entry_point: 'vision_pkg.main'\n"),
         wants=[want("agents.Vision.run.entry_point", "entry_point: 'vision_pkg.main'",
                     "'vision_pkg.main' is not an entry point", "allowed: 'package.module:callable'")]),
    case("run-is-an-unknown-word",
         ("    run:\n      entry_point: 'vision_pkg.main:run'\n", "    run: python\n"),
         wants=[want("agents.Vision.run", "run: python", "'python' is not a run spec", "'reference', or a mapping")]),
    case("simulate-on-an-entry-point-agent",
         ("      entry_point: 'vision_pkg.main:run'\n",
          "      entry_point: 'vision_pkg.main:run'\n      simulate: {load_ms: 5}\n"),
         wants=[want("agents.Vision.run.simulate", "simulate: {load_ms: 5}", "reference agent only")]),
    case("environment-variable-name-with-dash",
         ("      VISION_MODEL: small\n", "      vision-model: small\n"),
         wants=[want("agents.Vision.environment.vision-model", "vision-model:",
                     "'vision-model' is not an environment variable name", "upper-case letters, digits and '_'")]),
    case("environment-variable-reserved-for-systemd",
         ("      VISION_MODEL: small\n", "      UNIFIED_PORT: '1'\n"),
         wants=[want("agents.Vision.environment.UNIFIED_PORT", "UNIFIED_PORT:",
                     "'UNIFIED_PORT' is set by unified-system/systemd")]),
    # --- routing and models ---
    case("routing-backend-not-allowed",
         ("      backend: cloud\n", "      backend: gpu\n"),
         wants=[want("routing.rules[0].backend", "backend: gpu", "'gpu' is not allowed", "allowed: local, cloud")]),
    case("routing-complexity-above-one",
         ("      complexity: 0.9\n", "      complexity: 1.5\n"),
         wants=[want("routing.rules[0].complexity", "complexity: 1.5", "1.5 is out of range", "0.0-1.0")]),
    case("model-backend-not-allowed",
         ("      backend: openai\n", "      backend: ollama\n"),
         wants=[want("models.declared.tinyllama.backend", "backend: ollama", "'ollama' is not allowed",
                     "allowed: openai, inprocess")]),
    # --- the real catalog ---
    case("real-catalog-agent-on-prometheus-port",
         ("    port: 7200\n", "    port: 9090\n"),
         wants=[want("agents.ServiceRegistry.port", "port: 9090",
                     "port 9090 is already used by other listener 'prometheus'")], base=REAL),
    case("real-catalog-two-agents-on-one-port",
         ("    port: 5610\n", "    port: 7200  # clash\n"),
         wants=[want("agents.FaceRecognitionAgent.port", "# clash", "port 7200 is already used by ServiceRegistry.port",
                     f"unified.yaml:{line_of(REAL, Exactly('    port: 7200'))})")], base=REAL),
    case("real-catalog-unknown-dependency-suggests-the-name",
         ("    depends_on: []\n    task_types: [registry_lookup]\n",
          "    depends_on: [Registry]\n    task_types: [registry_lookup]\n"),
         wants=[want("agents.ServiceRegistry.depends_on[0]", "depends_on: [Registry]", "unknown agent 'Registry'",
                     "did you mean 'ServiceRegistry'")], base=REAL),
]


@pytest.mark.parametrize("base, edits, wants", CASES)
def test_malformed_catalog_is_rejected_with_the_expected_problem(tmp_path, base, edits, wants):
    text = mutate(base, *edits)
    path = write_catalog(tmp_path, text)
    assert_problems(rejected(path), wants, tmp_path, {"unified.yaml": text})


def test_the_table_holds_at_least_35_distinct_malformed_catalogs():
    texts = {mutate(base, *edits) for base, edits, _ in (c.values for c in CASES)}
    assert len(texts) == len(CASES) >= 35


def test_the_unmutated_bases_are_valid():
    here = HERE / "catalogs" / "mini.yaml"
    assert len(load_catalog(str(here), env={}).agents) == 6


# -- problems the table cannot express -----------------------------------------------------

def test_several_problems_in_one_file_are_all_reported(tmp_path):
    text = mutate(MINI,
                  ("  log_level: INFO\n", "  log_level: LOUD\n"),
                  ("    port: 7201\n", "    port: abc\n"),
                  ("    depends_on: [Hub]\n", "    depends_on: [Hubb]\n"),
                  ("    groups: [infra, memory]\n", "    groups: [infra, memroy]\n"))
    problems = rejected(write_catalog(tmp_path, text))
    assert [(p.where, p.line) for p in problems] == [
        ("settings.log_level", line_of(text, "LOUD")),
        ("agents.Hub.port", line_of(text, "port: abc")),
        ("agents.Memory.depends_on[0]", line_of(text, "[Hubb]")),
        ("profiles.core.groups[1]", line_of(text, "memroy")),
    ]


def test_the_error_text_lists_every_problem_as_file_line_field_message(tmp_path):
    text = mutate(MINI, ("    port: 7201\n", "    port: abc\n"), ("  log_level: INFO\n", "  log_level: LOUD\n"))
    path = write_catalog(tmp_path, text)
    with pytest.raises(CatalogInvalid) as info:
        load_catalog(str(path), env={})
    lines = str(info.value.message).splitlines()
    assert lines[0] == "invalid configuration (2 problems):"
    assert f"  {path}:{line_of(text, 'LOUD')}: settings.log_level: 'LOUD' is not a log level" in lines[1]
    assert lines[2].startswith(f"  {path}:{line_of(text, 'port: abc')}: agents.Hub.port: 'abc' is not an integer")
    assert info.value.exit_code == 1


def test_unreadable_catalog_says_it_cannot_be_read(tmp_path):
    problems = rejected(tmp_path / "missing.yaml")
    assert len(problems) == 1
    assert problems[0].source == str(tmp_path / "missing.yaml")
    assert "cannot read file" in problems[0].message and "No such file" in problems[0].message


def test_yaml_merge_keys_are_refused(tmp_path):
    text = mutate(MINI, ("  Tutor:\n    group: tutoring\n", "  Tutor:\n    <<: {x: 1}\n    group: tutoring\n"))
    problems = rejected(write_catalog(tmp_path, text))
    assert [(p.where, p.line) for p in problems] == [("agents.Tutor", line_of(text, "<<:"))]
    assert "merge keys ('<<') are not supported" in problems[0].message


def test_unclosed_bracket_message_names_the_line_where_it_opened(tmp_path):
    text = mutate(MINI, ("    depends_on: [Registry]\n", "    depends_on: [Registry\n"))
    (p,) = rejected(write_catalog(tmp_path, text))
    assert f"started at line {line_of(text, '[Registry')}" in p.message


def test_no_readable_agents_is_one_problem_not_one_per_profile_member(tmp_path):
    text = mutate(MINI, ("agents:\n  Registry:", "agentz:\n  Registry:"))
    problems = rejected(write_catalog(tmp_path, text))
    assert [p.where for p in problems] == ["agentz", "", "agents"]
    assert "did you mean 'agents'" in problems[0].message
    assert "missing required key 'agents'" in problems[1].message


# -- drop-ins: problems point into conf.d/NN-name.yaml --------------------------------------

def test_bad_value_in_a_dropin_is_reported_with_the_dropins_file_and_line(tmp_path):
    dropin = "# raise Hub's port\nagents:\n  Hub:\n    port: 99999\n"
    path = write_catalog(tmp_path, MINI, {"10-x.yaml": dropin})
    assert_problems(rejected(path), [want("agents.Hub.port", "port: 99999", "99999 is out of range",
                                          "1024-65535", file="conf.d/10-x.yaml")],
                    tmp_path, {"conf.d/10-x.yaml": dropin})


def test_yaml_syntax_error_in_a_dropin_names_the_dropin(tmp_path):
    dropin = "agents:\n  Hub:\n    depends_on: [Registry\n  Memory:\n    port: 7999\n"
    path = write_catalog(tmp_path, MINI, {"10-x.yaml": dropin})
    assert_problems(rejected(path), [want("", "  Memory:", "YAML syntax error", file="conf.d/10-x.yaml")],
                    tmp_path, {"conf.d/10-x.yaml": dropin})


def test_dropin_that_is_not_a_mapping_is_refused(tmp_path):
    path = write_catalog(tmp_path, MINI, {"10-x.yaml": "- agents\n"})
    assert_problems(rejected(path), [want("", 1, "a drop-in must be a mapping", file="conf.d/10-x.yaml")],
                    tmp_path, {})


def test_unknown_key_in_a_dropin_points_into_the_dropin(tmp_path):
    dropin = "settings:\n  limits:\n    cpu_precent: 50\n"
    path = write_catalog(tmp_path, MINI, {"20-limits.yaml": dropin})
    assert_problems(rejected(path), [want("settings.limits.cpu_precent", "cpu_precent", "did you mean 'cpu_percent'",
                                          file="conf.d/20-limits.yaml")],
                    tmp_path, {"conf.d/20-limits.yaml": dropin})


def test_dropin_port_clash_names_the_dropin_line_of_the_first_holder(tmp_path):
    dropin = "agents:\n  Hub:\n    port: 7300\n"
    path = write_catalog(tmp_path, MINI, {"10-x.yaml": dropin})
    (p,) = rejected(path)
    assert (p.source, p.where, p.line) == (str(path), "agents.Vision.port", line_of(MINI, "port: 7300"))
    assert f"already used by Hub.port ({tmp_path / 'conf.d' / '10-x.yaml'}:3)" in p.message


def test_key_missing_in_the_main_file_is_blamed_on_the_main_file_not_the_dropin(tmp_path):
    text = mutate(MINI, ("    port: 7201\n", ""))
    path = write_catalog(tmp_path, text, {"10-x.yaml": "agents:\n  Hub:\n    description: touched\n"})
    assert_problems(rejected(path), [want("agents.Hub", "  Hub:", "missing required key 'port'")],
                    tmp_path, {"unified.yaml": text})


def test_dropins_are_not_read_when_the_main_file_is_broken(tmp_path):
    path = write_catalog(tmp_path, "version: [\n", {"10-x.yaml": "also: [broken\n"})
    problems = rejected(path)
    assert [p.source for p in problems] == [str(path)]


def test_dropin_errors_in_two_files_are_both_reported(tmp_path):
    path = write_catalog(tmp_path, MINI, {"10-a.yaml": "settings: {log_level: LOUD}\n",
                                          "20-b.yaml": "lazy_loader: {max_concurrent_loads: 0}\n"})
    problems = rejected(path)
    assert sorted((pathlib.Path(p.source).name, p.line, p.where) for p in problems) == [
        ("10-a.yaml", 1, "settings.log_level"), ("20-b.yaml", 1, "lazy_loader.max_concurrent_loads")]
