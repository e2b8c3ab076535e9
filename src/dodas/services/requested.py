"""What a server's caller asks to change, checked now and queued for a worker:
plan, create, apply, scale, destroy, reconfigure, forget. Every face (the v1
API, the dashboard, IM's API) calls these, so every face keeps the same rules
(tenancy.py): who may operate what, the quotas on every path that adds
machines, and nothing queued behind a destroy.

A request is planned at once with a server's rules (services/untrusted.py), so
that a bad template or an over-quota request is refused before anything is
queued; the worker plans it again (services/jobs.py). Messages name the
sender's file, never the server's copy of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.errors import DodasError
from dodas.services import answers, served, tenancy
from dodas.services.tenancy import Bounds, Caller, Refused
from dodas.state import queue


@dataclass
class Ask:
    """A template (its text, or a catalogue entry's name) and inputs, as a face received them."""

    template: str | None = None
    catalogue: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    #: values as `-i` gives them: text, read as YAML for inputs that are not strings
    cli_inputs: dict[str, str] = field(default_factory=dict)
    #: the sender's file name, to locate messages in
    template_name: str | None = None


def plan(cfg: Any, caller: Caller, name: str, ask: Ask, provider: str | None = None, refresh: bool = False) -> Any:
    """What applying `ask` to deployment `name` would change. A name nobody holds
    is planned as a new deployment; one the caller may not see is a 404."""
    from dodas.state.store import Store

    if not (queue.access(name) is None and Store().get(name) is None):
        tenancy.readable(caller, name)
    return _plan(cfg, caller, name, ask, provider, refresh=refresh)[1]


def plan_new(cfg: Any, caller: Caller, name: str, ask: Ask, provider: str | None = None,
             group: str | None = None) -> Any:
    """The plan of a deployment to be created as `name`: 409 when the name is
    taken, 403 over a quota (as create would say once the plan is confirmed:
    a plan shown for confirmation is one that can be carried out)."""
    again = _check_new_name(cfg, caller, name)
    dplan = _plan(cfg, caller, name, ask, provider)[1]
    if dplan.deployment is not None:
        raise Refused(409, f'the name "{name}" is taken: choose another')
    group = again.group if again is not None else group
    tenancy.check_plan(Bounds.of(caller, cfg, group), dplan, replacing=name if again is not None else None,
                       shown=_shown(ask))
    return dplan


def _check_new_name(cfg: Any, caller: Caller, name: str) -> Any:
    """None for a name nobody holds; the access record of a destroyed deployment
    the caller may operate, which a create makes anew (tenancy.may_create_again);
    409 for any other name that is taken."""
    from dodas.services import planning

    planning.check_name(name)
    acc = queue.access(name)
    if acc is not None and not tenancy.may_create_again(cfg, caller, acc):
        raise Refused(409, f'the name "{name}" is taken: choose another')
    return acc


def scale_plan(cfg: Any, caller: Caller, name: str, counts: dict[str, int]) -> Any:
    """What setting nodes' counts would change: the deployment's template with
    the counts' inputs changed, everything else kept (as services/scaling.py),
    held to the quotas of the caller (403 over one): scaling adds machines as
    surely as creating does."""
    from dodas.services import recorded, scaling

    acc = tenancy.readable(caller, name)
    tenancy.not_being_destroyed(name)
    template = recorded.stored_template_of(name)
    given: dict[str, Any] = {}
    for node, count in counts.items():
        given.update(scaling.scale_inputs(str(template), node, count))
    dplan = _plan(cfg, caller, name, Ask(inputs={k: v.value for k, v in given.items()}))[1]
    tenancy.check_plan(Bounds.of(caller, cfg, acc.group), dplan, replacing=name)
    return dplan


def create(cfg: Any, caller: Caller, name: str, ask: Ask, *, group: str | None = None,
           provider: str | None = None) -> dict[str, Any]:
    """Plan a new deployment now and queue its making; the plan is returned as shown."""
    from dodas.services import jobs

    again = _check_new_name(cfg, caller, name)
    taken = Refused(409, f'the name "{name}" is taken: choose another')
    if group is not None and group not in caller.groups and not caller.admin:
        raise Refused(403, f'you are not a member of group "{group}"')
    if again is not None and group is not None and group != again.group:
        raise Refused(409, f'deployment "{name}" was destroyed in group {again.group or "(none)"}: it is made anew '
                           "there, or forget it first")
    group = again.group if again is not None else group
    text, dplan = _plan(cfg, caller, name, ask, provider)
    if dplan.deployment is not None:
        raise taken
    bounds = Bounds.of(caller, cfg, group)
    tenancy.check_plan(bounds, dplan, replacing=name if again is not None else None, shown=_shown(ask))
    if again is None and not queue.set_access(name, caller.key, caller.username, group):
        raise taken
    # how many instances the plan makes: what a page shows as "0 of N" before a worker recorded any
    payload = {**_payload(name, text, ask, dplan, caller, cfg, bounds, provider=provider), "create": True,
               "planned_instances": len(dplan.plan.instances)}
    shown = plan_json(dplan)  # before a worker may start applying it
    item = queue.enqueue("apply", name, payload, caller.key)
    jobs.hand_over(item.id, dplan)
    return {**served.view(name), "work": [served.work_view(item)], "plan": plan_json(dplan, shown)}


def apply(cfg: Any, caller: Caller, name: str, ask: Ask, *, yes: bool = False) -> dict[str, Any]:
    """Queue applying a new template or inputs; a plan that deletes instances or
    replaces the template needs `yes`."""
    acc = tenancy.operable(cfg, caller, name)
    tenancy.not_being_destroyed(name)
    text, dplan = _plan(cfg, caller, name, ask)
    why = dplan.needs_confirmation(interactive=False)
    if why and not yes:
        raise Refused(409, f"the plan needs confirmation because {why}: send it again with \"yes\": true")
    bounds = Bounds.of(caller, cfg, acc.group if acc else None)
    tenancy.check_plan(bounds, dplan, replacing=name, shown=_shown(ask))
    item = queue.enqueue("apply", name, _payload(name, text, ask, dplan, caller, cfg, bounds), caller.key)
    return {**served.view(name), "work": [served.work_view(item)], "plan": plan_json(dplan)}


def scale(cfg: Any, caller: Caller, name: str, node: str, count: int) -> dict[str, Any]:
    """Queue setting one node's count, once its plan is within the quotas."""
    return scale_many(cfg, caller, name, {node: count})


def scale_many(cfg: Any, caller: Caller, name: str, counts: dict[str, int]) -> dict[str, Any]:
    """Queue setting several nodes' counts (IM's template with new counts): all
    planned and checked together before any is queued."""
    acc = tenancy.operable(cfg, caller, name)
    scale_plan(cfg, caller, name, counts)
    options = _options(caller, cfg, Bounds.of(caller, cfg, acc.group))
    items = [queue.enqueue("scale", name, {"node": node, "count": count, "options": options}, caller.key)
             for node, count in counts.items()]
    return {**served.view(name), "work": [served.work_view(i) for i in items]}


def remove_instances(cfg: Any, caller: Caller, name: str, instances: list[str]) -> dict[str, Any]:
    """Queue removing the instances named ("worker_hosts[3]"; IM's removeresource
    and removal_list): planned now (an instance that does not exist is refused
    here), carried out by a worker as a `scale` whose payload names them; the
    node's other instances keep their indexes (services/removal.py)."""
    acc = tenancy.operable(cfg, caller, name)
    tenancy.not_being_destroyed(name)
    _plan(cfg, caller, name, Ask(), remove=instances)
    options = _options(caller, cfg, Bounds.of(caller, cfg, acc.group))
    item = queue.enqueue("scale", name, {"remove": list(instances), "options": options}, caller.key)
    return {**served.view(name), "work": [served.work_view(item)]}


def destroy(cfg: Any, caller: Caller, name: str) -> dict[str, Any]:
    tenancy.operable(cfg, caller, name)
    item = queue.enqueue("destroy", name, {}, caller.key)
    return {**served.view(name), "work": [served.work_view(item)]}


def forget(cfg: Any, caller: Caller, name: str) -> dict[str, Any]:
    return tenancy.forget(cfg, caller, name)


def reconfigure(cfg: Any, caller: Caller, name: str) -> dict[str, Any]:
    """Queue applying the deployment's own template and inputs again: the engine
    re-checks every instance (a machine its provider lost is made again, a
    configuration that did not finish or whose inputs changed is run again, a
    stopped service is started), and leaves what is as planned untouched."""
    tenancy.operable(cfg, caller, name)
    tenancy.not_being_destroyed(name)
    return apply(cfg, caller, name, Ask())


def plan_json(dplan: Any, made: dict[str, Any] | None = None) -> dict[str, Any]:
    """A plan as a server shows it: its JSON, naming none of the server's files,
    with the template's warnings (located, as the CLI shows them locally)."""
    out = made if made is not None else dplan.to_json()
    model = getattr(getattr(dplan, "plan", None), "model", None)  # the dashboard passes a plan's JSON alone
    warnings = [w.to_dict() for w in getattr(model, "warnings", [])]
    return answers.public_json({**out, "warnings": warnings} if model is not None or "warnings" not in out else out)


# -- helpers -------------------------------------------------------------------------------
def _template_text(cfg: Any, ask: Ask) -> str | None:
    from dodas.services import catalogue as cat

    if ask.template is not None and ask.catalogue is not None:
        raise Refused(422, "give either template or catalogue, not both")
    if ask.catalogue is not None:
        return cat.path_of(cfg.catalogue, ask.catalogue).read_text(encoding="utf-8")
    return ask.template


def _plan(cfg: Any, caller: Caller, name: str, ask: Ask, provider: str | None = None, *,
          remove: list[str] | None = None, refresh: bool = False) -> tuple[str, Any]:
    """Plan as `up` would, with a server's rules, on the providers the caller may use."""
    from dodas.services import untrusted
    from dodas.state.store import Store
    from dodas.tosca.inputs import GivenInput

    text = _template_text(cfg, ask)
    origin = _origin(ask)
    if text is None:  # the deployment's own template
        dep = Store().get(name)
        if dep is None:
            raise Refused(422, "give a template or a catalogue name: the deployment has no template yet")
        text, origin = dep.template_text, dep.template_path
        ask = replace(ask, template_name=ask.template_name or (origin or "").partition(":")[2] or None)
    where = paths.data_dir() / "server" / "requests" / uuid.uuid4().hex
    path = where / "template.yaml"
    paths.write_private(path, text)
    try:
        given = {k: GivenInput(v, "<request inputs>", 1, 1) for k, v in ask.inputs.items()}
        given.update({k: GivenInput(v, f"<-i {k}>", 1, 1, from_cli=True) for k, v in ask.cli_inputs.items()})
        dplan = untrusted.plan(str(path), name=name, given=given, provider=provider,
                               allow_provider=tenancy.allowed(caller, cfg), fetch_allow=cfg.fetch_allow,
                               origin=origin, shown=_shown(ask), remove=remove or (), refresh=refresh)
        return text, dplan
    except DodasError as exc:  # the server's files are named nowhere: its settings are
        raise answers.public_error(exc, _shown(ask), [cfg.catalogue] if cfg.catalogue else ()) from None
    finally:
        paths.remove_tree(where, paths.data_dir() / "server" / "requests")


def _shown(ask: Ask) -> str:
    """The file name messages about the sender's template are located in."""
    return Path(ask.template_name or ask.catalogue or "template.yaml").name


def _origin(ask: Ask) -> str:
    """Where a template sent with a request came from, recorded with the
    deployment: the caller's file name or the catalogue entry (the server only
    ever plans copies, whose paths say nothing)."""
    if ask.catalogue is not None:
        return f"catalogue:{ask.catalogue}"
    return f"request:{Path(ask.template_name or 'template.yaml').name}"


def _payload(name: str, text: str, ask: Ask, dplan: Any, caller: Caller, cfg: Any, bounds: Bounds,
             provider: str | None = None) -> dict:
    """What a worker needs to carry the request out: the template and inputs as
    sent, and the caller's rights at the time of asking (a worker has no caller)."""
    return {"template_text": text, "template_name": Path(ask.template_name or f"{name}.yaml").name,
            "inputs": dict(ask.inputs), "cli_inputs": dict(ask.cli_inputs), "origin": dplan.origin,
            "options": _options(caller, cfg, bounds, provider)}


def _options(caller: Caller, cfg: Any, bounds: Bounds, provider: str | None = None) -> dict[str, Any]:
    """The caller's rights at the time of asking, which a worker plans with (it
    has no caller): the providers, the local provider, fetch_allow, the quotas."""
    names = tenancy.providers_for(caller, cfg)
    return {"provider": provider, "providers": sorted(names) if names is not None else None,
            "allow_local": cfg.allow_local, "fetch_allow": list(cfg.fetch_allow), "bounds": bounds.to_json()}
