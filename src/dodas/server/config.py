"""The server's configuration: `server.yaml` in dodas's config directory (or
`--config FILE`), then `DODAS_SERVER_*` environment variables.

    bind: 127.0.0.1:8300
    issuers:                          # trusted OIDC issuers (IAM, Check-in, Keycloak)
      - url: https://iam.example.org/
        audience: dodas               # checked when set
        groups_claim: wlcg.groups     # groups, wlcg.groups or eduperson_entitlement
    admin_group: /dodas/admins        # sees and operates every deployment
    user_quota: {deployments: 5, instances: 50, cores: 100}
    groups:                           # what each group may use, and its quota
      /cms: {providers: [cloud-a, cloud-b], quota: {deployments: 20, cores: 400}}
    default_providers: []             # for users in no configured group (empty: none)
    allow_local: false                # the local provider runs on the server's own machine
    fetch_allow: []                   # private ranges/hosts a values_url may reach
    max_body_bytes: 1048576           # larger requests get 413
    catalogue: /srv/dodas/templates   # the templates the server offers
    processes: 1                      # API processes on the one port (as many as cores for read load)
    workers: 1                        # in-process workers, in each process (0: run `python -m dodas.server.workers`)
    lease_seconds: 30                 # a dead worker's work is taken over after this long
    cli_client_id: dodas-cli          # the public client `dodas login` uses at the issuers (device flow)
    dashboard:                        # the web pages under /web (OIDC authorization code flow with PKCE)
      client_id: dodas-dashboard      # registered at the issuer with redirect URI PUBLIC_URL/web/callback
      issuer: https://iam.example.org/  # one of `issuers` (default: the first)
      public_url: https://dodas.example.org  # how browsers reach the server (default: http://BIND)
      session_hours: 8
    im_cloud_credentials: refuse      # cloud lines in an IM Authorization header: refuse (403) or ignore

A server without issuers runs without authentication, and refuses to unless it is
bound to loopback: that is for trying it out on one's own machine only.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dodas import paths
from dodas.errors import DodasError

CONFIG_FILE = "server.yaml"
KEYS = {"bind", "issuers", "admin_group", "user_quota", "groups", "default_providers", "allow_local",
        "fetch_allow", "max_body_bytes", "catalogue", "processes", "workers", "lease_seconds", "cli_client_id",
        "dashboard", "im_cloud_credentials"}


@dataclass(frozen=True)
class Quota:
    """Upper bounds per user or per group; None is no bound."""

    deployments: int | None = None
    instances: int | None = None
    cores: int | None = None

    @classmethod
    def parse(cls, data: Any, where: str) -> Quota:
        data = data or {}
        if not isinstance(data, dict) or set(data) - {"deployments", "instances", "cores"}:
            raise DodasError(f"{where}: a quota is a mapping of deployments, instances and cores")
        for k, v in data.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise DodasError(f"{where}.{k}: {v!r} is not a count (a whole number, 0 or more)")
        return cls(**data)


@dataclass(frozen=True)
class GroupPolicy:
    providers: tuple[str, ...] = ()
    quota: Quota = Quota()
    #: members may operate (apply, scale, destroy) the group's deployments, not only read them
    operate: bool = True


@dataclass(frozen=True)
class DashboardConfig:
    """The web dashboard's OIDC client at the issuer (a public client with PKCE,
    or a confidential one when `client_secret` is set: from the environment's
    DODAS_SERVER_DASHBOARD_SECRET, never from the file, so that it is not kept in
    plain text beside the rest)."""

    client_id: str = "dodas-dashboard"
    issuer: str | None = None
    public_url: str | None = None
    session_hours: float = 8.0
    client_secret: str | None = field(default=None, repr=False)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8300
    issuers: list[Any] = field(default_factory=list)  # auth.IssuerConfig
    admin_group: str | None = None
    user_quota: Quota = Quota()
    groups: dict[str, GroupPolicy] = field(default_factory=dict)
    default_providers: tuple[str, ...] = ()
    allow_local: bool = False
    fetch_allow: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    catalogue: Path | None = None
    processes: int = 1
    workers: int = 1
    lease_seconds: float = 30.0
    cli_client_id: str = "dodas-cli"
    dashboard: DashboardConfig = field(default_factory=lambda: DashboardConfig())
    im_cloud_credentials: str = "refuse"

    @property
    def authenticated(self) -> bool:
        return bool(self.issuers)

    def check_bind(self) -> None:
        """No authentication is for one's own machine: refuse anything but loopback."""
        if self.authenticated:
            return
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        if not loopback:
            raise DodasError(f"refusing to serve on {self.host} without authentication: configure `issuers:` in "
                             f"{config_path()} (or bind to 127.0.0.1 to try the server out)")


def config_path() -> Path:
    return paths.config_dir() / CONFIG_FILE


def default_catalogue() -> Path | None:
    """The templates shipped with dodas: package data (`dodas/templates`), so an
    installed server offers the same catalogue as a source tree (where the
    top-level `templates/` is a link to it)."""
    here = Path(__file__).resolve().parents[1] / "templates"
    return here if here.is_dir() else None


def load(path: str | None = None) -> ServerConfig:
    """The configuration file (when there is one) and the environment over it."""
    from dodas import settings
    from dodas.yamlsource import read_yaml

    file = Path(path) if path else config_path()
    data: dict[str, Any] = {}
    if path or file.exists():
        loaded, _ = read_yaml(file, "server configuration", limits=settings.limits())
        if loaded is not None and not isinstance(loaded, dict):
            raise DodasError(f"{file}: the server configuration is a mapping (bind, issuers, ...)")
        data = loaded or {}
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise DodasError(f"{file}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    env = os.environ
    cfg = ServerConfig()
    bind = env.get("DODAS_SERVER_BIND") or data.get("bind")
    if bind:
        host, _, port = str(bind).rpartition(":")
        if not host or not port.isdigit():
            raise DodasError(f'bind "{bind}" is not HOST:PORT')
        cfg.host, cfg.port = host.strip("[]"), int(port)
    cfg.issuers = _issuers(data.get("issuers"), env.get("DODAS_SERVER_ISSUER"), env.get("DODAS_SERVER_AUDIENCE"))
    cfg.admin_group = env.get("DODAS_SERVER_ADMIN_GROUP") or data.get("admin_group")
    cfg.user_quota = Quota.parse(data.get("user_quota"), "user_quota")
    for name, g in (data.get("groups") or {}).items():
        if not isinstance(g, dict):
            raise DodasError(f"groups.{name}: a mapping of providers, quota and operate")
        cfg.groups[str(name)] = GroupPolicy(tuple(g.get("providers") or ()), Quota.parse(g.get("quota"),
                                                                                        f"groups.{name}.quota"),
                                            bool(g.get("operate", True)))
    cfg.default_providers = tuple(data.get("default_providers") or ())
    cfg.allow_local = _bool(env.get("DODAS_SERVER_ALLOW_LOCAL"), data.get("allow_local", False))
    cfg.fetch_allow = tuple(data.get("fetch_allow") or ())
    cfg.max_body_bytes = int(env.get("DODAS_SERVER_MAX_BODY_BYTES") or data.get("max_body_bytes") or cfg.max_body_bytes)
    cat = env.get("DODAS_SERVER_CATALOGUE") or data.get("catalogue")
    cfg.catalogue = Path(cat) if cat else default_catalogue()
    cfg.processes = _count("processes", env.get("DODAS_SERVER_PROCESSES") or data.get("processes", 1), least=1)
    cfg.workers = _count("workers", env.get("DODAS_SERVER_WORKERS") or data.get("workers", 1), least=0)
    cfg.lease_seconds = float(env.get("DODAS_SERVER_LEASE_SECONDS") or data.get("lease_seconds", 30.0))
    cfg.cli_client_id = str(env.get("DODAS_SERVER_CLI_CLIENT_ID") or data.get("cli_client_id") or cfg.cli_client_id)
    cfg.dashboard = _dashboard(data.get("dashboard"), env)
    cfg.im_cloud_credentials = str(env.get("DODAS_SERVER_IM_CLOUD_CREDENTIALS") or data.get("im_cloud_credentials")
                                   or "refuse")
    if cfg.im_cloud_credentials not in ("refuse", "ignore"):
        raise DodasError(f'im_cloud_credentials: "{cfg.im_cloud_credentials}" is not refuse or ignore')
    return cfg


def _count(key: str, value: Any, *, least: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = least - 1
    if isinstance(value, bool) or n < least:
        raise DodasError(f"{key}: {value!r} is not a whole number of at least {least}")
    return n


def _dashboard(data: Any, env: Any) -> DashboardConfig:
    data = data or {}
    known = {"client_id", "issuer", "public_url", "session_hours"}
    if not isinstance(data, dict) or set(data) - known:
        raise DodasError(f"dashboard: a mapping of {', '.join(sorted(known))} (the client secret, when there is one, "
                         "comes from DODAS_SERVER_DASHBOARD_SECRET)")
    hours = data.get("session_hours", 8.0)
    if not isinstance(hours, (int, float)) or isinstance(hours, bool) or hours <= 0:
        raise DodasError(f"dashboard.session_hours: {hours!r} is not a positive number of hours")
    return DashboardConfig(client_id=str(env.get("DODAS_SERVER_DASHBOARD_CLIENT_ID") or data.get("client_id")
                                         or "dodas-dashboard"),
                           issuer=data.get("issuer"), public_url=env.get("DODAS_SERVER_PUBLIC_URL")
                           or data.get("public_url"), session_hours=float(hours),
                           client_secret=env.get("DODAS_SERVER_DASHBOARD_SECRET") or None)


def _issuers(items: Any, env_url: str | None, env_audience: str | None) -> list[Any]:
    from dodas.server.auth import IssuerConfig

    out = []
    for n, item in enumerate(items or []):
        if not isinstance(item, dict) or not item.get("url"):
            raise DodasError(f"issuers[{n}]: each issuer needs at least a url")
        fields_ = {k: v for k, v in item.items() if k in IssuerConfig.__dataclass_fields__}
        if "algorithms" in fields_:
            fields_["algorithms"] = tuple(fields_["algorithms"])
        out.append(IssuerConfig(**fields_))
    if env_url:
        out.append(IssuerConfig(url=env_url, audience=env_audience or None))
    return out


def _bool(env_value: str | None, default: Any) -> bool:
    if env_value is None:
        return bool(default)
    return env_value.strip().lower() in ("1", "true", "yes", "on")
