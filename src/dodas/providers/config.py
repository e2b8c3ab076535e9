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


#: the keys every provider entry may have
COMMON_KEYS = ("name", "type", "rank", "image_hosts", "cloud_ids", "bastion", "login_timeout")
#: the keys of each type (what its module reads); anything else is a mistake, refused
TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("cpu_allocation_ratio", "ram_allocation_ratio"),
    "openstack": ("cloud", "auth_file", "auth_id", "network", "public_network", "timeout", "ssh_user", "ssh_from",
                  "wait_ssh"),
    "ec2": ("profile", "region", "auth_file", "auth_id", "endpoint_url", "subnet_id", "timeout", "poll_interval",
            "ssh_user", "ssh_from", "wait_ssh"),
    "ssh": ("hosts",),
    "kubernetes": ("kubeconfig", "context"),
    "simulated": ("create_latency", "delete_latency", "failure_rate", "delete_failure_rate", "transient",
                  "delete_transient", "seed", "retry_base", "quota", "create_hold"),
}
#: the keys of an ssh provider's host
HOST_KEYS = ("address", "private_address", "user", "key", "port", "num_cpus", "mem_mib", "python", "venv_bin",
             "workdir", "spark_home", "java_home")


def load() -> list[ProviderConfig]:
    """Configured providers, best rank first; `local` is added when absent. Every
    problem of the file is reported at once, each with its line."""
    from dodas import settings
    from dodas.errors import Diagnostic, TemplateError
    from dodas.yamlsource import read_yaml

    f = config_file()
    entries: list[Any] = []
    smap = None
    if f.is_file():
        # dodas's YAML loader: a syntax error or duplicate key is located, with the parser's detail
        data, smap = read_yaml(f, "provider configuration", limits=settings.limits())
        entries = data.get("providers") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise DodasError(f'{f}:1:1: expected a list under "providers"')
    problems: list[Diagnostic] = []

    def problem(where: tuple, message: str, key: bool = False) -> None:
        problems.append(smap.diag(where, message, key=key) if smap else Diagnostic(str(f), 1, 1, message))

    out: list[ProviderConfig] = []
    seen: set[str] = set()
    for n, e in enumerate(entries):
        at = ("providers", n)
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e.get("name"):
            problem(at, f"provider #{n + 1} needs a name")
            continue
        name, typ = e["name"], e.get("type", "local" if e.get("name") == "local" else None)
        if typ not in TYPES:
            problem((*at, "type") if "type" in e else at, f'provider "{name}" has type {typ!r}; known types: '
                    f'{", ".join(TYPES)}')
            continue
        if name in seen:
            problem((*at, "name"), f'provider "{name}" is configured twice')
        seen.add(name)
        known = (*COMMON_KEYS, *TYPE_KEYS[typ])
        for key in e:
            if key not in known:
                problem((*at, key), _unknown(f'provider "{name}" ({typ})', key, known), key=True)
        for h, host in enumerate(e.get("hosts") or [] if typ == "ssh" else []):
            for key in (host if isinstance(host, dict) else {}):
                if key not in HOST_KEYS:
                    problem((*at, "hosts", h, key), _unknown(f'provider "{name}" host #{h + 1}', key, HOST_KEYS),
                            key=True)
        rank = e.get("rank", 100)
        if not isinstance(rank, int) or isinstance(rank, bool):
            problem((*at, "rank"), f'provider "{name}": rank must be a whole number')
            continue
        options = {k: v for k, v in e.items() if k not in ("name", "type", "rank", "image_hosts", "cloud_ids")}
        out.append(ProviderConfig(name, typ, rank, list(e.get("image_hosts") or []),
                                  [str(c) for c in e.get("cloud_ids") or []], options))
    if problems:
        raise TemplateError(problems)
    if "local" not in seen:
        out.append(ProviderConfig("local", "local", 1_000_000))
    return sorted(out, key=lambda p: (p.rank, p.name))


def _unknown(whose: str, key: Any, known: tuple[str, ...]) -> str:
    import difflib

    hint = difflib.get_close_matches(str(key), known, n=1)
    return f'{whose}: unknown key "{key}"' + (f'; did you mean "{hint[0]}"?' if hint else
                                              f"; it may have: {', '.join(sorted(known))}")


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
