"""Who may see and do what on the server, and how much of it.

A deployment belongs to its creator and, optionally, to one of the creator's
groups: members read it and, when the operator's group policy says so, operate
it. The admin group sees and operates everything. Anything a caller may not
read does not exist for them: the routes answer 404, never 403, so that another
user's deployment names are not revealed by probing.

Quotas (deployments, machines, cores) are the operator's, per user and per
group; a request over one is refused naming the quota and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dodas.server.config import Quota, ServerConfig


@dataclass(frozen=True)
class Caller:
    """The authenticated caller, as the routes see them."""

    key: str
    username: str
    groups: frozenset[str]
    admin: bool

    @classmethod
    def of(cls, identity: Any, cfg: ServerConfig) -> Caller:
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


def can_read(caller: Caller, access: Any) -> bool:
    if access is None:
        return caller.admin
    return caller.admin or access.owner == caller.key or (access.group is not None and access.group in caller.groups)


def can_operate(caller: Caller, access: Any, cfg: ServerConfig) -> bool:
    if access is None:
        return caller.admin
    if caller.admin or access.owner == caller.key:
        return True
    policy = cfg.groups.get(access.group or "")
    return access.group in caller.groups and policy is not None and policy.operate


def providers_for(caller: Caller, cfg: ServerConfig) -> set[str] | None:
    """The providers the caller may deploy on (None: any configured one). The
    local provider runs on the server's own machine: never, unless the operator
    turned it on (checked by type where the provider is built: see allowed())."""
    if caller.admin:
        return None
    mine = [p for g in sorted(caller.groups) if g in cfg.groups for p in cfg.groups[g].providers]
    return set(mine) if mine else set(cfg.default_providers)


def allowed(caller: Caller, cfg: ServerConfig):  # a predicate over provider configs
    names = providers_for(caller, cfg)

    def ok(provider_cfg: Any) -> bool:
        if provider_cfg.type == "local" and not cfg.allow_local:
            return False
        return names is None or provider_cfg.name in names
    return ok


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


def check_quota(kind: str, who: str, quota: Quota, current: Usage, wanted: Usage) -> None:
    """Refuse (403) when current + wanted exceeds the quota, naming it."""
    total = current + wanted
    for what in ("deployments", "instances", "cores"):
        bound = getattr(quota, what)
        if bound is not None and getattr(total, what) > bound:
            shown = "machines" if what == "instances" else what
            raise Refused(403, f"over the {kind} quota of {who}: {bound} {shown} at most; this request would make "
                               f"{getattr(total, what)} ({getattr(current, what)} in use, {getattr(wanted, what)} "
                               "asked)")
