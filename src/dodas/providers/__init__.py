"""Infrastructure providers behind one small interface (see base.py).

Each provider type is one module; this maps a configured provider (config.py) to
an instance of its class, importing only the module needed (boto3 and
openstacksdk are slow to import and optional).
"""

from __future__ import annotations

from dodas.providers.base import Provider, ProviderError
from dodas.providers.config import ProviderConfig
from dodas.providers.config import get as configured
from dodas.ssh_access import Endpoint


def get_provider(name: str) -> Provider:
    """The configured provider called `name`."""
    return build(configured(name))


def build(cfg: ProviderConfig) -> Provider:
    provider = _construct(cfg)
    provider.bastion = bastion_option(cfg)
    try:
        provider.login_timeout = float(cfg.options.get("login_timeout", provider.login_timeout))
    except (TypeError, ValueError):
        raise ProviderError(cfg.name, f"login_timeout must be a number of seconds, "
                            f"not {cfg.options.get('login_timeout')!r}") from None
    return provider


def bastion_option(cfg: ProviderConfig) -> Endpoint | bool | None:
    """The `bastion:` option: an existing host (address, port, user, key) that
    private machines are reached through, or `false` (reach them directly)."""
    value = cfg.options.get("bastion")
    if value is None or value is True:
        return None
    if value is False:
        return False
    try:
        return Endpoint.from_options(f"provider {cfg.name}: bastion", value)
    except ValueError as exc:
        raise ProviderError(cfg.name, str(exc).removeprefix(f"provider {cfg.name}: ")) from None


def _construct(cfg: ProviderConfig) -> Provider:
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
