"""The catalog loader under random input: it returns a Catalog or raises CatalogInvalid whose
every Problem names its file (or "environment") and says what is wrong; nothing else, and
quickly. Inputs are mutations of valid catalogs: text edits (characters, lines, YAML
syntax), tree edits (any node replaced by any value, keys dropped or added, then dumped
again), drop-ins in conf.d, and the runbook's environment overrides.
"""
from __future__ import annotations

import pathlib
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from unified_core.catalog import ENV_OVERRIDES, load_catalog
from unified_core.errors import CatalogInvalid
from unified_core.model import Catalog

from .conftest import examples

HERE = pathlib.Path(__file__).resolve().parent
MINI = (HERE.parent / "catalogs" / "mini.yaml").read_text()
GOLDEN = (HERE.parent / "golden" / "catalog.yaml").read_text()
REAL = (HERE.parents[2] / "etc" / "unified" / "unified.yaml").read_text()
SOURCES = {"mini": MINI, "golden": GOLDEN}
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# YAML that tends to break parsers and validators
TOKENS = ["", " ", "\t", ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "#", "&a ", "*a",
          "!!python/object:os.system ", "!!binary ", "!!set ", "? ", "|", ">", "'", '"',
          "---\n", "...\n", "%YAML 1.1\n", "<<: *a\n", "\x00", "\ufeff", "\u2028", "é",
          "null", "~", "true", "no", "0x1F", "0o17", "1e400", "-1", "99999999999999999999",
          ".nan", ".inf", "1_000", "12:30", "2024-01-01", "=", "@", "`", "\\", "\r\n"]

# any value a node may be replaced with
values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30) | st.sampled_from(["30s", "5m", "-1s", "0", "127.0.0.1",
                                             "0.0.0.0", "core", "Registry", "builtin"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.text(max_size=12) | st.integers(-5, 5), kids, max_size=4),
    max_leaves=12)


def check(path: pathlib.Path, env=None, files=()):
    """The property: Catalog, or CatalogInvalid with located, explained problems."""
    t0 = time.monotonic()
    try:
        cat = load_catalog(str(path), env=env or {})
    except CatalogInvalid as e:
        assert e.problems, "CatalogInvalid with no problems"
        allowed = {str(path), "environment", *map(str, files)}
        for p in e.problems:
            assert p.source in allowed, p
            assert isinstance(p.message, str) and p.message.strip(), p
            assert p.line is None or (isinstance(p.line, int) and p.line >= 1), p
            assert isinstance(p.where, str), p
        str(e)  # renders
        result = e
    else:
        assert isinstance(cat, Catalog)
        result = cat
    # a hang guard (an expansion bomb ran for minutes), not a speed target
    assert time.monotonic() - t0 < 60, "the loader took over 60 s"
    return result


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One directory for every example (each rewrites its files): a numbered temp dir per
    example makes pytest scan all earlier ones, quadratic in the example count."""
    return tmp_path_factory.mktemp("fuzzcat")


def write(tmp: pathlib.Path, text) -> pathlib.Path:
    p = tmp / "unified.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
    return p


# ---------------------------------------------------------------------- text edits
edit = st.tuples(st.sampled_from(["insert", "delete", "replace", "dup_line", "drop_line",
                                  "swap_lines", "indent", "dedent", "truncate"]),
                 st.floats(0, 1), st.floats(0, 1),
                 st.sampled_from(TOKENS) | st.text(min_size=1, max_size=6))


def apply_edit(text: str, e) -> str:
    op, a, b, tok = e
    lines = text.split("\n")
    i = min(int(a * len(lines)), len(lines) - 1)
    j = min(int(b * len(lines)), len(lines) - 1)
    pos = min(int(a * len(text)), len(text))
    if op == "insert":
        return text[:pos] + tok + text[pos:]
    if op == "delete":
        return text[:pos] + text[pos + 1 + int(b * 20):]
    if op == "replace":
        return text[:pos] + tok + text[pos + len(tok):]
    if op == "dup_line":
        lines.insert(j, lines[i])
    elif op == "drop_line":
        del lines[i]
    elif op == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "indent":
        lines[i] = "  " + lines[i]
    elif op == "dedent":
        lines[i] = lines[i][2:]
    elif op == "truncate":
        return text[:pos]
    return "\n".join(lines)


@settings(max_examples=examples(600))
@given(src=st.sampled_from(sorted(SOURCES)), edits=st.lists(edit, min_size=1, max_size=6))
def test_text_mutations_of_small_catalogs(scratch, src, edits):
    text = SOURCES[src]
    for e in edits:
        text = apply_edit(text, e)
    check(write(scratch, text))


@settings(max_examples=examples(50))
@given(edits=st.lists(edit, min_size=1, max_size=4))
def test_text_mutations_of_the_shipped_catalog(scratch, edits):
    text = REAL
    for e in edits:
        text = apply_edit(text, e)
    check(write(scratch, text))


@settings(max_examples=examples(150))
@given(data=st.binary(max_size=400) | st.text(max_size=400))
def test_arbitrary_bytes_and_text(scratch, data):
    check(write(scratch, data))


# ---------------------------------------------------------------------- tree edits
def paths_of(node, at=()):
    yield at
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths_of(v, at + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths_of(v, at + (i,))


TREES = {k: yaml.safe_load(v) for k, v in SOURCES.items()}
PATHS = {k: [p for p in paths_of(t) if p] for k, t in TREES.items()}


def replace_at(tree, path, fn):
    if len(path) == 1:
        return fn(tree, path[0])
    return replace_at(tree[path[0]], path[1:], fn)


tree_edit = st.tuples(st.sampled_from(["set", "drop", "add"]), st.floats(0, 1), values,
                      st.text(max_size=10))


@settings(max_examples=examples(300))
@given(src=st.sampled_from(sorted(SOURCES)), edits=st.lists(tree_edit, min_size=1, max_size=5))
def test_tree_mutations_dumped_back_to_yaml(scratch, src, edits):
    import copy

    tree = copy.deepcopy(TREES[src])
    for op, where, value, key in edits:
        paths = [p for p in paths_of(tree) if p]
        if not paths:
            break
        path = paths[min(int(where * len(paths)), len(paths) - 1)]

        def act(parent, k, op=op, value=value, key=key):
            if op == "set":
                parent[k] = value
            elif op == "drop":
                del parent[k]
            elif isinstance(parent[k], dict):
                parent[k][key] = value
            elif isinstance(parent[k], list):
                parent[k].append(value)
            else:
                parent[k] = value

        try:
            replace_at(tree, path, act)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed the path
    try:
        text = yaml.dump(tree, Dumper=DUMPER, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError):
        return  # not representable as YAML (nothing for the loader to see)
    result = check(write(scratch, text))
    if isinstance(result, Catalog):
        # what validates is usable: every agent has sane ports and a known group
        for a in result.agents.values():
            assert 1 <= a.port <= 65535 and 1 <= a.health_port <= 65535
        for p in result.profiles.values():
            assert set(p.agents) <= set(result.agents)


# ---------------------------------------------------------------------- drop-ins, environment
@settings(max_examples=examples(150))
@given(src=st.sampled_from(sorted(SOURCES)), dropin=values, raw=st.sampled_from(TOKENS))
def test_dropins_with_random_content(scratch, src, dropin, raw):
    d = scratch / "with-dropins"  # the other tests' directory has no conf.d
    (d / "conf.d").mkdir(parents=True, exist_ok=True)
    main = write(d, SOURCES[src])
    a = d / "conf.d" / "10-fuzz.yaml"
    b = d / "conf.d" / "20-raw.yaml"
    try:
        a.write_text(yaml.dump(dropin, Dumper=DUMPER, allow_unicode=True))
    except (yaml.YAMLError, ValueError):
        a.write_text("{")
    b.write_text(raw, encoding="utf-8", errors="surrogatepass")
    check(main, files=(a, b))


env_value = st.text(max_size=12) | st.sampled_from(
    ["0", "-1", "1e9", "nan", "inf", "true", "TRUE", "yes", "off", "DEBUG", "trace", "99999",
     "1_000", " 5 ", "0x10", "\x00"])


@settings(max_examples=examples(200))
@given(env=st.dictionaries(st.sampled_from(sorted(ENV_OVERRIDES)), env_value, max_size=5))
def test_environment_overrides(scratch, env):
    env = {k: v.replace("\x00", "") for k, v in env.items()}  # execve cannot pass NUL anyway
    result = check(write(scratch, MINI), env=env)
    if isinstance(result, Catalog):
        limits = result.settings.limits
        for v in (limits.cpu_percent, limits.memory_mb, limits.max_threads):
            assert v is None or (isinstance(v, int) and v >= 0)


def test_nested_aliases_are_refused_fast_not_expanded(tmp_path):
    """Seven lines of YAML aliases expand to 9^7 values: found by these tests (17 s, and the
    generator runs at boot); the loader now stops at its value budget."""
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefg", "bcdefgh"):
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    p = write(tmp_path, "version: 1\n" + "\n".join(levels) + "\n")
    result = check(p)      # expanded, this took 17 s; refused, the message names the aliases
    assert isinstance(result, CatalogInvalid)
    assert any("aliases" in pr.message for pr in result.problems)


def test_the_checks_themselves_accept_the_valid_catalogs(tmp_path):
    for text in (MINI, GOLDEN, REAL):
        assert isinstance(check(write(tmp_path, text)), Catalog)
