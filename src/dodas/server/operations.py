"""What a caller of the server may ask, checked and recorded: the one home of
the server's operations for all its faces (the v1 REST API in routes.py, the
web dashboard in web/, the Infrastructure Manager's API in im/).

Each function takes the server's configuration and the authenticated caller,
checks what the caller may see and do (access.py), plans with a server's rules
(services/untrusted.py) and records work for the workers (state/queue.py);
it raises `Refused` with the HTTP status that fits. A face only turns its
protocol into these calls and their results into its answers. Deployment logic
itself lives in services/.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dodas import paths
from dodas.server import access
from dodas.server.access import Caller, Refused
from dodas.server.config import ServerConfig


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


# -- reading -------------------------------------------------------------------------------
def providers(cfg: ServerConfig, caller: Caller) -> list[dict[str, Any]]:
    from dodas.services import read

    ok = access.allowed(caller, cfg)
    return [{"name": p["name"], "type": p["type"], "rank": p["rank"]} for p in read.providers()
            if ok(SimpleNamespace(name=p["name"], type=p["type"]))]


def deployments(caller: Caller, status: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """The deployments the caller may read, by name, a page at a time; those asked
    for and not started yet are QUEUED. Each row has its owner's name."""
    from dodas.services import read
    from dodas.state import queue

    visible = queue.visible_to(caller.key, caller.groups, caller.admin)
    listed = read.list_deployments(include_deleted=True, names=None if caller.admin else sorted(visible))
    rows = {d["name"]: d for d in listed if d["name"] in visible}
    for name in set(visible) - set(rows):  # asked for, not started yet
        rows[name] = {"name": name, "status": "QUEUED", "id": None, "provider": None}
    items = [{**rows[n], "owner": _owner(visible[n]), "group": visible[n].group if visible[n] else None}
             for n in sorted(rows) if status is None or rows[n].get("status") == status]
    return {"total": len(items), "offset": offset, "items": items[offset:offset + limit]}


def _owner(acc: Any) -> str:
    return acc.owner_name if acc is not None else "(command line)"


def catalogue(cfg: ServerConfig) -> list[dict[str, Any]]:
    """The templates this server offers, each with its inputs described."""
    from dodas.services import catalogue as cat
    return cat.entries(cfg.catalogue)


def catalogue_entry(cfg: ServerConfig, name: str) -> dict[str, Any]:
    from dodas.services import catalogue as cat
    return cat.describe(cat.path_of(cfg.catalogue, name))


def owner_of(name: str) -> str:
    """Who asked for the deployment (the command line's have no owner on the server)."""
    from dodas.state import queue
    return _owner(queue.access(name))


def readable(caller: Caller, name: str) -> Any:
    """The deployment's access record when the caller may read it; 404 otherwise,
    the same answer as for a name that does not exist."""
    from dodas.state import queue

    acc = queue.access(name)
    if acc is None or not access.can_read(caller, acc):
        raise Refused(404, f'no deployment named "{name}"')
    return acc


def operable(cfg: ServerConfig, caller: Caller, name: str) -> Any:
    acc = readable(caller, name)
    if not access.can_operate(caller, acc, cfg):
        raise Refused(403, f'you may read deployment "{name}" but not change it (its group\'s policy)')
    return acc


def view(name: str) -> dict[str, Any]:
    """The deployment as `dodas status --json` shows it, with its pending work."""
    from dodas.services import read
    from dodas.state import queue
    from dodas.state.store import NotFoundError

    try:
        out = read.status(name)
    except NotFoundError:  # asked for, not started yet
        out = {"name": name, "status": "QUEUED", "instances": [], "attempts": []}
    out["work"] = [work_view(i) for i in queue.items(deployment_name=name, limit=20)
                   if i.status in ("queued", "running")]
    return out


def events(name: str, after: int = 0, node: str | None = None, tail: int | None = None) -> list[dict[str, Any]]:
    """Events after id `after`, of one node's instances or all, the last `tail` only when given."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    try:
        return read.events(name, node=node or None, after_id=after, tail=tail)[1]
    except NotFoundError:
        return []


def outputs(cfg: ServerConfig, caller: Caller, name: str, show_secrets: bool = False) -> dict[str, Any]:
    from dodas.services import read

    acc = readable(caller, name)
    if show_secrets and not access.can_operate(caller, acc, cfg):
        raise Refused(403, "sensitive outputs are shown only to those who may operate the deployment")
    return read.outputs(name, show_secrets=show_secrets)


def work_view(item: Any) -> dict[str, Any]:
    return {"id": item.id, "operation": item.operation, "status": item.status, "error": item.error,
            "created_at": item.created_at.isoformat() if item.created_at else None}


# -- planning and changing -----------------------------------------------------------------------
def plan(cfg: ServerConfig, caller: Caller, name: str, ask: Ask, provider: str | None = None) -> Any:
    """What applying `ask` to deployment `name` would change. A name nobody holds
    is planned as a new deployment; one the caller may not see is a 404."""
    from dodas.state import queue
    from dodas.state.store import Store

    if not (queue.access(name) is None and Store().get(name) is None):
        readable(caller, name)
    return _plan(cfg, caller, name, ask, provider)[1]


def plan_new(cfg: ServerConfig, caller: Caller, name: str, ask: Ask, provider: str | None = None) -> Any:
    """The plan of a deployment to be created as `name`: 409 when the name is taken."""
    _check_new_name(name)
    dplan = _plan(cfg, caller, name, ask, provider)[1]
    if dplan.deployment is not None:
        raise Refused(409, f'the name "{name}" is taken: choose another')
    return dplan


def _check_new_name(name: str) -> None:
    from dodas.services import planning
    from dodas.state import queue

    planning.check_name(name)
    if queue.access(name) is not None:
        raise Refused(409, f'the name "{name}" is taken: choose another')


def scale_plan(cfg: ServerConfig, caller: Caller, name: str, node: str, count: int) -> Any:
    """What setting `node`'s count would change: the deployment's template with
    the count's input changed, everything else kept (as services/scaling.py)."""
    from dodas.services import recorded, scaling

    readable(caller, name)
    template = recorded.stored_template_of(name)
    given = scaling.scale_inputs(str(template), node, count)
    return plan(cfg, caller, name, Ask(inputs={k: v.value for k, v in given.items()}))


def create(cfg: ServerConfig, caller: Caller, name: str, ask: Ask, *, group: str | None = None,
           provider: str | None = None) -> dict[str, Any]:
    """Plan a new deployment now and queue its making; the plan is returned as shown."""
    from dodas.services import jobs
    from dodas.state import queue

    _check_new_name(name)
    taken = Refused(409, f'the name "{name}" is taken: choose another')
    if group is not None and group not in caller.groups and not caller.admin:
        raise Refused(403, f'you are not a member of group "{group}"')
    text, dplan = _plan(cfg, caller, name, ask, provider)
    if dplan.deployment is not None:
        raise taken
    _quota(caller, cfg, group, dplan, replacing=None, shown=_shown(ask))
    if not queue.set_access(name, caller.key, caller.username, group):
        raise taken
    payload = _payload(name, text, ask, dplan, caller, cfg, provider=provider)
    shown = dplan.to_json()  # before a worker may start applying it
    item = queue.enqueue("apply", name, payload, caller.key)
    jobs.hand_over(item.id, dplan)
    return {**view(name), "work": [work_view(item)], "plan": shown}


def apply(cfg: ServerConfig, caller: Caller, name: str, ask: Ask, *, yes: bool = False) -> dict[str, Any]:
    """Queue applying a new template or inputs; a plan that deletes instances or
    replaces the template needs `yes`."""
    from dodas.state import queue

    acc = operable(cfg, caller, name)
    text, dplan = _plan(cfg, caller, name, ask)
    why = dplan.needs_confirmation(interactive=False)
    if why and not yes:
        raise Refused(409, f"the plan needs confirmation because {why}: send it again with \"yes\": true")
    _quota(caller, cfg, acc.group if acc else None, dplan, replacing=name, shown=_shown(ask))
    item = queue.enqueue("apply", name, _payload(name, text, ask, dplan, caller, cfg), caller.key)
    return {**view(name), "work": [work_view(item)], "plan": dplan.to_json()}


def scale(cfg: ServerConfig, caller: Caller, name: str, node: str, count: int) -> dict[str, Any]:
    from dodas.state import queue

    operable(cfg, caller, name)
    item = queue.enqueue("scale", name, {"node": node, "count": count, "options": _options(caller, cfg)},
                         caller.key)
    return {**view(name), "work": [work_view(item)]}


def destroy(cfg: ServerConfig, caller: Caller, name: str) -> dict[str, Any]:
    from dodas.state import queue

    operable(cfg, caller, name)
    item = queue.enqueue("destroy", name, {}, caller.key)
    return {**view(name), "work": [work_view(item)]}


# -- helpers -------------------------------------------------------------------------------
def _template_text(cfg: ServerConfig, ask: Ask) -> str | None:
    from dodas.services import catalogue as cat

    if ask.template is not None and ask.catalogue is not None:
        raise Refused(422, "give either template or catalogue, not both")
    if ask.catalogue is not None:
        return cat.path_of(cfg.catalogue, ask.catalogue).read_text(encoding="utf-8")
    return ask.template


def _plan(cfg: ServerConfig, caller: Caller, name: str, ask: Ask, provider: str | None = None) -> tuple[str, Any]:
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
    where = paths.data_dir() / "server" / "requests" / uuid.uuid4().hex
    path = where / "template.yaml"
    paths.write_private(path, text)
    try:
        given = {k: GivenInput(v, "<request inputs>", 1, 1) for k, v in ask.inputs.items()}
        given.update({k: GivenInput(v, f"<-i {k}>", 1, 1, from_cli=True) for k, v in ask.cli_inputs.items()})
        dplan = untrusted.plan(str(path), name=name, given=given, provider=provider,
                               allow_provider=access.allowed(caller, cfg), fetch_allow=cfg.fetch_allow,
                               origin=origin, shown=_shown(ask))
        return text, dplan
    finally:
        paths.remove_tree(where, paths.data_dir() / "server" / "requests")


def _quota(caller: Caller, cfg: ServerConfig, group: str | None, dplan: Any, replacing: str | None,
           shown: str = "template.yaml") -> None:
    """The user's quota over their deployments, and the group's over the group's."""
    from dodas.services import usage
    from dodas.state import queue

    if caller.admin:
        return
    wanted = access.plan_usage(dplan.plan)
    mine = [n for n in queue.names_visible_to(caller.key, frozenset(), False) if n != replacing]
    held = access.Usage(*usage.held(mine))
    access.check_quota("user", caller.username, cfg.user_quota, held, wanted)
    _elastic_quota(dplan, cfg.user_quota.instances, held.instances, wanted.instances, shown)
    policy = cfg.groups.get(group or "")
    if group and policy is not None:
        theirs = [n for n in queue.names_visible_to("", frozenset({group}), False) if n != replacing]
        held = access.Usage(*usage.held(theirs))
        access.check_quota("group", group, policy.quota, held, wanted)
        _elastic_quota(dplan, policy.quota.instances, held.instances, wanted.instances, shown)


def _elastic_quota(dplan: Any, bound: int | None, held: int, planned: int, shown: str) -> None:
    """An elastic node may grow to its policy's max: that max must fit the quota
    too, or the template is refused, located at the policy's max_instances."""
    from dodas.elastic.policy import check_quota
    from dodas.errors import TemplateError

    if bound is None:
        return
    for p in dplan.plan.model.elastic:
        now = sum(1 for c in dplan.plan.compute_instances() if c.node.name == p.node)
        problem = check_quota(p, bound - held, fixed_machines=planned - now)
        if problem is not None:  # located in the sender's file, not the server's copy
            from dataclasses import replace
            raise TemplateError([replace(problem, file=shown)])


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


def _payload(name: str, text: str, ask: Ask, dplan: Any, caller: Caller, cfg: ServerConfig,
             provider: str | None = None) -> dict:
    """What a worker needs to carry the request out: the template and inputs as
    sent, and the caller's rights at the time of asking (a worker has no caller)."""
    return {"template_text": text, "template_name": Path(ask.template_name or f"{name}.yaml").name,
            "inputs": dict(ask.inputs), "cli_inputs": dict(ask.cli_inputs), "origin": dplan.origin,
            "options": _options(caller, cfg, provider)}


def _options(caller: Caller, cfg: ServerConfig, provider: str | None = None) -> dict[str, Any]:
    """The caller's rights at the time of asking, which a worker plans with (it has no caller)."""
    names = access.providers_for(caller, cfg)
    return {"provider": provider, "providers": sorted(names) if names is not None else None,
            "allow_local": cfg.allow_local, "fetch_allow": list(cfg.fetch_allow)}


# -- what a face needs to draw its forms ----------------------------------------------------------
def states(caller: Caller, name: str) -> dict[str, Any]:
    """Status, instances' states and attempts from the state alone (what a page
    following the deployment polls); a deployment not started yet is QUEUED."""
    from dodas.services import read
    from dodas.state import queue
    from dodas.state.store import NotFoundError

    readable(caller, name)
    try:
        out = read.states(name)
    except NotFoundError:
        out = {"name": name, "status": "QUEUED", "reason": None, "provider": None, "instances": [], "attempts": []}
    recent = queue.items(deployment_name=name, limit=20)
    out["work"] = [work_view(i) for i in recent if i.status in ("queued", "running")]
    out["requests"] = [work_view(i) for i in recent[:5]]
    return out


def topology(caller: Caller, name: str) -> dict[str, Any] | None:
    """The deployment's nodes and what each needs; None before a worker made it."""
    from dodas.services import read
    from dodas.state.store import NotFoundError

    readable(caller, name)
    try:
        return read.topology(name)
    except NotFoundError:
        return None


def settings(caller: Caller, name: str) -> dict[str, Any]:
    """What the deployment's forms show: its template's inputs (as the catalogue
    describes them), the current values of those that are not secret, and the
    nodes that scale with their current counts."""
    from dodas.model.template import Template
    from dodas.services import recorded, scaling
    from dodas.state.store import NotFoundError, Store

    readable(caller, name)
    try:
        template = Template.read(str(recorded.stored_template_of(name)))
    except NotFoundError:
        return {"inputs": [], "values": {}, "scalable": {}}
    dep = Store().require(name)
    values = {k: v for k, v in dep.inputs.items() if not (k in template.inputs and template.inputs[k].secret)}
    return {"inputs": [i.to_json() for i in template.inputs.values()], "values": values,
            "scalable": scaling.counts(template, dep.inputs)}


# -- for the Infrastructure Manager's API (im/) ---------------------------------------------
def template(caller: Caller, name: str) -> str:
    """The deployment's template text, as it was sent (of a creation not started
    yet: the text its queued work carries)."""
    from dodas.state import queue
    from dodas.state.store import Store

    readable(caller, name)
    dep = Store().get(name)
    if dep is not None:
        return dep.template_text
    for item in queue.items(deployment_name=name, limit=20):
        if item.operation == "apply" and "template_text" in item.payload:
            return item.payload["template_text"]
    raise Refused(404, f'deployment "{name}" has no template')


def sent_counts(caller: Caller, name: str, text: str) -> dict[str, tuple[int, tuple[str, ...]]]:
    """The count a template sent to IM's API asks of each node that has one, with
    its removal_list: a count read from an input is the deployment's value of
    that input, as `dodas scale` left it, not the sent template's default."""
    from dodas.services import scaling
    from dodas.state.store import Store

    readable(caller, name)
    dep = Store().get(name)
    return scaling.sent_counts(text, dict(dep.inputs) if dep is not None else {})


def not_being_destroyed(name: str) -> None:
    """Refuse (409) a change to a deployment whose destruction is queued or under
    way: work queued after a destroy would act on what is being taken down."""
    from dodas.state import queue
    from dodas.state.store import Store

    pending = [i.operation for i in queue.items(deployment_name=name, limit=20) if i.status in ("queued", "running")]
    dep = Store().get(name)
    if "destroy" in pending or (dep is not None and dep.status == "DELETE_IN_PROGRESS"):
        raise Refused(409, f'deployment "{name}" is being destroyed')


def reconfigure(cfg: ServerConfig, caller: Caller, name: str) -> dict[str, Any]:
    """Queue applying the deployment's own template and inputs again: the engine
    re-checks every instance (a machine its provider lost is made again, a
    configuration that did not finish or whose inputs changed is run again, a
    stopped service is started), and leaves what is as planned untouched."""
    operable(cfg, caller, name)
    not_being_destroyed(name)
    return apply(cfg, caller, name, Ask())
