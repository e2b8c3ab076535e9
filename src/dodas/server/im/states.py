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

PENDING, RUNNING, CONFIGURED, UNCONFIGURED = "pending", "running", "configured", "unconfigured"
FAILED, DELETING, DELETED, OFF, UNKNOWN = "failed", "deleting", "deleted", "off", "unknown"

# dodas's states as its API shows them (engine/states.py, which a face may not
# import: tests/test_architecture.py; tests/test_im_api.py checks they agree)
_COMPLETE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
_IN_PROGRESS = {"CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"}
_FAILED = {"CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"}
DELETE_IN_PROGRESS, DELETE_COMPLETE, DELETE_FAILED = "DELETE_IN_PROGRESS", "DELETE_COMPLETE", "DELETE_FAILED"
#: instance states: a machine that exists, and the others by name
COMPUTE_READY = {"created", "started"}
INSTANCE = {"initial": PENDING, "creating": PENDING, "configuring": RUNNING, "configured": RUNNING,
            "error": FAILED, "deleting": DELETING, "deleted": DELETED, "missing": OFF}


def machines(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's machines (compute instances), in dodas's order: IM's VMs,
    numbered by their position in this list."""
    return [i for i in view.get("instances") or [] if i.get("kind") == "compute"
            and i.get("state") != "deleted"]


def deployment_state(view: dict[str, Any]) -> str:
    """The IM state of a deployment as operations.view shows it."""
    status = view.get("status")
    work = view.get("work") or []
    if status == DELETE_COMPLETE and not work:
        return DELETED
    if status == DELETE_IN_PROGRESS or any(w["operation"] == "destroy" for w in work):
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
        software_failed = any(i.get("kind") != "compute" and i.get("state") == "error"
                              for i in view.get("instances") or [])
        return UNCONFIGURED if all_running and software_failed and status != DELETE_FAILED else FAILED
    return UNKNOWN


def machine_state(machine: dict[str, Any], deployment: str) -> str:
    """The IM state of one machine, given its deployment's IM state."""
    state = machine.get("state")
    if state in COMPUTE_READY:
        return deployment if deployment in (CONFIGURED, UNCONFIGURED, DELETING) else RUNNING
    return INSTANCE.get(state or "", UNKNOWN)
