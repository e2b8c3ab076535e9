"""Jinja2 filters for dodas's playbooks."""

from __future__ import annotations

import re

_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3,
          "tb": 1000**4, "tib": 1024**4}


def dodas_mib(value, default=None):
    """A TOSCA size ("4 GB", "512 MiB", 2048) in MiB; plain numbers are MiB already."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    size = dodas_bytes(value)
    return default if size is None else size // 1024**2


def dodas_bytes(value, default=None):
    """A TOSCA size ("4 GB", "512 MiB") in bytes; a plain number is MiB."""
    if value is None or value == "":
        return default
    if isinstance(value, (int, float)):
        return int(value) * 1024**2
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
    if not m:
        return default
    unit = (m.group(2) or "mib").lower()
    if unit not in _UNITS:
        return default
    return int(float(m.group(1)) * _UNITS[unit])


class FilterModule:
    def filters(self):
        return {"dodas_mib": dodas_mib, "dodas_helm": dodas_helm, "dodas_helm_commands": dodas_helm_commands,
                "dodas_kube_version": dodas_kube_version, "dodas_bytes": dodas_bytes,
                "dodas_xrootd": dodas_xrootd, "dodas_sss_keytab": dodas_sss_keytab,
                "dodas_xrootd_probe_name": dodas_xrootd_probe_name, "dodas_xrootd_probe": dodas_xrootd_probe,
                "dodas_xrootd_admin_dir": dodas_xrootd_admin_dir}


def _plain(value):
    """Ansible's unsafe strings as plain ones (for YAML dumping and hashing)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (str, bool, int, float):  # bool before int: True is an int too
        if isinstance(value, kind):
            return kind(value)
    return value


def _kube(kube, requirements):
    """Where helm runs: a kubernetes provider's cluster (dodas_kube), else the
    front end it is hosted on, which reports where its helm is."""
    if kube:
        return _plain(kube)
    host = (requirements or {}).get("host") or []
    path = ((host[0] or {}).get("attributes") or {}).get("helm") if host else None
    return {"helm": str(path)} if path else None


def dodas_helm(properties, instance_dir, kube=None, deployment_id=None, chart_values=None, secret_values=None,
               requirements=None, fetch_allow=None):
    """The files and helm command lines of one HelmInstall node (configure.helm.plan);
    `fetch_allow` (a list, set on a server's runs) makes dodas fetch what Helm would."""
    from dodas.configure import helm

    return helm.plan(_plain(dict(properties)), str(instance_dir), _kube(kube, requirements),
                     str(deployment_id) if deployment_id else None, _plain(chart_values or {}),
                     _plain(secret_values or {}), None if fetch_allow is None else _plain(list(fetch_allow)))


def dodas_helm_commands(properties, kube=None, requirements=None):
    """helm uninstall and helm test for a release (configure.helm.commands)."""
    from dodas.configure import helm

    return helm.commands(_plain(dict(properties)), _kube(kube, requirements))


def dodas_kube_version(requested):
    """The Kubernetes minor release the roles install for a requested version."""
    from dodas.configure.kube import map_version

    return map_version(requested)[0]


def dodas_xrootd(kind, params):
    """The configuration file of an XRootD service (configure.xrootd): kind is
    origin, redirector or cache; sizes may be TOSCA sizes."""
    from dodas.configure import xrootd

    p = _plain(dict(params))
    for key in ("size_bytes", "block_bytes", "ram_bytes"):
        if key in p:
            p[key] = dodas_bytes(p[key])
    for key in ("high", "low"):
        if key in p:
            p[key] = float(p[key])
    return {"origin": xrootd.origin_config, "redirector": xrootd.redirector_config,
            "cache": xrootd.cache_config}[kind](**p)


def dodas_sss_keytab(secret):
    """The sss keytab line of a deployment's XRootD secret (configure.xrootd.keytab)."""
    from dodas.configure import xrootd

    return xrootd.keytab(str(secret))


def dodas_xrootd_probe_name(deployment_id):
    from dodas.configure import xrootd

    return xrootd.probe_name(str(deployment_id))


def dodas_xrootd_probe(deployment_id):
    from dodas.configure import xrootd

    return xrootd.probe_content(str(deployment_id))


def dodas_xrootd_admin_dir(instance_dir):
    from dodas.configure import xrootd

    return xrootd.admin_dir(str(instance_dir))
