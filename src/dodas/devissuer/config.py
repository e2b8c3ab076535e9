"""The development issuer's users and clients, from a YAML file. NOT FOR PRODUCTION.

    audience: dodas                 # `aud` of access tokens (omitted when unset)
    groups_claim: groups            # or wlcg.groups, eduperson_entitlement
    access_token_lifetime: 600      # seconds
    refresh_token_lifetime: 86400
    device_code_lifetime: 600
    device_interval: 5              # the polling interval the device flow asks for
    users:
      - {username: alice, password: "<choose one>", groups: [/dodas, /dodas/admins]}
    clients:
      - {client_id: dodas-cli}                                   # public: device flow, refresh
      - {client_id: dodas-server, client_secret: "<choose one>"} # introspection, client_credentials
      - {client_id: dashboard, redirect_uris: ["http://127.0.0.1:8080/cb"]}

A client may override `audience`, `groups_claim`, `access_token_lifetime`, and
set `opaque_tokens: true` (its access tokens are then random strings, to be
introspected, as some IAM and Keycloak set-ups issue) and `groups` (those of its
client_credentials tokens). Passwords are plain here because this is a
development tool; they are compared in constant time all the same.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GROUP_CLAIMS = ("groups", "wlcg.groups", "eduperson_entitlement")


class ConfigError(Exception):
    """A configuration file that cannot be used, with what is wrong in it."""


@dataclass(frozen=True)
class User:
    username: str
    password: str = field(repr=False)
    sub: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uris: tuple[str, ...] = ()
    audience: str | None = None
    groups_claim: str | None = None
    access_token_lifetime: int | None = None
    opaque_tokens: bool = False
    groups: tuple[str, ...] = ()

    @property
    def confidential(self) -> bool:
        return self.client_secret is not None


@dataclass
class DevConfig:
    users: dict[str, User] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    audience: str | None = None
    groups_claim: str = "groups"
    access_token_lifetime: int = 600
    refresh_token_lifetime: int = 86400
    device_code_lifetime: int = 600
    device_interval: int = 5

    def check_password(self, username: str, password: str) -> User | None:
        """The user, when the password is theirs. Unknown users cost a comparison too."""
        user = self.users.get(username)
        expected = user.password if user else "\0not a user\0"
        ok = hmac.compare_digest(password.encode("utf-8"), expected.encode("utf-8"))
        return user if ok and user else None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: a list of strings")
    return tuple(value)


def _seconds(data: dict[str, Any], key: str, default: int, where: str) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}{key}: {value!r} is not a number of seconds")
    return value


def parse(data: Any, where: str = "config") -> DevConfig:
    """A DevConfig from the YAML's data, or ConfigError naming the faulty entry."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a mapping with users: and clients:")
    unknown = set(data) - {"users", "clients", "audience", "groups_claim", "access_token_lifetime",
                           "refresh_token_lifetime", "device_code_lifetime", "device_interval"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    cfg = DevConfig(audience=data.get("audience"), groups_claim=data.get("groups_claim", "groups"))
    if cfg.groups_claim not in GROUP_CLAIMS:
        raise ConfigError(f"{where}: groups_claim is one of {', '.join(GROUP_CLAIMS)}")
    for key in ("access_token_lifetime", "refresh_token_lifetime", "device_code_lifetime", "device_interval"):
        setattr(cfg, key, _seconds(data, key, getattr(cfg, key), f"{where}: "))
    for n, u in enumerate(data.get("users") or []):
        at = f"{where}: users[{n}]"
        if not isinstance(u, dict) or not isinstance(u.get("username"), str) or not isinstance(u.get("password"), str):
            raise ConfigError(f"{at}: each user has a username and a password (strings)")
        sub = u.get("sub") or str(uuid.uuid5(uuid.NAMESPACE_URL, "dodas-devissuer:" + u["username"]))
        cfg.users[u["username"]] = User(u["username"], u["password"], str(sub), _strings(u.get("groups"), at))
    for n, c in enumerate(data.get("clients") or []):
        at = f"{where}: clients[{n}]"
        if not isinstance(c, dict) or not isinstance(c.get("client_id"), str):
            raise ConfigError(f"{at}: each client has a client_id (a string)")
        claim = c.get("groups_claim")
        if claim is not None and claim not in GROUP_CLAIMS:
            raise ConfigError(f"{at}: groups_claim is one of {', '.join(GROUP_CLAIMS)}")
        lifetime = c.get("access_token_lifetime")
        if lifetime is not None:
            lifetime = _seconds(c, "access_token_lifetime", 0, f"{at}: ")
        secret = c.get("client_secret")
        cfg.clients[c["client_id"]] = Client(c["client_id"], None if secret is None else str(secret),
                                             _strings(c.get("redirect_uris"), at), c.get("audience"), claim,
                                             lifetime, bool(c.get("opaque_tokens", False)),
                                             _strings(c.get("groups"), at))
    return cfg


def load(path: Path) -> DevConfig:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the issuer's configuration: {exc}") from None
    return parse(data, str(path))
