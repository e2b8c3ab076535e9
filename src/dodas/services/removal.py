"""Removing chosen instances: `dodas up --remove 'worker_hosts[3]'`, IM's
`removal_list`, the autoscaler taking exactly the idle workers it chose.

A removal is an `up` whose plan no longer has the named instances: the node's
count drops by as many, and the indexes left are kept with the deployment's
inputs (model/indexes.py), so that every other instance keeps its index, its
machine and its address. This module turns names into those two inputs; the
plan, its comparison with the state and the engine's removal of what left the
plan are `up`'s own.
"""

from __future__ import annotations

import re
from typing import Any

from dodas.errors import DodasError
from dodas.model import indexes, managed
from dodas.model.deployment import Instance
from dodas.model.template import Template
from dodas.plan.plan import Plan
from dodas.tosca.inputs import GivenInput

_NAME = re.compile(r"\s*([A-Za-z0-9_.:-]{1,200})\s*\[\s*(\d{1,9})\s*\]\s*")


def parse(name: str) -> tuple[str, int]:
    """"worker_hosts[3]" -> ("worker_hosts", 3); a clear error for anything else."""
    m = _NAME.fullmatch(str(name))
    if m is None:
        raise DodasError(f'cannot remove "{str(name)[:80]}": name an instance as NODE[INDEX], e.g. worker_hosts[1] '
                         "(quote it in a shell)")
    return m.group(1), int(m.group(2))


def removal_inputs(tpl: Template, plan: Plan, names: list[str], origin: str = "--remove",
                   replace: bool = False) -> tuple[dict[str, GivenInput], frozenset[Instance]]:
    """The inputs that take the instances `names` out of `plan` (their machines,
    and what those host): each scalable node's count, lowered by as many as are
    named of it, and the indexes it keeps. An instance of software names its
    machine (spark_worker[2] is worker_hosts[2]). Also returns the machines named.
    With `replace`, the count stays: as many new instances come, at indexes above
    the node's highest (a new machine, never the one removed)."""
    model = plan.model
    chosen: dict[str, set[int]] = {}
    for name in names:
        node, index = parse(name)
        if node not in model.nodes:
            raise DodasError(f'cannot remove {node}[{index}]: the deployment has no node "{node}" (its nodes: '
                             f"{', '.join(sorted(model.nodes))})")
        host = model.host_compute(node)
        if host is None:
            raise DodasError(f'cannot remove {node}[{index}]: node "{node}" runs on no machine of the deployment')
        have = model.indexes(host)
        if index not in have:
            listed = ", ".join(f"{host}[{i}]" for i in have) or "none"
            raise DodasError(f"cannot remove {node}[{index}]: {host} has no instance {index} (its instances: "
                             f"{listed})")
        chosen.setdefault(host, set()).add(index)
    out: dict[str, GivenInput] = {}
    for host, gone in chosen.items():
        have = model.indexes(host)
        left = [i for i in have if i not in gone]
        if replace:
            left += list(range(max(have) + 1, max(have) + 1 + len(gone)))
        out[count_input(tpl, model, host)] = GivenInput(len(left), f"<{origin}>", 1, 1)
        out[indexes.key(host)] = GivenInput(left, f"<{origin}>", 1, 1)
    return out, frozenset(Instance(h, i) for h, gone in chosen.items() for i in gone)


def count_input(tpl: Template, model: Any, node: str) -> str:
    """The input that holds `node`'s count: the autoscaler's own value for a count
    the template fixes under a policy (model/managed.py), else the template's input
    (an error, from the template, for a count written as a constant)."""
    key = managed.key(node)
    if key in model.inputs:
        return key
    return tpl.count_input(node)
