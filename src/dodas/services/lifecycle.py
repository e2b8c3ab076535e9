"""`destroy` with a lock timeout, `unlock` and `forget`: the operations on a
deployment's record around `up` (services/deploy.py carries out up and destroy).

Each answers with plain data that the faces render (text or --json), and
refuses, changing nothing, when the deployment is not in the state it needs:
`unlock` of a deployment nobody holds, `forget` of one not destroyed.
"""

from __future__ import annotations

from typing import Any

from dodas import paths
from dodas.engine.states import DeploymentStatus as DS
from dodas.errors import DodasError
from dodas.services import deploy
from dodas.state import lock, queue
from dodas.state.models import Deployment
from dodas.state.store import Store


class WrongStateError(DodasError):
    """The deployment is not in the state the command needs (README, "Exit codes")."""

    exit_code = 6


def holder_view(dep: Deployment) -> dict[str, Any] | None:
    """Who holds a deployment's lock: owner, pid, host, since when (ISO 8601, UTC), alive."""
    if not dep.lock_owner:
        return None
    h = lock.holder(dep.lock_owner)
    since = dep.lock_acquired_at
    if since is not None and since.tzinfo is None:
        from datetime import timezone
        since = since.replace(tzinfo=timezone.utc)
    return {"owner": dep.lock_owner, "pid": h.pid, "host": h.host, "alive": h.alive,
            "since": since.isoformat() if since else None}


def destroy(name: str, *, parallelism: int, lock_timeout: float = 0.0, **kwargs: Any) -> dict[str, Any]:
    """`deploy.destroy` (given `kwargs`: its progress listener), waiting up to
    `lock_timeout` seconds for another dodas's lock on the deployment (the lock is
    taken here, by this thread, and the destroy then holds it as its own: the
    lock is re-entrant for the thread holding it)."""
    if parallelism < 1:
        raise DodasError("--parallelism must be at least 1")
    if lock_timeout > 0:
        store = Store()
        dep = store.require(name)
        me = lock.me()
        with store.session() as s:
            stale = lock.acquire_waiting(s, s.get(Deployment, dep.id), me, lock_timeout)
        try:
            if stale:
                deploy.after_crash(store, dep.id, stale)
            deploy.destroy(name, parallelism=parallelism, **kwargs)
        finally:
            deploy._record(deploy._release, store, dep.id, me)
    else:
        deploy.destroy(name, parallelism=parallelism, **kwargs)
    return {"name": name, "status": DS.DELETE_COMPLETE.value}


def unlock(name: str, force: bool = False) -> dict[str, Any]:
    """Clear a deployment's lock (`deploy.unlock`'s rules: refused while its holder
    runs, or is on another host, unless `force`, which never clears a live holder
    of this host). A deployment nobody holds is a
    WrongStateError: nothing is changed, and nothing was there to clear."""
    store = Store()
    dep = store.require(name)
    held = holder_view(dep)
    if held is None:
        raise WrongStateError(f'deployment "{name}" is not locked: there is nothing to unlock (status '
                              f"{dep.status})")
    owner = deploy.unlock(name, force=force)
    if owner is None:  # its holder finished between our two reads
        raise WrongStateError(f'deployment "{name}" is not locked any more: its holder finished')
    return {"name": name, "unlocked": True, "forced": force, "holder": held}


def forget(name: str) -> dict[str, Any]:
    """Drop every record of a destroyed deployment (DELETE_COMPLETE): its row,
    instances, events, attempts, its kept template under the data directory,
    and its owner on a server sharing this database (state/queue.py: else the
    name would stay taken and its owner's list would show it as QUEUED).
    Anything else is refused: what it made may still exist, and its record is
    what `destroy` needs to find it."""
    store = Store()
    dep = store.require(name)
    _must_be_destroyed(dep)
    me = lock.me()
    with store.session() as s:  # no up or destroy may start on it while it goes
        lock.acquire(s, s.get(Deployment, dep.id), me)
    try:
        now = store.get(name)
        if now is None or now.id != dep.id:
            raise WrongStateError(f'deployment "{name}" changed while being forgotten: try again')
        _must_be_destroyed(now)
        counts = {"instances": len(store.instances(dep.id)), "attempts": len(store.attempts(dep.id)),
                  "events": len(store.events(dep.id, limit=10**9))}
        store.forget(dep.id)
        queue.drop_access(name)
    except BaseException:
        deploy._record(deploy._release, store, dep.id, me)
        raise
    base = paths.data_dir() / "deployments"
    paths.remove_tree(base / paths.component(dep.id), base)
    return {"name": name, "id": dep.id, "forgotten": True, "removed": counts}


def _must_be_destroyed(dep: Deployment) -> None:
    if dep.status != DS.DELETE_COMPLETE.value:
        raise WrongStateError(f'deployment "{dep.name}" is {dep.status}, not destroyed: run "dodas destroy '
                              f'{dep.name}" first (forget only drops the records of a DELETE_COMPLETE deployment)')
