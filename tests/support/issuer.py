"""The development issuer (dodas.devissuer) as the tests run it: on loopback, with a
signing key of its own in a 0600 file. Every test that needs an OpenID Connect
issuer starts it here (`running_issuer`); the server tests share one module-scoped
`issuer` (a plugin of tests/conftest.py) whose users are `USERS`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dodas.devissuer import config as devconfig
from dodas.devissuer import keys as devkeys
from dodas.devissuer.serve import Running, start

#: the server tests' users and their groups (each one's password is "<user>-pw")
USERS = {
    "alice": ["/cms", "/atlas"],
    "bob": [],
    "carol": ["/cms"],
    "frank": ["/atlas"],
    "dave": ["/dodas/admins"],
}


def users(groups_of: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The issuer's `users` entries: password "<user>-pw", the groups when there are any."""
    return [{"username": u, "password": f"{u}-pw", **({"groups": g} if g else {})} for u, g in groups_of.items()]


@contextmanager
def running_issuer(directory: Path, config: dict[str, Any]) -> Iterator[Running]:
    """An issuer with `config` (devissuer's configuration), its key in `directory`;
    `.key_file` names that file (tests that sign tokens themselves read it)."""
    key_file = directory / "issuer-key.pem"
    devkeys.write_private(key_file, devkeys.new_pem())  # 0600, as the issuer is given it
    running = start(devconfig.parse(config), devkeys.SigningKeys.from_file(key_file))
    running.key_file = key_file  # type: ignore[attr-defined]
    try:
        yield running
    finally:
        running.stop()


_tokens: dict[tuple[str, str], str] = {}


def token(issuer: Running, user: str) -> str:
    """An access token of `user`, from the issuer's password grant (one per user and issuer)."""
    key = (issuer.url, user)
    if key not in _tokens:
        r = httpx.post(issuer.url + "/token", data={"grant_type": "password", "client_id": "dodas-cli",
                                                    "username": user, "password": f"{user}-pw",
                                                    "scope": "openid"})
        assert r.status_code == 200, r.text
        _tokens[key] = r.json()["access_token"]
    return _tokens[key]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory) -> Iterator[Running]:
    """The server tests' issuer: `USERS`, audience "dodas", the CLI's public client."""
    config = {"audience": "dodas", "users": users(USERS), "clients": [{"client_id": "dodas-cli"}]}
    with running_issuer(tmp_path_factory.mktemp("issuer"), config) as running:
        yield running
