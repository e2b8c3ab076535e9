"""Kubernetes versions for the roles (the `dodas_kube_version` filter): the
knowledge is the model's (`dodas.model.kube`), configure only reads it."""

from dodas.model.kube import SUPPORTED, WEAK_TOKENS, map_version, token_warning  # noqa: F401 - re-exported
