"""Infrastructure providers behind one small interface (see base.py).

Each provider type is one module; this maps a configured provider (config.py) to
an instance of its class, importing only the module needed (boto3 and
openstacksdk are slow to import and optional).
"""

from __future__ import annotations

from dodas.providers.base import Provider
from dodas.providers.config import ProviderConfig
from dodas.providers.config import get as configured


def get_provider(name: str) -> Provider:
    """The configured provider called `name`."""
    return build(configured(name))


def build(cfg: ProviderConfig) -> Provider:
    if cfg.type == "local":
        from dodas.providers.local import LocalProvider
        return LocalProvider(cfg)
    if cfg.type == "simulated":
        from dodas.providers.simulated import SimulatedProvider
        return SimulatedProvider(cfg)
    if cfg.type == "ec2":
        from dodas.providers.ec2 import EC2Provider
        return EC2Provider(cfg)
    if cfg.type == "openstack":
        from dodas.providers.openstack import OpenStackProvider
        return OpenStackProvider(cfg)
    if cfg.type == "ssh":
        from dodas.providers.ssh import SSHProvider
        return SSHProvider(cfg)
    if cfg.type == "kubernetes":
        from dodas.providers.kubernetes import KubernetesProvider
        return KubernetesProvider(cfg)
    raise AssertionError(cfg.type)
