"""Kubernetes versions and tokens: what the front-end and worker roles install,
known to the model (the plan warns of a version it maps, of a placeholder token)
and read by the roles through a filter (configure/kube.py).

Old DODAS templates ask for versions (1.14, 1.17) that no package repository
serves any more: the community repositories (pkgs.k8s.io) start at 1.24 and the
roles are written for the releases in SUPPORTED. A version outside is mapped to
the nearest supported one, and the plan says so.
"""

from __future__ import annotations

import re

#: minor releases the roles install (pkgs.k8s.io/core:/stable:/v1.X)
SUPPORTED = ((1, 29), (1, 30), (1, 31), (1, 32), (1, 33))
#: values that are placeholders, not secrets: a template that sets one gets a warning
WEAK_TOKENS = {"testme", "changeme", "admin", "password", "secret", "token", "test", ""}


def map_version(requested: str | None) -> tuple[str, str | None]:
    """(minor to install, e.g. "1.31", and a warning or None)."""
    default = "%d.%d" % SUPPORTED[-1]
    if not requested:
        return default, None
    m = re.match(r"^v?(\d+)\.(\d+)", str(requested).strip())
    if not m:
        return default, f'kube_version "{requested}" is not a version; installing {default}'
    want = (int(m.group(1)), int(m.group(2)))
    if want in SUPPORTED:
        return "%d.%d" % want, None
    nearest = min(SUPPORTED, key=lambda v: (abs((v[0] - want[0]) * 100 + v[1] - want[1]), v))
    chosen = "%d.%d" % nearest
    return chosen, (f'kube_version "{requested}" can no longer be installed; installing {chosen}, the nearest '
                    f"supported release ({', '.join('%d.%d' % v for v in SUPPORTED)})")


def token_warning(value: object) -> str | None:
    if isinstance(value, str) and value.strip().lower() in WEAK_TOKENS:
        return ("admin_token is a well-known placeholder: anyone who reads the template can use the "
                "cluster. Leave it out and dodas generates one for this deployment")
    return None
