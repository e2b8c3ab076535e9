"""Carrying out a server's queued work: the same planning and apply as `dodas up`.

A worker (server/workers.py) leases an item and calls `run`. The item holds
what the request held (template text, inputs, the providers the caller may use)
and nothing of the caller's environment; the work is planned again here, with
a server's rules (dodas's playbooks only, no remote imports, no DODAS_INPUT_
variables, the fetch checks of services/untrusted.py once more, since a name may
resolve elsewhere now than when the request was checked), and applied by the
engine, which reconciles from the recorded per-instance states. That is what
makes a lease taken over from a dead worker safe: re-running an item continues
the deployment where the dead worker left it; nothing is created twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.errors import DodasError
from dodas.model.template import Template
from dodas.services import deploy, planning, recorded, scaling, tenancy, untrusted
from dodas.state import lock, queue
from dodas.state.store import Store
from dodas.tosca.inputs import GivenInput

#: machines created or deleted at once per deployment, as `up --parallelism`'s default
PARALLELISM = 8

#: plans the API made for creations, by work item, for a worker of the same process
_handed: OrderedDict[int, planning.DeploymentPlan] = OrderedDict()
_handed_lock = threading.Lock()
_HANDED_MAX = 256


def hand_over(item_id: int, dplan: planning.DeploymentPlan) -> None:
    """Keep the plan the API just made for a new deployment, so that a worker of
    this process need not make it again (planning is most of a small creation's
    cost). A worker elsewhere, or one that takes the item over, plans anew."""
    with _handed_lock:
        _handed[item_id] = dplan
        while len(_handed) > _HANDED_MAX:
            _handed.popitem(last=False)


def _handed_plan(held: queue.Lease) -> planning.DeploymentPlan | None:
    """The API's plan of a creation, when it still holds: first lease, and the
    deployment still does not exist (the engine re-checks every instance anyway)."""
    with _handed_lock:
        dplan = _handed.pop(held.item.id, None)
    if dplan is None or held.previous is not None or held.item.operation != "apply" or dplan.deployment is not None:
        return None
    return dplan if Store().get(held.item.deployment_name) is None else None


def lock_owner_of(worker: str) -> str:
    """The process of a worker ("host:pid:start#NAME" -> "host:pid:start"): a
    deployment lock held by any thread of it is that worker's (lock.take_over)."""
    return lock.process_of(worker)


# -- the queue, as a worker (server/workers.py) holds it ----------------------------------------
def worker_owner(name: str) -> str:
    """A worker thread's lease owner ("host:pid:start#NAME")."""
    return f"{lock.process()}#{name}"


def lease(owner: str, seconds: float) -> queue.Lease | None:
    return queue.lease(owner, seconds)


def heartbeat(item_id: int, owner: str, seconds: float) -> bool:
    return queue.heartbeat(item_id, owner, seconds)


def finish(item_id: int, owner: str, error: str | None = None) -> bool:
    return queue.finish(item_id, owner, error)


def release(item_id: int, owner: str) -> bool:
    return queue.release(item_id, owner)


def depth() -> int:
    """Work not finished yet; opens (and migrates) the database on first use."""
    return queue.depth()


def run(held: queue.Lease) -> None:
    """Do one leased item; raises DodasError (or worse) when it fails. The
    server's rules are checked once more (services/tenancy.py): nothing but a
    destroy runs on a destroyed deployment, and the plan is held to the quotas
    recorded with the request, over what its owner holds now."""
    item = held.item
    take_over(held)
    if item.operation == "destroy":
        deploy.destroy(item.deployment_name, parallelism=PARALLELISM)
        return
    tenancy.may_run(item)
    work = paths.data_dir() / "server" / "work" / str(item.id)
    try:
        dplan = _handed_plan(held) or _plan(item, work)
        bounds = tenancy.Bounds.from_json((item.payload.get("options") or {}).get("bounds"))
        try:
            tenancy.check_plan(bounds, dplan, replacing=item.deployment_name)
        except tenancy.Refused as exc:
            raise DodasError(exc.message) from None
        deploy.apply(dplan, parallelism=PARALLELISM)
    finally:
        paths.remove_tree(work, paths.data_dir() / "server" / "work")


def take_over(held: queue.Lease) -> None:
    """Before a leased item is worked on: when it was taken over from another
    worker (its lease expired: that worker died, froze or lost its database),
    what that worker left is ended first (_take_over)."""
    if held.previous is not None and lock_owner_of(held.previous) != lock_owner_of(held.owner):
        _take_over(held.item.deployment_name, lock_owner_of(held.previous))


def _take_over(name: str, previous: str) -> None:
    """The item was leased by a worker that is gone: its deployment lock is
    cleared (the lease's expiry proves the holder stopped, which a pid on another
    host cannot), what it left running on this host is stopped, and its
    attempt is ended as interrupted, as after a crash of the command line."""
    store = Store()
    with store.session() as s:
        cleared = lock.take_over(s, name, previous)
    dep = store.get(name)
    if cleared and dep is not None:
        deploy.after_crash(store, dep.id, previous)


def _plan(item: queue.Item, work: Path) -> planning.DeploymentPlan:
    p = item.payload
    options = p.get("options") or {}
    origin = p.get("origin")
    if item.operation == "scale":
        template = Template.read(str(recorded.stored_template_of(item.deployment_name)))
        origin = Store().require(item.deployment_name).template_path
        given = {} if p.get("remove") else scaling.scale_inputs(template, p["node"], int(p["count"]),
                                                                item.deployment_name)
        path = work / "template.yaml"
        paths.write_private(path, template.text)  # the text asked is the text planned
    else:
        path = work / "template.yaml"
        paths.write_private(path, p["template_text"])
        given = {k: GivenInput(v, "<request inputs>", 1, 1) for k, v in (p.get("inputs") or {}).items()}
        given.update({k: GivenInput(v, f"<-i {k}>", 1, 1, from_cli=True)
                      for k, v in (p.get("cli_inputs") or {}).items()})
    shown = (origin or "template.yaml").partition(":")[2] or "template.yaml"
    dplan = untrusted.plan(str(path), name=item.deployment_name, given=given, provider=options.get("provider"),
                           allow_provider=allowed_providers(options), fetch_allow=options.get("fetch_allow") or (),
                           origin=origin, shown=shown, remove=p.get("remove") or ())
    return dplan


def allowed_providers(options: dict[str, Any]) -> Callable[[Any], bool]:
    """The providers the requester could use when they asked (names, or None for
    any), and whether the operator allowed the local provider: recorded with the
    request, since a worker has no caller to ask."""
    names = options.get("providers")
    allow_local = bool(options.get("allow_local"))

    def ok(provider_cfg: Any) -> bool:
        if provider_cfg.type == "local" and not allow_local:
            return False
        return names is None or provider_cfg.name in names
    return ok


def describe_failure(exc: BaseException) -> str:
    """The error recorded on a failed item: dodas's own message (written to be
    shown), or the exception's kind and text with known secrets masked."""
    from dodas.redact import redact

    if isinstance(exc, DodasError):
        return exc.message
    return redact(f"{type(exc).__name__}: {exc}")
