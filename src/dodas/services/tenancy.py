"""Every rule of a shared server, in one place: who may see and operate which
deployment, how much each user and group may hold, what may be queued and run
after what, and what `forget` frees.

A server holds a whole community's deployments, so each caller is treated as
a possible attacker. Every face (the v1 API, the dashboard, IM's API, the
remote CLI through the v1 API), the workers and the autoscaler ask here, so
that no face can forget a rule another one keeps:

- A deployment belongs to its creator and, optionally, to one of the
  creator's groups: members read it and, when the operator's group policy
  says so, operate it. The admin group sees and operates everything. What a
  caller may not read does not exist for them (404, never 403), so that
  another user's names are not revealed by probing.
- Quotas (deployments, machines, cores), per user and per group, are checked
  on every path that adds machines: create, apply, scale, IM's count changes,
  the dashboard, a worker carrying the request out (with the quota recorded
  when it was asked), and the autoscaler, which says so in its decision when a
  quota caps it.
- Nothing is queued behind a destroy (409), and a destroyed deployment is made
  again only by an explicit new create (of its owner, or of whoever may
  operate it): an `apply` or a `scale` is refused, at the face and at a worker
  it reaches after the destroy. `forget` drops its records and its owner, so
  that its name is free for anyone.

The server's configuration (server/config.py) is handed in: this module reads
its `user_quota`, `groups`, `admin_group`, `default_providers`, `allow_local`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dodas.errors import DodasError
from dodas.state import queue


@dataclass(frozen=True)
class Caller:
    """The authenticated caller, as the faces see them."""

    key: str
    username: str
    groups: frozenset[str]
    admin: bool

    @classmethod
    def of(cls, identity: Any, cfg: Any) -> Caller:
        groups = frozenset(identity.groups)
        return cls(identity.key, identity.username, groups, bool(cfg.admin_group and cfg.admin_group in groups))


#: the caller of a server without authentication (loopback only: config.check_bind)
LOCAL = Caller("local operator", "local", frozenset(), True)


class Refused(Exception):
    """A request the caller may not make: `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_of(exc: DodasError) -> int:
    """The HTTP status of a failure that is not a refusal: 404 what does not
    exist, 409 a deployment someone else holds or one not in the state the
    operation needs (exit 6: e.g. not elastic), 422 anything else the request
    caused (a bad template, inputs, a provider that cannot take it)."""
    from dodas.state.lock import LockedError
    from dodas.state.store import NotFoundError

    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, LockedError) or exc.exit_code == 6:  # services/lifecycle.WrongStateError
        return 409
    return 422


# -- who may see and operate what ---------------------------------------------------------------
def can_read(caller: Caller, access: Any) -> bool:
    if access is None:
        return caller.admin
    return caller.admin or access.owner == caller.key or (access.group is not None and access.group in caller.groups)


def can_operate(caller: Caller, access: Any, cfg: Any) -> bool:
    if access is None:
        return caller.admin
    if caller.admin or access.owner == caller.key:
        return True
    policy = cfg.groups.get(access.group or "")
    return access.group in caller.groups and policy is not None and policy.operate


def readable(caller: Caller, name: str) -> Any:
    """The deployment's access record when the caller may read it; 404 otherwise,
    the same answer as for a name that does not exist."""
    acc = queue.access(name)
    if acc is None or not can_read(caller, acc):
        raise Refused(404, f'no deployment named "{name}"')
    return acc


def operable(cfg: Any, caller: Caller, name: str) -> Any:
    acc = readable(caller, name)
    if not can_operate(caller, acc, cfg):
        raise Refused(403, f'you may read deployment "{name}" but not change it (its group\'s policy)')
    return acc


def providers_for(caller: Caller, cfg: Any) -> set[str] | None:
    """The providers the caller may deploy on (None: any configured one). The
    local provider runs on the server's own machine: never, unless the operator
    turned it on (checked by type where the provider is built: see allowed())."""
    if caller.admin:
        return None
    mine = [p for g in sorted(caller.groups) if g in cfg.groups for p in cfg.groups[g].providers]
    return set(mine) if mine else set(cfg.default_providers)


def allowed(caller: Caller, cfg: Any):  # a predicate over provider configs
    names = providers_for(caller, cfg)

    def ok(provider_cfg: Any) -> bool:
        if provider_cfg.type == "local" and not cfg.allow_local:
            return False
        return names is None or provider_cfg.name in names
    return ok


# -- the queue: what may follow what ---------------------------------------------------------
def not_being_destroyed(name: str) -> None:
    """Refuse (409) a change to a deployment whose destruction is queued or under
    way, or done: work queued after a destroy would act on what is being taken
    down, and an apply after it would make it again without anyone asking to
    create it."""
    from dodas.engine.states import DeploymentStatus as DS
    from dodas.state.store import Store

    pending = [i.operation for i in queue.items(deployment_name=name, limit=20) if i.status in queue.ACTIVE]
    dep = Store().get(name)
    if "destroy" in pending or (dep is not None and dep.status == DS.DELETE_IN_PROGRESS.value):
        raise Refused(409, f'deployment "{name}" is being destroyed')
    if dep is not None and dep.status == DS.DELETE_COMPLETE.value:
        raise Refused(409, f'deployment "{name}" was destroyed: create it again (POST /api/v1/deployments with its '
                           "name, or dodas up) to make it anew")


def may_create_again(cfg: Any, caller: Caller, access: Any) -> bool:
    """Whether a create of a taken name makes a destroyed deployment anew: only
    one the caller may operate, fully destroyed, with nothing queued for it."""
    from dodas.engine.states import DeploymentStatus as DS
    from dodas.state.store import Store

    if not can_operate(caller, access, cfg):
        return False
    dep = Store().get(access.name)
    pending = any(i.status in queue.ACTIVE for i in queue.items(deployment_name=access.name, limit=20))
    return dep is not None and dep.status == DS.DELETE_COMPLETE.value and not pending


def may_run(item: Any) -> None:
    """A worker's last check before carrying out `item`: an apply or a scale of a
    deployment destroyed meanwhile (queued before the face's check could see the
    destroy) is refused, never a silent re-creation; only a create makes a
    destroyed deployment anew."""
    from dodas.engine.states import DeploymentStatus as DS
    from dodas.state.store import Store

    if item.operation == "destroy" or item.payload.get("create"):
        return
    dep = Store().get(item.deployment_name)
    if dep is not None and dep.status == DS.DELETE_COMPLETE.value:
        raise DodasError(f'deployment "{item.deployment_name}" was destroyed before this {item.operation} ran: '
                         "it is not made again but by a new create")


def forget(cfg: Any, caller: Caller, name: str) -> dict[str, Any]:
    """Drop every record of a destroyed deployment, its owner on this server
    included (services/lifecycle.py): the name is free again and no list shows it."""
    from dodas.engine.states import DeploymentStatus as DS
    from dodas.services import lifecycle
    from dodas.state.store import Store

    operable(cfg, caller, name)
    if any(i.status in queue.ACTIVE for i in queue.items(deployment_name=name, limit=20)):
        raise Refused(409, f'deployment "{name}" has work queued or running: forget it once that is done')
    dep = Store().get(name)
    if dep is None:  # asked for, never made (its creation failed before a worker started it)
        queue.drop_access(name)
        return {"name": name, "id": None, "forgotten": True, "removed": {}}
    if dep.status != DS.DELETE_COMPLETE.value:
        raise Refused(409, f'deployment "{name}" is {dep.status}, not destroyed: destroy it first (forget only '
                           "drops the records of a DELETE_COMPLETE deployment)")
    return lifecycle.forget(name)


# -- quotas ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Usage:
    deployments: int = 0
    instances: int = 0
    cores: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.deployments + other.deployments, self.instances + other.instances,
                     self.cores + other.cores)


def plan_usage(plan: Any) -> Usage:
    """What a plan holds: one deployment, its machines and their cores."""
    computes = plan.compute_instances()
    return Usage(1, len(computes), sum((p.node.compute.num_cpus or 1) if p.node.compute else 1 for p in computes))


def check_quota(kind: str, who: str, quota: Any, current: Usage, wanted: Usage) -> None:
    """Refuse (403) when current + wanted exceeds the quota, naming it."""
    total = current + wanted
    for what in ("deployments", "instances", "cores"):
        bound = getattr(quota, what, None)
        if bound is not None and getattr(total, what) > bound:
            shown = "machines" if what == "instances" else what
            raise Refused(403, f"over the {kind} quota of {who}: {bound} {shown} at most; this request would make "
                               f"{getattr(total, what)} ({getattr(current, what)} in use, {getattr(wanted, what)} "
                               "asked)")


@dataclass(frozen=True)
class Bounds:
    """The quotas a request is held to, as recorded with it: the caller's (None
    for an admin, who has none) and their group's. A worker and the autoscaler
    have no caller: they read this from the request."""

    owner: str
    username: str
    user: tuple[int | None, int | None, int | None] | None
    group: str | None = None
    group_quota: tuple[int | None, int | None, int | None] | None = None

    @classmethod
    def of(cls, caller: Caller, cfg: Any, group: str | None) -> Bounds:
        if caller.admin:
            return cls(caller.key, caller.username, None)
        policy = cfg.groups.get(group or "")
        q = cfg.user_quota
        gq = policy.quota if group and policy is not None else None
        return cls(caller.key, caller.username, (q.deployments, q.instances, q.cores), group if gq else None,
                   (gq.deployments, gq.instances, gq.cores) if gq else None)

    def to_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "username": self.username, "user": self.user, "group": self.group,
                "group_quota": self.group_quota}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Bounds | None:
        if not data:
            return None
        def three(v: Any) -> tuple | None:
            return tuple(v) if v is not None else None
        return cls(data["owner"], data.get("username") or data["owner"], three(data.get("user")),
                   data.get("group"), three(data.get("group_quota")))

    def quotas(self) -> list[tuple[str, str, Usage | None, list[str]]]:
        """(kind, who, bounds, deployments they count over) of each quota that applies."""
        out = []
        if self.user is not None:
            out.append(("user", self.username, _bound(self.user),
                        queue.names_visible_to(self.owner, frozenset(), False)))
        if self.group is not None and self.group_quota is not None:
            out.append(("group", self.group, _bound(self.group_quota),
                        queue.names_visible_to("", frozenset({self.group}), False)))
        return out


def _bound(values: tuple) -> Any:
    """A quota's three bounds as an object with named fields (None: no bound)."""
    return _Quota(*values)


@dataclass(frozen=True)
class _Quota:
    deployments: int | None
    instances: int | None
    cores: int | None


def held(names: list[str]) -> Usage:
    from dodas.services import usage
    return Usage(*usage.held(names))


def check_plan(bounds: Bounds | None, dplan: Any, replacing: str | None, shown: str = "template.yaml") -> None:
    """The quotas `bounds` hold a plan to, over what the same user (and group)
    hold already in their other deployments; `replacing` is the deployment the
    plan changes (what it holds now is replaced by the plan). An elastic node
    may grow to its policy's max: that max must fit the quota too, or the
    template is refused, located at the policy's max_instances."""
    if bounds is None:
        return
    wanted = plan_usage(dplan.plan)
    for kind, who, quota, names in bounds.quotas():
        now = held([n for n in names if n != replacing])
        check_quota(kind, who, quota, now, wanted)
        _elastic_quota(dplan, quota.instances, now.instances, wanted.instances, shown)


def _elastic_quota(dplan: Any, bound: int | None, held_: int, planned: int, shown: str) -> None:
    from dataclasses import replace

    from dodas.elastic.policy import check_quota as policy_fits
    from dodas.errors import TemplateError

    if bound is None:
        return
    for p in dplan.plan.model.elastic:
        now = sum(1 for c in dplan.plan.compute_instances() if c.node.name == p.node)
        problem = policy_fits(p, bound - held_, fixed_machines=planned - now)
        if problem is not None:  # located in the sender's file, not the server's copy
            raise TemplateError([replace(problem, file=shown)])


def recorded_bounds(name: str) -> Bounds | None:
    """The quotas of the latest request that made or changed `name` (None: a
    deployment of the command line, or an admin's: no quota)."""
    for item in queue.items(deployment_name=name, limit=50):
        found = (item.payload.get("options") or {}).get("bounds") if item.operation != "destroy" else None
        if found is not None:
            return Bounds.from_json(found)
    return None


def machine_room(name: str, node_now: int, cores_each: int) -> int | None:
    """How many more machines of one node of `name` (`node_now` of them exist,
    each of `cores_each` cores) the quotas of its owner allow, beside what the
    owner (and the deployment's group) hold elsewhere and the deployment's
    other nodes; None when no quota bounds it (the command line's deployments,
    an admin's). The autoscaler adds no more (elastic/decide.py's quota_left)."""
    bounds = recorded_bounds(name)
    if bounds is None:
        return None
    mine = held([name])
    fixed = Usage(0, max(mine.instances - node_now, 0), max(mine.cores - node_now * cores_each, 0))
    room: int | None = None
    for _kind, _who, quota, names in bounds.quotas():
        others = held([n for n in names if n != name])
        for what, each in (("instances", 1), ("cores", max(cores_each, 1))):
            bound = getattr(quota, what)
            if bound is not None:
                left = max(0, (bound - getattr(others, what) - getattr(fixed, what)) // each - node_now)
                room = left if room is None else min(room, left)
    return room
