"""Mutated and hostile templates thrown at the loader: it may only ever plan or
report located validation errors, never crash, never hang, never blow up memory.

The hostile cases (alias bombs, recursive aliases, nesting thousands deep, huge
numbers) run `python -m dodas validate` in a child process under an address-space
limit, with a timeout that only detects a hang; the hypothesis-based ones run in
process.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from support.paths import SEED, SPARK
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.limited import run_limited
from support.located import located

from dodas import services
from dodas.errors import TemplateError

BASES = [yaml.safe_load(SEED.read_text()), yaml.safe_load(SPARK.read_text())]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.text(max_size=12),
                    st.sampled_from(["SELF", "HOST", "k8s_master", "master_host", "tosca.nodes.Compute",
                                     "get_input", "4 GB", "PUBLIC"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3),
    st.sampled_from(["get_input", "get_attribute", "get_property", "concat", "join", "token"]).flatmap(
        lambda fn: st.builds(lambda a: {fn: a}, st.lists(inner, max_size=3)))), max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate(doc, choice: int, op: str, new):
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return doc
    path = paths[choice % len(paths)]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = new
    elif op == "rename" and isinstance(parent, dict):
        parent[str(new)[:10]] = parent.pop(last)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from([0, 1]),
       mutations=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["delete", "replace", "rename"]),
                                    values), min_size=1, max_size=4))
def test_mutated_structures_never_crash(tmp_path_factory, base, mutations):
    doc = copy.deepcopy(BASES[base])
    for choice, op, new in mutations:
        doc = _mutate(doc, choice, op, new)
    path = Path(tmp_path_factory.mktemp("fz")) / "t.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False) if isinstance(doc, (dict, list)) else str(doc))
    _check(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from([SEED, SPARK]), at=st.integers(0, 10_000), cut=st.integers(0, 40),
       insert=st.text(alphabet=" \n:-{}[]#&*!|>'\"%@`,?abc0123", max_size=6))
def test_mutated_text_never_crashes(tmp_path_factory, base, at, cut, insert):
    text = base.read_text()
    at %= len(text)
    path = Path(tmp_path_factory.mktemp("fz")) / "t.yaml"
    path.write_text(text[:at] + insert + text[at + cut:])
    _check(path)


def _check(path: Path) -> None:
    try:
        services.plan(str(path), offline=True)
    except TemplateError as exc:
        assert exc.diagnostics, "a TemplateError always says what is wrong"
        for d in exc.diagnostics:
            assert d.file == str(path) or d.file == "<command line>"
            assert d.line >= 1 and d.col >= 1 and d.message


# -- hostile YAML and numbers, in a child process under a memory limit ---------------------
def _laughs(levels: int, fanout: int, *, mappings: bool = False) -> str:
    """An alias bomb: each level refers `fanout` times to the one below."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * fanout)}]"]
    for k in range(1, levels + 1):
        if mappings:  # each level holds the one below under `fanout` keys
            body = ", ".join(f"k{j}: *l{k - 1}" for j in range(fanout))
            lines.append(f"l{k}: &l{k} {{{body}}}")
        else:
            lines.append(f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * fanout)}]")
    return "\n".join(lines) + "\n"


def _laughs_flow(levels: int, fanout: int) -> str:
    """The same bomb as one flow mapping, to put where a template holds one value."""
    return "{" + ", ".join(_laughs(levels, fanout).splitlines()) + "}"


def _deep_block_mappings(n: int) -> str:
    return "".join(" " * (2 * i) + f"k{i}:\n" for i in range(n)) + " " * (2 * n) + "end\n"


def _deep_block_lists(n: int) -> str:
    return "- " * n + "x\n"


SPARK_TEXT = SPARK.read_text()
WORKERS = "count: { get_input: number_of_workers }"


def _in_spark(old: str, new: str) -> str:
    assert old in SPARK_TEXT, old
    return SPARK_TEXT.replace(old, new, 1)


def _top(block: str) -> str:
    """The Spark template with `block` (top-level YAML lines) after its first line."""
    first, rest = SPARK_TEXT.split("\n", 1)
    return first + "\n" + block + rest


def _described(value: str) -> str:
    """The Spark template with its description replaced by `value`."""
    return re.sub(r"description: >\n(  .*\n)+", lambda _m: "description: " + value + "\n", SPARK_TEXT, count=1)


def _metadata(block: str) -> str:
    """A template whose node metadata holds `block` (a YAML mapping's lines)."""
    return _in_spark("      type: tosca.nodes.dodas.Spark.Master\n",
                     "      type: tosca.nodes.dodas.Spark.Master\n      metadata:\n"
                     + "".join("        " + ln + "\n" for ln in block.splitlines()))


HOSTILE = {
    # alias bombs, where dodas or tosca-parser walk the value
    "laughs 10^9 in the description": _described(_laughs_flow(9, 10)),
    "laughs 2^40 in an output": _in_spark("  outputs:\n", "  outputs:\n    bomb:\n      value: "
                                          + _laughs_flow(40, 2) + "\n"),
    "laughs of mappings in node metadata": _metadata(_laughs(9, 10, mappings=True)),
    "laughs in node metadata": _metadata(_laughs(8, 12)),
    "laughs at the top level": "x:\n" + "".join("  " + ln + "\n" for ln in _laughs(9, 10).splitlines()),
    "laughs in an input default": _top("x:\n" + "".join("  " + ln + "\n" for ln in _laughs(7, 20).splitlines())
                                       ).replace("      default: 2\n", "      default: *l7\n", 1),
    # recursive aliases
    "recursive list": _described("&r [*r]"),
    "recursive mapping in an output": _in_spark("  outputs:\n", "  outputs:\n    loop:\n"
                                                "      value: &r {a: {b: [1, *r]}}\n"),
    "recursive merge key in node metadata": _metadata("x: &r {<<: *r}"),
    "recursive in node metadata": _metadata("a: &r [x, [y, *r]]"),
    # nesting
    "lists 5000 deep (flow)": _described("[" * 5000 + "]" * 5000),
    "mappings 3000 deep (flow)": _described("{a: " * 3000 + "1" + "}" * 3000),
    "lists 2000 deep (block)": "description:\n" + "  " + _deep_block_lists(2000),
    "mappings 2000 deep (block)": "x:\n" + "".join("  " + ln + "\n" for ln in
                                                   _deep_block_mappings(2000).splitlines()),
    "mixed 999 deep in metadata": _metadata("a: " + "[{b: " * 499 + "1" + "}]" * 499),
    "150 deep in an output": _in_spark("  outputs:\n", "  outputs:\n    deep:\n      value: " + "[" * 150
                                       + "]" * 150 + "\n"),
    "deep alias expansion": "a: &a " + "[" * 80 + "]" * 80 + "\nb: " + "[" * 80 + "*a" + "]" * 80 + "\n",
    # huge numbers
    "count 10**100": _in_spark(WORKERS, "count: " + "1" + "0" * 100),
    "count 1e308": _in_spark(WORKERS, "count: 1e308"),
    "count of 5000 digits": _in_spark(WORKERS, "count: " + "9" * 5000),
    "port 10**100": _in_spark("source: 8080", "source: 1" + "0" * 100),
    "size 1e308 GB": _in_spark("mem_size: { get_input: master_mem }", "mem_size: 1e308 GB"),
    "size 10**400 GB": _in_spark("mem_size: { get_input: master_mem }", "mem_size: 1" + "0" * 400 + " GB"),
    "cpus 1e999": _in_spark("num_cpus: { get_input: master_cpus }", "num_cpus: 1e999"),
}


def _hostile_text(name: str) -> str:
    """A whole template: the fragments that are not one get a version line of their own."""
    text = HOSTILE[name]
    return text if text.startswith("tosca_definitions_version") else \
        "tosca_definitions_version: tosca_simple_yaml_1_0\n" + text


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_templates_are_refused_within_bounds(tmp_path, name):
    t = tmp_path / "t.yaml"
    t.write_text(_hostile_text(name))
    r = run_limited("validate", str(t))
    located(r.returncode, r.stdout, r.stderr, t)


CLI = "<command line>"
#: -i values, and where the error is: the value, or the count it becomes
HOSTILE_INPUTS = {
    "workers 10**100": (["-i", "number_of_workers=1" + "0" * 100], str(SPARK)),
    "workers of 5000 digits": (["-i", "number_of_workers=" + "7" * 5000], CLI),
    "memory 1e308 GB": (["-i", "worker_mem=1e308 GB"], CLI),
    "cpus as an alias bomb": (["-i", "worker_cpus=" + "{" + ", ".join(
        f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 10)}]" if k else "l0: &l0 [a, a, a, a, a, a, a, a, a, a]"
        for k in range(10)) + "}"], CLI),
    "cpus as a recursive alias": (["-i", "worker_cpus=&r [*r]"], CLI),
    "cpus 3000 deep": (["-i", "worker_cpus=" + "[" * 3000 + "]" * 3000], CLI),
}


@pytest.mark.parametrize("name", list(HOSTILE_INPUTS))
def test_hostile_command_line_inputs_are_refused_within_bounds(name):
    args, where = HOSTILE_INPUTS[name]
    r = run_limited("validate", str(SPARK), *args)
    located(r.returncode, r.stdout, r.stderr, where)


INPUTS_FILES = {
    "laughs": "x:\n" + "".join("  " + ln + "\n" for ln in _laughs(9, 10).splitlines()),
    "recursive alias": "x: &r {a: {b: [1, *r]}}\n",
    "lists 5000 deep": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "mappings 2000 deep": "x:\n" + "".join("  " + ln + "\n" for ln in _deep_block_mappings(2000).splitlines()),
    "a value as a bomb": "worker_cpus: " + _laughs_flow(9, 10) + "\n",
}


@pytest.mark.parametrize("name", list(INPUTS_FILES))
def test_hostile_inputs_files_are_refused_within_bounds(tmp_path, name):
    f = tmp_path / "in.yaml"
    f.write_text(INPUTS_FILES[name] + "number_of_workers: 2\n")
    r = run_limited("validate", str(SPARK), "--inputs", str(f))
    located(r.returncode, r.stdout, r.stderr, f)


# -- hostile structures, in process ----------------------------------------------------------
hostile_yaml = st.one_of(
    st.builds(lambda levels, fanout, maps: "\n" + _laughs(levels, fanout, mappings=maps),
              st.integers(1, 30), st.integers(2, 30), st.booleans()),
    st.builds(lambda n, kinds: "".join(("[", "{a: ")[k] for k in kinds[:n]) + "1"
              + "".join(("]", "}")[k] for k in reversed(kinds[:n])),
              st.integers(1, 3000), st.lists(st.integers(0, 1), min_size=3000, max_size=3000)),
    st.builds(lambda n: "\n" + _deep_block_mappings(n), st.integers(1, 1200)),
    st.sampled_from(["&r [*r]", "&r {a: *r}", "&r {<<: *r}", "&r [[[*r]]]", "*undefined"]),
    st.builds(lambda digits: "1" * digits, st.integers(1, 6000)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(where=st.sampled_from(["description", "metadata", "default", "output", "count"]), hostile=hostile_yaml)
def test_hostile_structures_never_crash(tmp_path_factory, where, hostile):
    """Placed where a template holds a value: planned, or refused with located errors."""
    indented = hostile.replace("\n", "\n" + " " * 8)
    text = {
        "description": lambda: _described(indented),
        "metadata": lambda: _in_spark("      type: tosca.nodes.dodas.Spark.Master\n",
                                      "      type: tosca.nodes.dodas.Spark.Master\n      metadata: {x: 1}\n"
                                      ).replace("metadata: {x: 1}", "metadata:\n        x: " + indented),
        "default": lambda: _in_spark("      default: 2\n", "      default: " + indented + "\n"),
        "output": lambda: _in_spark("  outputs:\n", "  outputs:\n    hostile:\n      value: " + indented + "\n"),
        "count": lambda: _in_spark(WORKERS, "count: " + indented),
    }[where]()
    path = Path(tmp_path_factory.mktemp("fz")) / "t.yaml"
    path.write_text(text)
    _check(path)
