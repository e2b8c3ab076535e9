"""Provider configuration: `providers.yaml` in the user's config directory.

Each entry names a provider, its type, its rank (lower is tried first) and where
its credentials come from, always by each ecosystem's own convention: OpenStack's
clouds.yaml / OS_CLOUD, the AWS credential chain (profile, environment), or a line
of an Infrastructure Manager auth file, which DODAS users already have. The file
holds no secret itself unless the user puts one there; dodas never prints one.

    providers:
      - name: recas
        type: openstack
        rank: 1
        cloud: recas                  # an entry of clouds.yaml
        image_hosts: [cloud.recas.ba.infn.it]   # ost://HOST/... images go here
      - name: aws
        type: ec2
        rank: 2
        profile: default
        region: eu-west-1
      - name: lab
        type: ssh
        rank: 3
        hosts:
          - {address: 10.0.0.5, user: ubuntu, key: ~/.ssh/id_ed25519}
      - name: lab-cluster             # an existing cluster: Helm-only templates
        type: kubernetes
        kubeconfig: ~/.kube/config
        context: lab

The `local` provider is always there, ranked last, unless the file configures it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dodas import paths
from dodas.errors import DodasError

TYPES = ("local", "openstack", "ec2", "ssh", "kubernetes", "simulated")


@dataclass
class ProviderConfig:
    name: str
    type: str
    rank: int = 100
    #: image URL hosts (ost://HOST/..., aws://REGION/...) this provider serves
    image_hosts: list[str] = field(default_factory=list)
    #: other names a placement policy may use for it (an SLA's cloud id)
    cloud_ids: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def describe_credentials(self) -> str:
        """Where credentials come from, without any secret."""
        o = self.options
        if self.type == "openstack":
            if o.get("auth_file"):
                return f"IM auth file {o['auth_file']} (id {o.get('auth_id', '?')})"
            return f"clouds.yaml cloud {o.get('cloud') or os.environ.get('OS_CLOUD') or '(OS_CLOUD unset)'}"
        if self.type == "ec2":
            if o.get("auth_file"):
                return f"IM auth file {o['auth_file']} (id {o.get('auth_id', '?')})"
            return f"AWS credential chain (profile {o.get('profile') or os.environ.get('AWS_PROFILE') or 'default'})"
        if self.type == "ssh":
            return f"{len(o.get('hosts') or [])} host(s), SSH keys"
        if self.type == "kubernetes":
            return (f"kubeconfig {o.get('kubeconfig') or os.environ.get('KUBECONFIG') or '~/.kube/config'}, "
                    f"context {o.get('context') or '(current)'}")
        return "none needed"


def config_file() -> Path:
    return Path(os.environ.get("DODAS_PROVIDERS") or paths.config_dir() / "providers.yaml")


def load() -> list[ProviderConfig]:
    """Configured providers, best rank first; `local` is added when absent."""
    f = config_file()
    entries: list[Any] = []
    if f.is_file():
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{f}:{mark.line + 1}:{mark.column + 1}" if mark else str(f)
            raise DodasError(f"{where}: invalid YAML in the provider configuration") from None
        entries = data.get("providers") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise DodasError(f'{f}: expected a list under "providers"')
    out: list[ProviderConfig] = []
    seen: set[str] = set()
    for n, e in enumerate(entries, start=1):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise DodasError(f"{f}: provider #{n} needs a name")
        name, typ = e["name"], e.get("type", "local" if e.get("name") == "local" else None)
        if typ not in TYPES:
            raise DodasError(f'{f}: provider "{name}" has type {typ!r}; known types: {", ".join(TYPES)}')
        if name in seen:
            raise DodasError(f'{f}: provider "{name}" is configured twice')
        seen.add(name)
        rank = e.get("rank", 100)
        if not isinstance(rank, int):
            raise DodasError(f'{f}: provider "{name}": rank must be a whole number')
        options = {k: v for k, v in e.items() if k not in ("name", "type", "rank", "image_hosts", "cloud_ids")}
        out.append(ProviderConfig(name, typ, rank, list(e.get("image_hosts") or []),
                                  [str(c) for c in e.get("cloud_ids") or []], options))
    if "local" not in seen:
        out.append(ProviderConfig("local", "local", 1_000_000))
    return sorted(out, key=lambda p: (p.rank, p.name))


def get(name: str) -> ProviderConfig:
    for p in load():
        if p.name == name:
            return p
    known = ", ".join(p.name for p in load())
    raise DodasError(f'unknown provider "{name}"; configured providers: {known} (see {config_file()})')


# -- Infrastructure Manager auth files ---------------------------------------------
_IM_KEYS = {"id", "type", "host", "username", "password", "tenant", "auth_version", "domain", "token",
            "service_region", "tenant_id", "project", "project_id", "proxy", "base_url", "api_version"}


def parse_im_auth(text: str) -> list[dict[str, str]]:
    """Lines `id = x; type = OpenStack; host = https://...; username = ...` as dicts.
    Values may be quoted; `\\n` in a value stands for a newline, as IM writes it."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry: dict[str, str] = {}
        for part in re.split(r";(?=(?:[^'\"]|'[^']*'|\"[^\"]*\")*$)", line):
            if "=" not in part:
                continue
            k, v = part.split("=", 1)
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            entry[k.strip()] = v.replace("\\n", "\n")
        if entry:
            out.append(entry)
    return out


def im_auth_entry(path: str, auth_id: str | None, typ: str) -> dict[str, str]:
    p = Path(os.path.expanduser(path))
    try:
        entries = parse_im_auth(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DodasError(f"cannot read IM auth file {p}: {exc.strerror}") from None
    for e in entries:
        if (auth_id is None or e.get("id") == auth_id) and e.get("type", "").lower() == typ.lower():
            return e
    raise DodasError(f'IM auth file {p} has no {typ} entry' + (f' with id "{auth_id}"' if auth_id else ""))


def openstack_auth_from_im(e: dict[str, str]) -> dict[str, Any]:
    """openstacksdk connection arguments from an IM OpenStack line."""
    version = e.get("auth_version", "3.x_password")
    host = e.get("host", "").rstrip("/")
    auth_url = host if re.search(r"/v[23](\.0)?$", host) else host + "/v3"
    if "oidc" in version or "token" in version:
        auth = {"auth_url": auth_url, "access_token": e.get("password") or e.get("token"),
                "identity_provider": e.get("username"), "protocol": e.get("tenant") or "openid",
                "project_id": e.get("project_id") or e.get("domain")}
        return {"auth_type": "v3oidcaccesstoken", "auth": auth, "region_name": e.get("service_region")}
    auth = {"auth_url": auth_url, "username": e.get("username"), "password": e.get("password"),
            "project_name": e.get("tenant"), "user_domain_name": e.get("domain", "Default"),
            "project_domain_name": e.get("domain", "Default")}
    return {"auth_type": "password", "auth": auth, "region_name": e.get("service_region")}
