"""Instance and deployment states.

Deployment states use the INDIGO PaaS Orchestrator's vocabulary, which DODAS
users and dashboards already know.
"""

from __future__ import annotations

from enum import Enum


class InstanceState(str, Enum):
    INITIAL = "initial"
    CREATING = "creating"
    CREATED = "created"
    CONFIGURING = "configuring"
    CONFIGURED = "configured"
    STARTED = "started"
    ERROR = "error"
    DELETING = "deleting"
    DELETED = "deleted"
    #: a machine the provider no longer has, though dodas made it (found by `dodas refresh`)
    MISSING = "missing"


class DeploymentStatus(str, Enum):
    CREATE_IN_PROGRESS = "CREATE_IN_PROGRESS"
    CREATE_COMPLETE = "CREATE_COMPLETE"
    CREATE_FAILED = "CREATE_FAILED"
    UPDATE_IN_PROGRESS = "UPDATE_IN_PROGRESS"
    UPDATE_COMPLETE = "UPDATE_COMPLETE"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"
    DELETE_COMPLETE = "DELETE_COMPLETE"
    DELETE_FAILED = "DELETE_FAILED"


#: states in which a compute instance exists and can be used
COMPUTE_READY = {InstanceState.CREATED.value, InstanceState.STARTED.value}
