"""Mutated templates thrown at the loader: it may only ever plan or report
located validation errors, never crash."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from conftest import SEED, SPARK
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
