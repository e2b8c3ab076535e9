"""What the rest of dodas asks of a template, read from its YAML once.

Several operations need a few facts of a template without building its model:
the inputs it declares (to keep a deployment's earlier values, to read
DODAS_INPUT_ variables, to draw a form), the nodes that scale and the input
each count reads (`dodas scale`, the autoscaler, IM's `scalable.count`), and
those counts as a deployment has them. `Template` answers all of them from one
read of the file (`tosca.loader.read_template`, within the operator's limits),
and the same read is what an operation then plans (`services.plan_given`), so
that the text planned is the text stored.

A count is resolved against a deployment's inputs: the value the deployment
was given, the declaration's default only for an input it was never given.
The template's default is not the deployment's count once `-i` or `scale`
changed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from dodas.errors import DodasError
from dodas.tosca.inputs import secret_inputs
from dodas.tosca.loader import LoadedTemplate, TemplateSource, parse_template, read_template
from dodas.yamlsource import SourceMap

#: the scalable capability's properties that give a compute's count, first found wins
COUNT_KEYS = ("count", "default_instances", "min_instances")
_NODES = ("topology_template", "node_templates")


@dataclass(frozen=True)
class DeclaredInput:
    """One input as the template declares it."""

    name: str
    type: str
    description: str
    #: whether planning needs a value: required (TOSCA's default) and without a default
    required: bool
    #: a secret by name, type or `metadata: {sensitive: true}` (tosca/inputs.py's rule)
    secret: bool
    #: (operator, value) in the order written, e.g. ("in_range", [1, 10])
    constraints: tuple[tuple[str, Any], ...] = ()
    has_default: bool = False
    default: Any = None
    #: the type of a list's or map's entries
    entry_schema: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The form a page or a script builds from (a secret's default is never shown)."""
        out: dict[str, Any] = {
            "name": self.name, "type": self.type, "description": self.description, "required": self.required,
            "secret": self.secret, "constraints": [{"operator": op, "value": v} for op, v in self.constraints],
        }
        if self.has_default and not self.secret:
            out["default"] = self.default
        if self.entry_schema is not None:
            out["entry_schema"] = {"type": self.entry_schema}
        return out


@dataclass(frozen=True)
class Scalable:
    """A node whose `capabilities.scalable.properties` give its instance count."""

    node: str
    #: the property that gives the count (COUNT_KEYS: the first written)
    key: str
    #: the count as written: a number, `{get_input: NAME}`, or anything a user typed
    written: Any
    #: the input the count reads, or None when it is written as a value
    input: str | None
    #: IM's `removal_list`: the VMs a caller asks to be removed (as written)
    removal_list: tuple[str, ...] = ()

    @property
    def path(self) -> tuple[str, ...]:
        """Where the count is written, for located messages."""
        return (*_NODES, self.node, "capabilities", "scalable", "properties", self.key)


class Template:
    """A template's facts, from one read of its YAML."""

    def __init__(self, source: TemplateSource) -> None:
        self.source = source

    @classmethod
    def read(cls, path: str) -> Template:
        """The template at `path`, read once (SourceError, located, when it cannot be)."""
        return cls(read_template(path))

    @classmethod
    def parse(cls, text: str, file: str) -> Template:
        """A template sent as text (IM's body); `file` names it in messages."""
        return cls(parse_template(text, file))

    @classmethod
    def of(cls, loaded: LoadedTemplate) -> Template:
        """The facts of a template already loaded (the model builder's)."""
        return cls(TemplateSource(loaded.path, loaded.text, loaded.data, loaded.smap))

    # -- the source ----------------------------------------------------------
    @property
    def path(self) -> str:
        return self.source.path

    @property
    def text(self) -> str:
        return self.source.text

    @property
    def smap(self) -> SourceMap:
        return self.source.smap

    @property
    def data(self) -> dict[str, Any]:
        """The document, or {} when it is not a mapping (the loader says why, located)."""
        return self.source.data if isinstance(self.source.data, dict) else {}

    @property
    def topology(self) -> dict[str, Any]:
        topo = self.data.get("topology_template")
        return topo if isinstance(topo, dict) else {}

    @property
    def raw_nodes(self) -> dict[str, Any]:
        nodes = self.topology.get("node_templates")
        return nodes if isinstance(nodes, dict) else {}

    # -- inputs --------------------------------------------------------------
    @cached_property
    def inputs(self) -> dict[str, DeclaredInput]:
        """The declared inputs, in the order written."""
        decls = self.topology.get("inputs")
        if not isinstance(decls, dict):
            return {}
        secret = secret_inputs(decls, self.data.get("data_types"))
        return {str(name): _declared(str(name), spec, name in secret) for name, spec in decls.items()}

    @property
    def input_names(self) -> set[str]:
        return set(self.inputs)

    # -- scaling -------------------------------------------------------------
    @cached_property
    def scalable(self) -> dict[str, Scalable]:
        """Every node with a count written in its scalable capability."""
        out = {}
        for name, spec in self.raw_nodes.items():
            caps = spec.get("capabilities") if isinstance(spec, dict) else None
            scalable = caps.get("scalable") if isinstance(caps, dict) else None
            props = scalable.get("properties") if isinstance(scalable, dict) else None
            if not isinstance(props, dict):
                continue
            key = next((k for k in COUNT_KEYS if k in props), None)
            if key is None:
                continue
            removal = props.get("removal_list")
            out[str(name)] = Scalable(str(name), key, props[key], input_of(props[key]),
                                      tuple(str(r) for r in removal) if isinstance(removal, list) else ())
        return out

    def count_input(self, node: str) -> str:
        """The input that sets `node`'s instance count: what `scale` and the
        autoscaler change. An error says why a node has none."""
        if node not in self.raw_nodes:
            known = ", ".join(sorted(self.raw_nodes)) or "none"
            raise DodasError(f'the deployment has no node "{node}" (its nodes: {known})')
        found = self.scalable.get(node)
        if found is None:
            raise DodasError(f'node "{node}" has no scalable count (capabilities.scalable.properties.count): it '
                             "is not a node that scales")
        if found.input is None:
            raise DodasError(f'node "{node}" has a fixed count ({found.written!r}), not an input: change it in the '
                             "template and run up")
        return found.input

    def scalable_inputs(self) -> dict[str, str]:
        """The nodes whose count an input sets, with that input (what `scale` can change)."""
        return {name: s.input for name, s in self.scalable.items() if s.input is not None}

    def counts(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Each scalable node's count for a deployment with `inputs`: a count read
        from an input is that input's value in `inputs`, the declared default only
        when `inputs` lacks it (None when neither has one). Values are as given:
        the caller checks that a count is a whole number."""
        out: dict[str, Any] = {}
        for name, s in self.scalable.items():
            if s.input is None:
                out[name] = s.written
            elif s.input in inputs:
                out[name] = inputs[s.input]
            else:
                decl = self.inputs.get(s.input)
                out[name] = decl.default if decl is not None and decl.has_default else None
        return out

    # -- what a catalogue shows ----------------------------------------------
    @property
    def description(self) -> str:
        return str(self.data.get("description") or "").strip()

    @property
    def metadata(self) -> dict[str, Any]:
        """The template's metadata of plain values (name, version, ...)."""
        meta = self.data.get("metadata")
        return {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))} \
            if isinstance(meta, dict) else {}

    @property
    def output_names(self) -> list[str]:
        outs = self.topology.get("outputs")
        return sorted(outs) if isinstance(outs, dict) else []


def input_of(value: Any) -> str | None:
    """The input a value reads when it is `{get_input: NAME}` (or `[NAME]`), else None."""
    if isinstance(value, dict) and len(value) == 1 and "get_input" in value:
        arg = value["get_input"]
        arg = arg[0] if isinstance(arg, list) and len(arg) == 1 else arg
        return arg if isinstance(arg, str) else None
    return None


def type_chain(tdef: Any) -> tuple[str, ...]:
    """A tosca-parser type definition's name and its ancestors', most specific first."""
    names, cur = [], tdef
    while cur is not None:
        names.append(cur.type)
        cur = cur.parent_type
    return tuple(names)


def _declared(name: str, spec: Any, secret: bool) -> DeclaredInput:
    spec = spec if isinstance(spec, dict) else {}
    constraints = []
    for c in spec.get("constraints") or []:
        if isinstance(c, dict) and len(c) == 1:
            (op, value), = c.items()
            constraints.append((str(op), value))
    entry = spec.get("entry_schema")
    return DeclaredInput(
        name=name, type=str(spec.get("type") or "string"), description=str(spec.get("description") or "").strip(),
        required=bool(spec.get("required", True)) and "default" not in spec, secret=secret,
        constraints=tuple(constraints), has_default="default" in spec, default=spec.get("default"),
        entry_schema=str(entry.get("type") or "string") if isinstance(entry, dict) else None)
