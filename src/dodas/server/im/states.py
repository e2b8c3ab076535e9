"""dodas's states in the Infrastructure Manager's vocabulary.

IM clients (CLUES, the DODAS client, dashboards) poll an infrastructure's state
and wait for `configured`, give up on `failed` or `unconfigured`, and treat
`pending` and `running` as "not yet". dodas says more (the INDIGO orchestrator's
CREATE_IN_PROGRESS ... DELETE_COMPLETE per deployment, engine/states.py per
instance); this module is the one place that says it IM's way:

- a deployment asked for and not started, or with work queued: `pending`;
- being made or changed: `pending` while some machine is still being created,
  `running` once every machine runs (configuration under way);
- CREATE_COMPLETE or UPDATE_COMPLETE: `configured`;
- a failure: `unconfigured` when every machine runs and what failed is
  configuration (a software instance in error), else `failed`;
- a destroy queued or under way: `deleting`; DELETE_COMPLETE: `deleted` (the
  routes answer 404 for it, as IM does for a destroyed infrastructure).

A machine's state: `pending` while created, `running` or `configured` (as its
deployment) once it exists, `failed` on an error, `deleting`, and `off` for a
machine its provider no longer has (found by a refresh).
"""

from __future__ import annotations

from typing import Any

from dodas.engine.states import COMPUTE_READY
from dodas.engine.states import DeploymentStatus as DS
from dodas.engine.states import InstanceState as S

PENDING, RUNNING, CONFIGURED, UNCONFIGURED = "pending", "running", "configured", "unconfigured"
FAILED, DELETING, DELETED, OFF, UNKNOWN = "failed", "deleting", "deleted", "off", "unknown"

_COMPLETE = {DS.CREATE_COMPLETE.value, DS.UPDATE_COMPLETE.value}
_IN_PROGRESS = {DS.CREATE_IN_PROGRESS.value, DS.UPDATE_IN_PROGRESS.value}
_FAILED = {DS.CREATE_FAILED.value, DS.UPDATE_FAILED.value, DS.DELETE_FAILED.value}


def machines(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's machines (compute instances), in dodas's order: IM's VMs,
    numbered by their position in this list."""
    return [i for i in view.get("instances") or [] if i.get("kind") == "compute"
            and i.get("state") != S.DELETED.value]


def deployment_state(view: dict[str, Any]) -> str:
    """The IM state of a deployment as operations.view shows it."""
    status = view.get("status")
    work = view.get("work") or []
    if status == DS.DELETE_COMPLETE.value and not work:
        return DELETED
    if status == DS.DELETE_IN_PROGRESS.value or any(w["operation"] == "destroy" for w in work):
        return DELETING
    if status == "QUEUED" or (work and status not in _IN_PROGRESS):
        return PENDING  # asked for, not started yet
    computes = machines(view)
    all_running = bool(computes) and all(m["state"] in COMPUTE_READY for m in computes)
    if status in _IN_PROGRESS:
        return RUNNING if all_running else PENDING
    if status in _COMPLETE:
        return CONFIGURED
    if status in _FAILED:
        software_failed = any(i.get("kind") != "compute" and i.get("state") == S.ERROR.value
                              for i in view.get("instances") or [])
        return UNCONFIGURED if all_running and software_failed and status != DS.DELETE_FAILED.value else FAILED
    return UNKNOWN


def machine_state(machine: dict[str, Any], deployment: str) -> str:
    """The IM state of one machine, given its deployment's IM state."""
    state = machine.get("state")
    if state in COMPUTE_READY:
        return deployment if deployment in (CONFIGURED, UNCONFIGURED, DELETING) else RUNNING
    return {S.INITIAL.value: PENDING, S.CREATING.value: PENDING, S.ERROR.value: FAILED,
            S.DELETING.value: DELETING, S.DELETED.value: DELETED, S.MISSING.value: OFF}.get(state or "", UNKNOWN)
