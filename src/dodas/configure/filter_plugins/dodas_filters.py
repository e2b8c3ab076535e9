"""Jinja2 filters for dodas's playbooks."""

from __future__ import annotations

import re

_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3,
          "tb": 1000**4, "tib": 1024**4}


def dodas_mib(value, default=None):
    """A TOSCA size ("4 GB", "512 MiB", 2048) in MiB; plain numbers are MiB already."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if not m:
        return default
    unit = (m.group(2) or "mib").lower()
    if unit not in _UNITS:
        return default
    return int(float(m.group(1)) * _UNITS[unit] / 1024**2)


class FilterModule:
    def filters(self):
        return {"dodas_mib": dodas_mib, "dodas_helm": dodas_helm, "dodas_kube_version": dodas_kube_version}


def dodas_helm(properties, values_path=None):
    """The helm command lines and rendered values of a HelmInstall node's properties."""
    from dodas.configure import helm

    release = helm.Release.from_properties(dict(properties))
    return {
        "values": release.values,
        "repo_commands": helm.repo_add_commands(release),
        "install_command": helm.install_command(release, values_path if release.values.strip() else None),
        "uninstall_command": helm.uninstall_command(release),
    }


def dodas_kube_version(requested):
    """The Kubernetes minor release the roles install for a requested version."""
    from dodas.configure.kube import map_version

    return map_version(requested)[0]
