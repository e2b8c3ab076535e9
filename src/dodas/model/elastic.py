"""Elasticity policies: which node the autoscaler scales, between which bounds,
watching which workload (issue 15; CLUES's settings in dodas's terms).

Two forms are read, and give the same `Policy`:

* dodas's own TOSCA policy, `tosca.policies.dodas.Elastic` (a
  `tosca.policies.Scaling`), targeting the workers' scalable Compute node::

      policies:
        - elastic_workers:
            type: tosca.policies.dodas.Elastic
            targets: [worker_hosts]
            properties: {min_instances: 1, max_instances: 4, idle_time: 60, workload: spark}

  Every property maps onto the field of the same name; tosca-parser checks the
  literal values against the type's constraints (library `dodas_types.yaml`),
  this module checks values from `get_input` and the bounds together.

* INDIGO's `tosca.nodes.indigo.ElasticCluster` node (CLUES), with its `lrms`
  requirement (the batch system's front end) and its `wn` requirements (the
  worker nodes; the Compute each is hosted on is what scales). What maps:

  - `min_instances`: the worker node's `wn` capability `min_instances` (INDIGO
    writes the bounds there), else the Compute's `scalable` `min_instances`,
    else the ElasticCluster's `minimum_workers` (default 0);
  - `max_instances`: the `wn` capability's `max_instances`, else the Compute's
    `scalable` `max_instances`, as written in the template (the types' defaults,
    1 and 1000, are not a choice anyone made): one of them is required;
  - `idle_time`: `deallocate_time` (default 300 s);
  - `workload`: the front end's type: a Kubernetes front end (or an LRMS
    capability of type `kubernetes`) is "kubernetes", an LRMS of type `condor`
    is "htcondor"; with no `lrms` and `dodas.Spark.Worker` workers, "spark" (a
    Spark master is no LRMS front end in the library, so a Spark cluster's
    ElasticCluster names its workers only; its `lrms` is optional for that);
  - `max_booting`, `cooldown`, `poll_interval`, `boot_timeout`: dodas's
    defaults (INDIGO has no such settings).

  Ignored: `secret_token`, `deployment_id`, `orchestrator_url`, `iam_*`,
  `*_credentials`, `hybrid`, `powermanager_plugin`, `im_auth`: how CLUES reached
  the Orchestrator or IM, which dodas's autoscaler, inside dodas, does not need.
  An ElasticCluster over a batch system no reader watches (Slurm, Torque, Mesos,
  ...) gives no policy and stays known only (`model/support.py`).

The autoscaler changes the scaled node's count as `dodas scale` does: through the
input its `scalable.count` reads (one rule for both: `Template.scalable`,
model/template.py). A count the template fixes (INDIGO's elastic templates
start at `count: 0`) is managed by the autoscaler as the deployment's own value
(model/managed.py). A default count outside [min, max] is a warning, not an
error: the autoscaler's first decision brings it within bounds, and starting
outside them (say 0 workers, min 1) is a choice a template may make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dodas.errors import Diagnostic
from dodas.model import managed
from dodas.model.deployment import Node, Policy
from dodas.model.template import Template, type_chain
from dodas.model.values import is_deferred

ELASTIC_POLICY = "tosca.policies.dodas.Elastic"
ELASTIC_CLUSTER = "tosca.nodes.indigo.ElasticCluster"
SPARK_WORKER = "tosca.nodes.dodas.Spark.Worker"
KUBERNETES_FRONT_END = "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes"
LRMS_WORKER = "tosca.nodes.indigo.LRMS.WorkerNode"
WORKLOADS = ("spark", "kubernetes", "htcondor")
#: an LRMS capability's `type` -> the workload dodas reads
LRMS_WORKLOADS = {"kubernetes": "kubernetes", "condor": "htcondor"}
#: what INDIGO does not say (CLUES's MAX_BOOTING_NODES, its 5 s period, ...)
DEFAULTS = {"max_booting": 1, "cooldown": 60, "poll_interval": 5, "boot_timeout": 600}
_TOPO = "topology_template"
_NODES = (_TOPO, "node_templates")

#: (value, node the value belongs to ("" for a policy), YAML path) -> resolved value
Resolve = Callable[[Any, str, tuple], Any]


@dataclass
class Parsed:
    """What the template declares: the policies, the ElasticCluster nodes that
    became policies, and the problems (located)."""

    policies: list[Policy] = field(default_factory=list)
    clusters: set[str] = field(default_factory=set)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


def parse(template: Template, tosca: Any, nodes: dict[str, Node], resolve: Resolve,
          max_per_node: int, limit_hint: str) -> Parsed:
    """Every elasticity policy of the template. `template` is the template as
    written, `tosca` tosca-parser's (for policy types and defaults), `nodes` the
    model's nodes, `resolve` the model builder's function resolver; `max_per_node`
    is the operator's limit of instances per node (`limit_hint` says how to change it)."""
    p = _Parser(template, tosca, nodes, resolve, max_per_node, limit_hint)
    p.policies()
    p.clusters()
    return p.out


class _Parser:
    def __init__(self, template: Template, tosca: Any, nodes: dict[str, Node], resolve: Resolve,
                 max_per_node: int, limit_hint: str) -> None:
        self.template = template
        self.raw_nodes: dict[str, Any] = template.raw_nodes
        self.raw_policies: list[Any] = template.topology.get("policies") or []
        self.parser_policies = {p.name: p for p in (getattr(getattr(tosca, "topology_template", None),
                                                            "policies", None) or [])}
        self.nodes, self.smap, self.resolve = nodes, template.smap, resolve
        self.max_per_node, self.limit_hint = max_per_node, limit_hint
        self.out = Parsed()
        self.owner: dict[str, tuple[str, int]] = {}  # scaled node -> (source, line) of its policy

    # -- dodas's policy -----------------------------------------------------------
    def policies(self) -> None:
        for i, entry in enumerate(self.raw_policies):
            if not isinstance(entry, dict) or len(entry) != 1:
                continue
            (name, body), = entry.items()
            if not isinstance(body, dict):
                continue
            tp = self.parser_policies.get(name)
            if tp is None or ELASTIC_POLICY not in type_chain(getattr(tp, "type_definition", None)):
                continue
            self._policy(str(name), i, body, tp)

    def _policy(self, name: str, i: int, body: dict[str, Any], tp: Any) -> None:
        base = (_TOPO, "policies", i, name)
        who = f'policy "{name}"'
        targets = body.get("targets")
        if not isinstance(targets, list) or len(targets) != 1 or not isinstance(targets[0], str):
            self._error((*base, "targets") if "targets" in body else base,
                        f"{who}: an elastic policy targets one node, the workers' scalable Compute "
                        "(targets: [worker_hosts])", key="targets" not in body)
            return
        target, twhere = targets[0], (*base, "targets", 0)
        if target not in self.nodes:
            return  # tosca-parser reports targets that are not nodes
        node = self.nodes[target]
        if not node.is_compute:
            host = _host_compute(self.nodes, target)
            hint = f'; target its host "{host}"' if host else ""
            self._error(twhere, f'{who}: target "{target}" is a {node.type}, not a Compute node: the autoscaler '
                        f"changes a Compute's instance count{hint}")
            return
        defaults = {o.name: o.value for o in tp.get_properties_objects()}
        given = body.get("properties") if isinstance(body.get("properties"), dict) else {}
        values: dict[str, Any] = {}
        where: dict[str, tuple] = {}
        for key in ("min_instances", "max_instances", "idle_time", "max_booting", "cooldown", "poll_interval",
                    "boot_timeout", "workload"):
            where[key] = (*base, "properties", key) if key in given else base
            raw = given.get(key, defaults.get(key))
            values[key] = self._value(raw, "", where[key], who, key)
        self._add(target, twhere, values, where, f"policy {name}", who)

    # -- INDIGO's ElasticCluster --------------------------------------------------
    def clusters(self) -> None:
        for name, node in self.nodes.items():
            if node.derives_from(ELASTIC_CLUSTER):
                self._cluster(name, node)

    def _cluster(self, name: str, node: Node) -> None:
        who = f'node "{name}"'
        base = (*_NODES, name)
        lrms = next((r.target for r in node.requirements if r.name == "lrms"), None)
        wns = [(self._req_index(name, r.name, r.target), r.target) for r in node.requirements if r.name == "wn"]
        workload = self._workload(lrms, [t for _, t in wns])
        if workload is None:
            return  # a batch system no reader watches: the node stays known only
        if not wns:
            self._error(base, f"{who}: an ElasticCluster needs a wn requirement naming its worker nodes, whose "
                        "host is what scales", key=True)
            return
        if lrms is None and workload != "spark":
            self._error(base, f"{who}: an ElasticCluster needs an lrms requirement naming the front end whose "
                        "queue it watches", key=True)
            return
        source = f"node {name} ({ELASTIC_CLUSTER})"
        given = (self.raw_nodes.get(name) or {}).get("properties") or {}
        made = 0
        for idx, wn in wns:
            rwhere = (*base, "requirements", idx, "wn")
            compute = _host_compute(self.nodes, wn)
            if compute is None:
                self._error(rwhere, f'{who}: worker node "{wn}" runs on no Compute node: nothing to scale')
                continue
            if compute in self.owner and self.owner[compute][0] == source:
                continue  # two worker nodes on one host: one policy
            values, where = self._indigo_bounds(name, wn, compute, base)
            where["idle_time"] = (*base, "properties", "deallocate_time") if "deallocate_time" in given else base
            values["idle_time"] = self._value(node.properties.get("deallocate_time", 300), name,
                                              where["idle_time"], who, "deallocate_time", resolved=True)
            for key, value in DEFAULTS.items():
                values[key], where[key] = value, base
            values["workload"], where["workload"] = workload, base
            made += self._add(compute, rwhere, values, where, source, who)
        if made:
            self.out.clusters.add(name)

    def _indigo_bounds(self, name: str, wn: str, compute: str, base: tuple) -> tuple[dict, dict]:
        who = f'node "{name}"'
        wn_given = _cap_props(self.raw_nodes.get(wn), "wn")
        sc_given = _cap_props(self.raw_nodes.get(compute), "scalable")
        values: dict[str, Any] = {}
        where: dict[str, tuple] = {}
        for key in ("min_instances", "max_instances"):
            if key in wn_given:
                where[key] = (*_NODES, wn, "capabilities", "wn", "properties", key)
                values[key] = self._value(wn_given[key], wn, where[key], f'node "{wn}"', f"wn.{key}")
            elif key in sc_given:
                where[key] = (*_NODES, compute, "capabilities", "scalable", "properties", key)
                values[key] = self._value(sc_given[key], compute, where[key], f'node "{compute}"',
                                          f"scalable.{key}")
            elif key == "min_instances":
                given = "minimum_workers" in ((self.raw_nodes.get(name) or {}).get("properties") or {})
                where[key] = (*base, "properties", "minimum_workers") if given else base
                values[key] = self._value(self.nodes[name].properties.get("minimum_workers", 0), name,
                                          where[key], who, "minimum_workers", resolved=True)
            else:
                where[key] = base
                values[key] = None
                on_wn = (f'worker node "{wn}" a wn capability max_instances, or '
                         if self.nodes[wn].derives_from(LRMS_WORKER) else "")
                self._error(base, f'{who}: no maximum number of workers: give {on_wn}Compute "{compute}" a '
                            "scalable max_instances", key=True)
        return values, where

    def _workload(self, lrms: str | None, wns: list[str]) -> str | None:
        if lrms is None:
            if wns and all(w in self.nodes and self.nodes[w].derives_from(SPARK_WORKER) for w in wns):
                return "spark"
            return "spark" if not wns else None
        front = self.nodes.get(lrms)
        if front is None:
            return None
        if front.derives_from(KUBERNETES_FRONT_END):
            return "kubernetes"
        raw = _cap_props(self.raw_nodes.get(lrms), "lrms").get("type")
        return LRMS_WORKLOADS.get(raw) if isinstance(raw, str) else None

    def _req_index(self, name: str, rname: str, target: str) -> int:
        for i, entry in enumerate((self.raw_nodes.get(name) or {}).get("requirements") or []):
            if isinstance(entry, dict) and rname in entry:
                spec = entry[rname]
                if spec == target or (isinstance(spec, dict) and spec.get("node") == target):
                    return i
        return 0

    # -- shared -------------------------------------------------------------------
    def _value(self, raw: Any, node: str, where: tuple, who: str, key: str, *, resolved: bool = False) -> Any:
        """A property's value, resolved (unless the model did already); None (reported,
        or by an earlier error) when unusable."""
        if raw is None:
            return None
        value = raw if resolved else self.resolve(raw, node, where)
        if value is None:
            return None  # the resolver reported why
        if is_deferred(value):
            self._error(where, f"{who}: {key} must be known when the deployment is planned; get_attribute "
                        "cannot be used here")
            return None
        return value

    def _add(self, target: str, twhere: tuple, v: dict[str, Any], where: dict[str, tuple], source: str,
             who: str) -> int:
        """Check one policy's values together; record it when they hold. 1 if recorded."""
        bad = False
        for key in ("min_instances", "max_instances", "max_booting"):
            value = v.get(key)
            if value is None:
                bad = True
            elif not _whole(value):
                bad = self._error(where[key], f"{who}: {key} must be a whole number, got {value!r}")
        for key in ("idle_time", "cooldown", "poll_interval", "boot_timeout"):
            value = v.get(key)
            if value is None:
                bad = True
            elif not _number(value) or value < 0:
                bad = self._error(where[key], f"{who}: {key} must be a number of seconds, 0 or more, got {value!r}")
        if not bad:
            bad = self._bounds(v, where, who)
        workload = v.get("workload")
        if workload not in WORKLOADS:
            bad = self._error(where["workload"], f"{who}: unknown workload {workload!r}: dodas watches "
                              + ", ".join(WORKLOADS)) if workload is not None else True
        count_input = self._count_input(target, who)
        if count_input is None:
            bad = True
        if target in self.owner:
            other, line = self.owner[target]
            self._error(twhere, f'{who}: node "{target}" already has an elastic policy ({other}, line {line}); '
                        "a node has one")
            return 0
        if bad:
            return 0
        self.owner[target] = (source, self.smap.position(twhere)[0])
        count = self.nodes[target].count
        if not v["min_instances"] <= count <= v["max_instances"]:
            self.out.warnings.append(self.smap.diag(
                self._count_where(target),
                f'node "{target}" starts with {count} instances, outside its elastic bounds '
                f"{v['min_instances']}..{v['max_instances']} ({source}): the autoscaler's first decision "
                "brings it within them"))
        mloc = self.smap.position(where["max_instances"])
        self.out.policies.append(Policy(
            node=target, count_input=count_input, min_instances=v["min_instances"],
            max_instances=v["max_instances"], idle_time=float(v["idle_time"]), max_booting=v["max_booting"],
            cooldown=float(v["cooldown"]), workload=workload, poll_interval=float(v["poll_interval"]),
            boot_timeout=float(v["boot_timeout"]), source=source, max_location=(self.smap.file, *mloc)))
        return 1

    def _bounds(self, v: dict[str, Any], where: dict[str, tuple], who: str) -> bool:
        lo, hi = v["min_instances"], v["max_instances"]
        if lo < 0:
            return self._error(where["min_instances"], f"{who}: min_instances must be 0 or more, got {lo}")
        if hi < 1:
            return self._error(where["max_instances"], f"{who}: max_instances must be 1 or more, got {hi} "
                               "(a cluster that may never have a worker)")
        if lo > hi:
            return self._error(where["min_instances"], f"{who}: min_instances {lo} is more than max_instances {hi}")
        if hi > self.max_per_node:
            return self._error(where["max_instances"], f"{who}: max_instances {hi} is more than the limit of "
                               f"{self.max_per_node} instances per node ({self.limit_hint})")
        if v["max_booting"] < 1:
            return self._error(where["max_booting"], f"{who}: max_booting must be 1 or more, got {v['max_booting']}")
        return False

    def _count_input(self, target: str, who: str) -> str | None:
        """The input `target`'s count reads (the rule of `scale`: Template.scalable);
        for a count the template fixes (INDIGO's `count: 0`), the name under which
        the deployment keeps the count the autoscaler manages (model/managed.py)."""
        found = self.template.scalable.get(target)
        if found is not None and found.input is not None:
            return found.input
        return managed.key(target)

    def _count_where(self, node: str) -> tuple:
        """Where `node`'s count is written, else its type."""
        found = self.template.scalable.get(node)
        return found.path if found is not None else (*_NODES, node, "type")

    def _error(self, where: tuple, message: str, *, key: bool = False) -> bool:
        self.out.errors.append(self.smap.diag(where, message, key=key))
        return True


def _host_compute(nodes: dict[str, Node], name: str) -> str | None:
    seen: set[str] = set()
    cur: str | None = name
    while cur is not None and cur in nodes and cur not in seen:
        seen.add(cur)
        if nodes[cur].is_compute:
            return cur
        cur = nodes[cur].host
    return None


def _cap_props(raw_node: Any, cap: str) -> dict[str, Any]:
    caps = raw_node.get("capabilities") if isinstance(raw_node, dict) else None
    body = caps.get(cap) if isinstance(caps, dict) else None
    props = body.get("properties") if isinstance(body, dict) else None
    return props if isinstance(props, dict) else {}


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
