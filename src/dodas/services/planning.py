"""Plan against the state: what `up` would do to a deployment, before it does it.

`prepare` does everything `up` does before it takes the lock (naming, inputs
with the earlier ones kept, validation, placement, preflight) and compares the
result with what the state recorded (plan/diff.py). Its `DeploymentPlan` is what
`dodas plan` shows and what `apply` (services/deploy.py) carries out, so the plan
a person confirms is the plan that runs. A face (CLI, server) calls `prepare`,
shows it, asks if `needs_confirmation()` says so, then calls `apply`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dodas.engine.context import RunContext, UnresolvedError
from dodas.engine.states import DeploymentStatus as DS
from dodas.errors import DodasError, TemplateError
from dodas.model import indexes, managed
from dodas.model.deployment import Instance
from dodas.model.template import Template
from dodas.plan import diff
from dodas.plan.plan import MASK, Plan
from dodas.providers import build, config, placement
from dodas.providers.base import ProcessRef
from dodas.services import collect_inputs, plan_given
from dodas.services.recorded import alive_by_machine, stored_plan_or_none, stored_template
from dodas.state.models import Deployment
from dodas.state.store import NotFoundError, Store
from dodas.tosca.inputs import GivenInput

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: an output whose value is only known once `up` has run
AFTER_APPLY = "(known after apply)"


def default_name(template: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(template).stem) or "deployment"
    return stem[:64]


def check_name(name: str) -> None:
    if not name:
        raise DodasError("the deployment name is empty: give a name with --name, or leave --name out to use "
                         "the template file's name")
    if not NAME.match(name):
        raise DodasError(f'"{name}" is not a usable deployment name: use letters, digits, ".", "_" and "-" '
                         "(at most 64, starting with a letter or digit)")


@dataclass
class DeploymentPlan:
    """A plan compared with a deployment's state: what `up` would do."""

    name: str
    template: str
    text: str
    plan: Plan
    #: the deployment it updates; None when `up` would create it
    deployment: Deployment | None
    #: (config, provider) that can take it, in the order `up` tries them
    viable: list[tuple[Any, Any]]
    #: providers placement ranked but preflight refused, with why
    skipped: list[tuple[str, list[str]]]
    changes: list[diff.Change] = field(default_factory=list)
    #: output name -> {"before", "after", "sensitive"} for outputs whose value would change
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: inputs taken from the deployment because they were not given again
    kept_inputs: list[str] = field(default_factory=list)
    #: inputs whose value differs from the deployment's
    changed_inputs: list[str] = field(default_factory=list)
    #: the template the deployment was made from, when this one is another file
    replaces_template: str | None = None
    #: whether the state was compared with what really runs (services, machines)
    refreshed: bool = False
    #: where the template came from when `template` is a copy (a server's request:
    #: "request:NAME.yaml", "catalogue:NAME"): recorded and compared instead of the path
    origin: str | None = None

    @property
    def provider(self) -> str | None:
        return self.viable[0][0].name if self.viable else None

    @property
    def creating(self) -> bool:
        return self.deployment is None

    def summary(self) -> dict[str, int]:
        return diff.summary(self.changes)

    def has_changes(self) -> bool:
        return bool(self.changes) or bool(self.changed_inputs) or self.replaces_template is not None or (
            self.deployment is not None and self.deployment.status not in (DS.CREATE_COMPLETE.value,
                                                                           DS.UPDATE_COMPLETE.value))

    def needs_confirmation(self, interactive: bool) -> str | None:
        return confirmation_reason(self.to_json(), interactive)

    def to_json(self) -> dict[str, Any]:
        out = self.plan.to_json()
        dep = self.deployment
        out.update({
            "deployment": {"name": self.name, "exists": dep is not None, "id": dep.id if dep else None,
                           "status": dep.status if dep else None, "template": dep.template_path if dep else None},
            "provider": self.provider,
            "provider_problems": {n: p for n, p in self.skipped},
            "changes": [c.to_json() for c in self.changes],
            "summary": self.summary(),
            "output_changes": self.outputs,
            "kept_inputs": self.kept_inputs,
            "changed_inputs": self.changed_inputs,
            "replaces_template": self.replaces_template,
            "refreshed": self.refreshed,
            "has_changes": self.has_changes(),
        })
        return out


def confirmation_reason(plan: dict[str, Any], interactive: bool) -> str | None:
    """Why `up` must ask before applying a plan (in its JSON form, so that a face
    holding a server's answer decides alike), or None. Creating a deployment or
    changing nothing never asks; deleting or replacing always does; on a terminal,
    any change to an existing deployment does."""
    if not plan["deployment"]["exists"] or not plan["has_changes"]:
        return None
    deletes = plan["summary"][diff.DELETE]
    if deletes:
        return f"it deletes {deletes} instance{'s' if deletes != 1 else ''}"
    if plan.get("replaces_template"):
        return f"it replaces the deployment made from {plan['replaces_template']}"
    return "it changes an existing deployment" if interactive else None


def resolve_target(target: str, name: str | None) -> tuple[str, str]:
    """(template path, deployment name) for `dodas plan TARGET`: a template file, or
    (without --name) the name of a deployment, planned with its stored template."""
    if Path(target).is_file() or name is not None or target.endswith((".yaml", ".yml")):
        return target, default_name(target) if name is None else name
    dep = Store().get(target)
    if dep is None or dep.status == DS.DELETE_COMPLETE.value:
        raise NotFoundError(f'"{target}" is neither a template file nor a deployment (see `dodas list`)')
    return str(stored_template(dep)), dep.name


def prepare(template: str | Template, *, name: str | None = None, pairs: list[str] | None = None,
            inputs_file: Any = None, provider_name: str | None = None, offline: bool = False,
            max_providers: int = 3, overcommit: bool = False, allow_external_playbooks: bool = False,
            strict: bool = False, refresh: bool = True, require_provider: bool = True,
            allow_provider: Callable[[Any], bool] | None = None, given: dict[str, GivenInput] | None = None,
            environment: bool = True, origin: str | None = None,
            vet: Callable[[Plan], None] | None = None, remove: list[str] | tuple[str, ...] = (),
            replace: list[str] | tuple[str, ...] = ()) -> DeploymentPlan:
    """Everything `up` decides before it changes anything. `vet` (a server's
    rules) sees the plan before placement and preflight, so that a refused value
    is what a sender hears first. `refresh` asks the
    provider whether recorded services still run (as status does); without it,
    the state's records alone are compared. `allow_provider` (a server) limits
    the providers placement may choose; `given` are inputs already collected
    (a server's request), over the files and pairs; `environment` reads
    DODAS_INPUT_ variables (never on a server: its environment is not the
    user's); `origin` names where a copied template came from (a server's
    request), so that another request with the same file is not taken for
    another template. A template the providers placement
    chose all refuse (capacity, missing tools) is an error; with
    `require_provider`, so is one no configured provider is of a kind to take
    (up); without, that is reported in the plan (plan, --plan-only).

    `template` is a file, read here once, or a template the caller read already
    (`dodas scale` asked it for the count's input): what is planned is that
    text, and the same text is what `apply` stores. `remove` names instances to
    take out, the others keeping their indexes (services/removal.py); `replace`
    names lost workers to replace by new ones (the autoscaler's; `refresh` finds
    them from the workload)."""
    tpl = template if isinstance(template, Template) else Template.read(template)
    name = default_name(tpl.path) if name is None else name
    check_name(name)
    store = Store()
    dep = store.get(name)
    # a deployment whose creation failed and left nothing is created afresh (with failover)
    live = dep is not None and dep.status != DS.DELETE_COMPLETE.value and not (
        dep.status == DS.CREATE_FAILED.value and not store.instances(dep.id))
    if live and provider_name and provider_name != dep.provider:
        raise DodasError(f'deployment "{name}" runs on provider "{dep.provider}"; destroy it before deploying it '
                         f'on "{provider_name}"')
    given = {**collect_inputs(pairs, inputs_file), **(given or {})}
    kept: dict[str, GivenInput] = {}
    if live:  # earlier inputs stay unless given again (as helm's --reuse-values), the autoscaler's counts too
        kept = {k: GivenInput(v, f"<inputs kept from deployment {name}>", 1, 1)
                for k, v in dep.inputs.items()
                if (k in tpl.inputs or managed.is_key(k) or indexes.is_key(k)) and k not in given}
    plan = plan_given(tpl, {**kept, **given}, offline=offline,
                      allow_external_playbooks=allow_external_playbooks, strict=strict, environment=environment)
    lost = _lost_workers(name) if live and refresh else []
    lost += [r for r in replace if r not in lost]  # the autoscaler's: lost workers it replaces
    if remove or lost:  # the same plan without the instances named, lost workers replaced (services/removal.py)
        from dodas.services import removal

        why = {}
        for names, replace, said in ((list(remove), False, "removed by name"),
                                     (lost, True, "replaced: the workload lost its worker")):
            if names:
                chosen, removed = removal.removal_inputs(tpl, plan, names, replace=replace)
                given = {**given, **chosen}
                why.update(dict.fromkeys(removed, said))
                plan = plan_given(tpl, {**kept, **given}, offline=offline, strict=strict,
                                  allow_external_playbooks=allow_external_playbooks, environment=environment)
        plan.removed = why
    if vet is not None:
        vet(plan)
    viable, skipped = _place(plan, dep if live else None, provider_name, max_providers, overcommit,
                             require_provider, allow_provider)
    if viable and plan.model.elastic:  # a policy's max the chosen provider cannot hold: said at plan
        from dodas.services import bounds

        found = bounds.warnings(viable[0][0].name, viable[0][1], plan.model)
        if found and strict:
            raise TemplateError(found)
        plan.model.warnings.extend(found)
    out = DeploymentPlan(name, tpl.path, tpl.text, plan, dep if live else None, viable, skipped,
                         kept_inputs=sorted(kept), origin=origin)
    if live:
        _compare(out, store, refresh)
    else:
        out.changes = diff.compare(plan, {}, {})
        out.outputs = {o.name: {"before": None, "after": _shown(o, AFTER_APPLY, False), "sensitive": o.sensitive}
                       for o in plan.model.outputs.values()}
    return out


def _lost_workers(name: str) -> list[str]:
    """The instances of an elastic node whose worker the workload lost while dodas
    has them started (services/elastic_view.py): `up` replaces them."""
    from dodas.services import elastic_view
    from dodas.state import autoscalers

    if name not in autoscalers.names():  # no elasticity policy was applied: nothing to read
        return []
    from dodas.services.autoscale_target import target

    try:
        t = target(name)
    except DodasError:
        return []  # not readable now (no address yet): nothing called lost
    nodes, _ = elastic_view.read_target(t, autoscalers.stored_memory(name))
    return [n["id"] for n in nodes if n["lost"]]


def _place(plan: Plan, dep: Deployment | None, provider_name: str | None, max_providers: int, overcommit: bool,
           require: bool, allow: Callable[[Any], bool] | None = None) -> tuple[list, list]:
    try:
        cands = [config.get(dep.provider)] if dep is not None else placement.candidates(
            plan.model, provider_name, max_providers if allow is None else 1 << 30)
    except DodasError as exc:  # nothing configured can take it: an error for up, a finding for plan
        if require or provider_name:
            raise
        return [], [("placement", [exc.message])]
    if allow is not None:  # a server's caller may use only the providers the operator gave their groups
        refused = [c for c in cands if not allow(c)]
        cands = [c for c in cands if allow(c)][:max(1, max_providers)]
        if not cands:
            names = ", ".join(c.name for c in refused) or "none"
            raise DodasError(f"no provider you may use can take this deployment (placement chose: {names})")
    viable, skipped = [], []
    for cfg in cands:
        provider = build(cfg)
        provider.overcommit = overcommit
        provider.deployment_id = dep.id if dep is not None else None  # what it holds is available to it
        problems = placement.unfit(cfg, plan.model) + provider.preflight(plan.model)
        (skipped.append((cfg.name, problems)) if problems else viable.append((cfg, provider)))
    if not viable:  # known before anything is made: say so, make nothing (plan too: up would fail)
        lines = [p if p.startswith(f"provider {pname}") else f"{pname}: {p}" for pname, probs in skipped for p in probs]
        raise DodasError("cannot deploy on " + ("provider " if len(skipped) == 1 else "any of the providers ")
                         + ", ".join(n for n, _ in skipped) + ":\n  " + "\n  ".join(lines))
    return viable, skipped


def _compare(out: DeploymentPlan, store: Store, refresh: bool) -> None:
    dep = out.deployment
    assert dep is not None
    plan = out.plan
    rows = store.instances(dep.id)
    ctx = RunContext.from_rows(plan.model, dep.id, dep.name, rows)
    recorded = {Instance(*k): diff.Recorded(r.kind, r.state, r.config_hash,
                                            dict((r.attributes or {}).get("_fingerprint") or {}))
                for k, r in rows.items()}
    if refresh:
        out.refreshed = True
        for inst, dead in _dead_services(out, rows).items():
            recorded[inst].dead_services = dead
    desired: dict[Instance, diff.Desired] = {}
    for inst, p in plan.instances.items():
        if p.node.is_compute or inst not in recorded:
            continue
        try:
            desired[inst] = diff.Desired(ctx.fingerprint(inst, p.node), ctx.fingerprint_parts(inst, p.node))
        except UnresolvedError as exc:
            desired[inst] = diff.Desired(unknown=str(exc))
    out.changes = diff.compare(plan, recorded, desired)
    out.changed_inputs = sorted(k for k in set(plan.model.inputs) | set(dep.inputs)
                                if plan.model.inputs.get(k) != dep.inputs.get(k))
    if out.origin is not None:
        if out.text != dep.template_text and out.origin != dep.template_path:
            out.replaces_template = dep.template_path
    elif out.text != dep.template_text and Path(out.template).resolve() != Path(dep.template_path).resolve() \
            and Path(out.template).resolve() != stored_template(dep).resolve():
        out.replaces_template = dep.template_path
    out.outputs = _output_changes(out, store, ctx)


def _dead_services(out: DeploymentPlan, rows: dict) -> dict[Instance, list[str]]:
    """Recorded services that no longer run, asked of the provider by identity."""
    if not out.viable:
        return {}
    provider = out.viable[0][1]
    machines = {k: _machine(r) for k, r in rows.items() if r.kind == "compute" and r.attributes.get("provider_id")}
    asked: dict[tuple[str, int], list[tuple[str, ProcessRef]]] = {}
    for (node, index), row in rows.items():
        compute = (row.attributes or {}).get("_compute")
        if row.state != "started" or not compute or tuple(compute) not in machines:
            continue
        for sname, svc in ((row.attributes or {}).get("services") or {}).items():
            ref = ProcessRef.from_record(svc)
            if ref is not None:
                asked.setdefault(tuple(compute), []).append((f"{node}\0{index}\0{sname}", ref))
    if not asked:
        return {}
    answers = asyncio.run(alive_by_machine(provider, machines, asked))
    dead: dict[Instance, list[str]] = {}
    for label, alive in answers.items():
        if alive is False:
            node, index, sname = label.split("\0")
            dead.setdefault(Instance(node, int(index)), []).append(sname)
    return dead


def _machine(row: Any) -> Any:
    from dodas.providers.base import Machine
    return Machine.from_attributes(row.attributes)


def _output_changes(out: DeploymentPlan, store: Store, ctx: RunContext) -> dict[str, dict[str, Any]]:
    """Outputs whose value would differ after `up`. The earlier values come from
    the same expressions while template and inputs are unchanged (no second
    parse), else from the deployment's stored template."""
    dep = out.deployment
    assert dep is not None
    touched = {c.instance for c in out.changes}
    same_source = out.text == dep.template_text and not out.changed_inputs
    before_plan = out.plan if same_source else stored_plan_or_none(dep)
    before_ctx = ctx if same_source or before_plan is None else RunContext.from_rows(
        before_plan.model, dep.id, dep.name, store.instances(dep.id))
    before = {o.name: (o, _value(before_ctx, o.value)) for o in before_plan.model.outputs.values()} \
        if before_plan is not None else {}
    changes: dict[str, dict[str, Any]] = {}
    for o in out.plan.model.outputs.values():
        after = _value(ctx, o.value) if not _reads(o.value, touched, out.plan.model) else AFTER_APPLY
        was = before.get(o.name, (None, None))[1]
        if o.name not in before or after == AFTER_APPLY or was != after:
            if o.name in before and after == AFTER_APPLY and not touched:
                continue
            changes[o.name] = {"before": _shown(o, was, o.name in before), "after": _shown(o, after, True),
                               "sensitive": o.sensitive}
    for name, (o, was) in before.items():
        if name not in out.plan.model.outputs:
            changes[name] = {"before": _shown(o, was, True), "after": None, "sensitive": o.sensitive}
    return changes


def _reads(value: Any, instances: set[str], model: Any) -> bool:
    """Whether a (deferred) value reads an attribute of a node with a changing instance.
    A secret dodas generates once per deployment (an inference service's token) is
    kept through any change of its node, so reading it does not count: its value now
    is its value after `up`."""
    from dodas.model.values import refs
    nodes = {i.split("[", 1)[0] for i in instances}

    def kept(r: Any) -> bool:
        node = model.nodes.get(r.node)
        return node is not None and r.attribute in node.generated_secrets()

    return any(r.node in nodes and not kept(r) for r in refs(value))


def _value(ctx: RunContext, value: Any) -> Any:
    try:
        return ctx.evaluate(value, None)
    except UnresolvedError:
        return AFTER_APPLY


def _shown(o: Any, value: Any, known: bool) -> Any:
    if not known:
        return None
    if o.sensitive and value != AFTER_APPLY:
        return MASK
    return value


def template_fields(p: DeploymentPlan) -> dict[str, Any]:
    """What the deployment row keeps of the template it was applied with."""
    return dict(template_path=p.origin or str(Path(p.template).resolve()), template_text=p.text,
                template_sha256=hashlib.sha256(p.text.encode()).hexdigest(), inputs=p.plan.model.inputs)

