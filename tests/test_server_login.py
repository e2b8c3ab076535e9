"""`dodas login` / `dodas logout` as a user runs them against a server: the
server names its issuer and client, the device flow runs against the real
development issuer (the test plays the user on its /device page), and the
commands that work through the server then use the stored login, with no token
in any output. After logout the server refuses them, saying how to log in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest
from support import serverproc
from support.issuer import running_issuer
from support.zygote import run_dodas


ISSUER_CONFIG = {"audience": "dodas", "device_interval": 1,
                 "users": [{"username": "alice", "password": "alice-pw", "groups": ["/dodas"]}],
                 "clients": [{"client_id": "dodas-cli"}]}


@pytest.fixture()
def issuer(tmp_path):
    """An issuer of its own per test: the login's device flow polls it every second."""
    with running_issuer(tmp_path, ISSUER_CONFIG) as running:
        yield running


@pytest.fixture()
def served(tmp_path, issuer):
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "server.yaml").write_text(
        f"issuers:\n  - {{url: '{issuer.url}', audience: dodas}}\ndefault_providers: []\nworkers: 0\n")
    env = {**os.environ, "DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for var in ("DODAS_TOKEN", "DODAS_OIDC_AGENT_ACCOUNT", "DODAS_ISSUER", "DODAS_DB_URL"):
        env.pop(var, None)
    proc, url = serverproc.start(env, tmp_path / "server.log")
    client_home = tmp_path / "laptop"
    client_env = {**env, "DODAS_HOME": str(client_home), "DODAS_SERVER": url}
    yield url, client_env, client_home
    serverproc.stop(proc)


def dodas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_dodas(list(args), env=env, timeout=120)


def test_login_through_the_server_then_logout(served, issuer):
    url, env, laptop = served
    r = dodas(env, "list", "--json")
    assert r.returncode == 1 and "dodas login" in r.stderr, r.stderr
    login = subprocess.Popen([sys.executable, "-m", "dodas", "login"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    first = login.stderr.readline()
    m = re.search(r"open (\S+) and enter the code (\S+)", first)
    assert m and m.group(1).startswith(issuer.url), first
    r = httpx.post(issuer.url + "/device", data={"user_code": m.group(2), "username": "alice",
                                                 "password": "alice-pw", "action": "approve"})
    assert r.status_code == 200, r.text
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert f"Logged in to {issuer.url}" in err
    files = list((laptop / "config" / "tokens").glob("*.json"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    stored = files[0].read_text()
    r = dodas(env, "list", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [], r.stdout
    refresh = re.search(r'"refresh_token": "([^"]+)"', stored).group(1)
    assert refresh not in first + out + err + r.stdout + r.stderr, "no token is ever printed"
    r = dodas(env, "logout")
    assert r.returncode == 0 and f"Logged out of {issuer.url}" in r.stderr, r.stderr
    assert not list((laptop / "config" / "tokens").glob("*.json"))
    r = dodas(env, "list", "--json")
    assert r.returncode == 1 and "dodas login" in r.stderr


def test_login_without_a_server_or_issuer_says_what_to_name(tmp_path):
    env = {**os.environ, "DODAS_HOME": str(tmp_path / "home")}
    env.pop("DODAS_SERVER", None)
    r = dodas(env, "login")
    assert r.returncode == 1 and "dodas login ISSUER_URL" in r.stderr and "Traceback" not in r.stderr
    r = dodas(env, "logout")
    assert r.returncode == 0 and "Not logged in" in r.stderr


def test_the_two_command_start_with_the_development_issuer(tmp_path):
    """README's way to try the server: `dodas server --dev-issuer`, then `dodas
    login` as the generated user, then deploy through the server."""
    from support.livecluster import compute_template

    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "providers.yaml").write_text("providers:\n  - {name: sim, type: simulated}\n")
    env = {**os.environ, "DODAS_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "DODAS_DEV_ISSUER_PORT": str(serverproc.free_port())}
    for var in ("DODAS_TOKEN", "DODAS_OIDC_AGENT_ACCOUNT", "DODAS_ISSUER", "DODAS_DB_URL"):
        env.pop(var, None)
    log = tmp_path / "server.log"
    proc, url = serverproc.start(env, log, "--dev-issuer")
    try:
        login_file = home / "config" / "dev-issuer-login.txt"
        assert login_file.stat().st_mode & 0o777 == 0o600
        creds = dict(line.split(": ", 1) for line in login_file.read_text().splitlines())
        assert "NOT FOR PRODUCTION" in log.read_text() and creds["password"] not in log.read_text()
        client = {**env, "DODAS_HOME": str(tmp_path / "laptop"), "DODAS_SERVER": url}
        login = subprocess.Popen([sys.executable, "-m", "dodas", "login"], env=client, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        code = re.search(r"enter the code (\S+)", login.stderr.readline()).group(1)
        r = httpx.post(creds["issuer"] + "/device", data={"user_code": code, "username": creds["username"],
                                                          "password": creds["password"], "action": "approve"})
        assert r.status_code == 200, r.text
        assert login.wait(timeout=60) == 0, login.stderr.read()
        template = compute_template(tmp_path / "boxes.yaml", count=2, cpus=1, mem="512 MiB")
        r = dodas(client, "up", template, "--name", "tryout", "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        st = json.loads(dodas(client, "status", "tryout", "--json").stdout)
        assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "sim" and len(st["instances"]) == 2
        r = dodas(client, "destroy", "tryout", "--yes")
        assert r.returncode == 0, r.stdout + r.stderr
        assert not list((home / "data" / "simulated").glob("*/*/*.json"))
    finally:
        serverproc.stop(proc)
