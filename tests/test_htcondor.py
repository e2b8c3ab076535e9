"""HTCondor pools (issue 16, items 5-7): dodas's types, the VM roles, the
catalogue templates and the plan-time checks of bad pools.

HTCondor's daemons cannot run on these machines (not in Debian's archive, nor
on PyPI), so nothing here starts a pool: the real playbooks run against this
machine in a render-only mode (every file written, nothing started), and what
they write is read back as HTCondor reads it: with a small parser of our own
(macros, `$(NAME)` references, a name redefined in terms of itself) and, as a
cross-check, with HTCondor's own configuration reader (the `htcondor2`
bindings' `param`, in a subprocess pointed at the files). The pool's tokens are
checked with an implementation independent of dodas's (cryptography's HKDF,
joserfc's JWT) against the key file the role wrote, as HTCondor derives the key.
docs/VERIFY_ON_OPENSTACK.md says how to verify a real pool."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.located import LOC
import yaml
from support.htcondor import (CM_ADDRESS, WN_ADDRESS, POOL, POOL_K8S, Pool, check_security, condor_param, expand,
                              load_token_module, reported, ssh_provider, verify_token)

from dodas.engine.context import RunContext
from dodas.model.deployment import Instance


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Pool:
    return Pool(tmp_path_factory.mktemp("pool")).run_all()


@pytest.mark.parametrize("template", [POOL, POOL_K8S], ids=lambda p: p.name)
def test_catalogue_templates_validate(cli, template):
    r = cli("validate", str(template), "--strict")
    assert r.code == 0, r.err
    meta = yaml.safe_load(template.read_text())["metadata"]
    assert meta["display_name"] and meta["category"] == "Batch"
    # the catalogue page shows the icons it has (server/web/templates/catalogue.html)
    assert meta["icon"] in ("cluster", "kubernetes")


def test_pool_plans_on_vms_with_an_elastic_policy_on_the_execute_nodes(cli, dodas_home):
    ssh_provider(dodas_home)
    r = cli("plan", str(POOL), "--provider", "lab", "--json", "--no-refresh", "-i", "number_of_workers=2")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    ids = sorted(i["id"] for i in plan["instances"])
    assert ids == ["central_manager[0]", "execute_hosts[0]", "execute_hosts[1]", "pool_master[0]", "schedd[0]",
                   "startd[0]", "startd[1]"]
    (policy,) = plan["policies"]
    assert (policy["node"], policy["count_input"], policy["workload"]) == ("execute_hosts", "number_of_workers",
                                                                           "htcondor")
    r = cli("plan", str(POOL), "--provider", "lab", "--no-refresh")
    assert "elastic: execute_hosts 1..5, idle 300 s, watching htcondor" in r.out


def test_pool_plans_on_a_kubernetes_provider(cli, dodas_home, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "me", "user": {"token": "not-a-real-credential"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}]}))
    kubeconfig.chmod(0o600)
    cfg = dodas_home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump({"providers": [{"name": "cluster", "type": "kubernetes",
                                                  "kubeconfig": str(kubeconfig), "context": "lab"}]}))
    r = cli("plan", str(POOL_K8S), "--json", "--no-refresh", "-i", "execute_nodes=4")
    assert r.code == 0, r.err
    plan = json.loads(r.out)
    assert [i["id"] for i in plan["instances"]] == ["htcondor[0]"]
    assert plan["provider"] == "cluster" if "provider" in plan else True


def test_the_signing_key_is_generated_per_deployment_and_never_in_the_plan(cli, dodas_home, tmp_path):
    from dodas import services

    plan = services.plan(str(POOL), [])
    assert plan.model.nodes["central_manager"].generated_secrets() == ("signing_key",)
    assert plan.model.nodes["startd"].generated_secrets() == ()
    keys = []
    for dep in ("dep-a", "dep-b"):
        ctx = RunContext(plan.model, dep, dep)
        ctx.ensure_secrets(Instance("central_manager", 0))
        keys.append(ctx.secrets[Instance("central_manager", 0)]["signing_key"])
    assert keys[0] != keys[1] and min(len(k) for k in keys) >= 32
    # a startd gets it through its requirement (it is the pool's client), the plan never carries it
    ctx = RunContext(plan.model, "dep-a", "dep-a")
    ctx.ensure_secrets(Instance("central_manager", 0))
    key = ctx.secrets[Instance("central_manager", 0)]["signing_key"]
    node = plan.model.nodes["startd"]
    got = ctx.variables(Instance("startd", 0), node, node.operations["configure"].inputs)
    assert got["dodas_requirements"]["central_manager"][0]["secrets"]["signing_key"] == key
    ssh_provider(dodas_home)
    r = cli("plan", str(POOL), "--provider", "lab", "--json", "--no-refresh")
    assert key not in r.out


# -- bad input, located at plan time ---------------------------------------------------------------
def swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(path: Path, needle: str) -> int:
    text = path.read_text()
    return text.count("\n", 0, text.index(needle)) + 1


POOL_TEXT = POOL.read_text()
K8S_TEXT = POOL_K8S.read_text()
STARTD_REQS = "        - host: execute_hosts\n        - central_manager: central_manager\n"
BAD = [
    # (id, template text, old, new, the line's text, what the message says)
    ("execute node without a central manager", POOL_TEXT, STARTD_REQS, "        - host: execute_hosts\n",
     "      requirements:\n        - host: execute_hosts\n", 'node "startd": missing requirement "central_manager"'),
    ("central manager that is a schedd", POOL_TEXT, STARTD_REQS,
     "        - host: execute_hosts\n        - central_manager: schedd\n", "central_manager: schedd",
     'requirement "central_manager" needs a tosca.nodes.dodas.HTCondor.CentralManager, but "schedd" is a '
     "tosca.nodes.dodas.HTCondor.Schedd"),
    ("pool with execute nodes and no schedd", POOL_TEXT,
     POOL_TEXT[POOL_TEXT.index("    schedd:\n"):POOL_TEXT.index("    startd:\n")], "", "    central_manager:",
     'node "central_manager": its pool has execute nodes (startd) but no tosca.nodes.dodas.HTCondor.Schedd '
     "requires it"),
    ("execute node pointed at another pool's collector", POOL_TEXT,
     "      type: tosca.nodes.dodas.HTCondor.Startd\n",
     "      type: tosca.nodes.dodas.HTCondor.Startd\n      properties: {collector_host: cm.other.example.org}\n",
     "collector_host", "collector_host"),
    ("release joining another pool", K8S_TEXT, "        wn_replicas: { get_input: execute_nodes }\n",
     "        wn_replicas: { get_input: execute_nodes }\n        condor_host: cm.other-pool.example.org\n",
     "condor_host:", 'condor_host "cm.other-pool.example.org" is a collector outside this deployment'),
    ("policy on the master", POOL_TEXT.replace("properties: { count: 1 }",
                                                       "properties: { count: { get_input: number_of_workers } }"),
     "targets: [ execute_hosts ]", "targets: [ pool_master ]", "targets:",
     'policy elastic_execute_nodes: it watches htcondor, but "pool_master" hosts no '
     "tosca.nodes.dodas.HTCondor.Startd"),
    ("flock_to not a collector", POOL_TEXT, "flock_to: { get_input: flock_to }",
     'flock_to: [ "cms-pool.example.org:9618", "http://x/" ]', 'flock_to: [ "cms',
     "flock_to entry 'http://x/' is not a collector (HOST or HOST:PORT"),
]


@pytest.mark.parametrize("name,text,old,new,needle,says", BAD, ids=[b[0] for b in BAD])
def test_bad_pools_are_located_errors(cli, tmp_path, name, text, old, new, needle, says):
    t = tmp_path / "pool.yaml"
    t.write_text(swap(text, old, new))
    r = cli("validate", str(t))
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.strip().splitlines() if ln.strip()]
    hits = [LOC.match(ln) for ln in lines if says in ln]
    assert hits and hits[0], r.err
    assert hits[0]["file"] == str(t) and int(hits[0]["line"]) == line_of(t, needle), r.err


def test_the_catalogue_pool_with_flocking_and_dodas_ts_charts_are_accepted(cli, tmp_path):
    """Not refused: flocking to existing pools, and DODAS-TS's own chart (from its repository)
    with condor_host naming this deployment's own front end."""
    t = tmp_path / "flock.yaml"
    t.write_text(swap(POOL_TEXT, "flock_to: { get_input: flock_to }",
                      'flock_to: [ "cms-pool.example.org:9618", "vocms0207.cern.ch" ]'))
    assert cli("validate", str(t)).code == 0
    t = tmp_path / "dodas-ts.yaml"
    t.write_text(swap(K8S_TEXT, "        wn_replicas: { get_input: execute_nodes }\n",
                      "        wn_replicas: { get_input: execute_nodes }\n        chart: dodas/htcondor\n"
                      "        condor_host: 192.0.2.7\n"
                      "        repos: [{name: dodas, url: 'https://dodas-ts.github.io/helm_charts'}]\n"))
    r = cli("validate", str(t))
    assert r.code == 0, r.err


def no_world_writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        assert not p.lstat().st_mode & stat.S_IWOTH, p


def test_rendered_pool_configuration(pool, tmp_path):
    cm, wn = pool.config("pool_master"), pool.config("execute_hosts")
    trust = "dodas-dep-1"
    # the central manager's report is what the schedd and the startds join
    assert reported(pool.reports["central_manager"]) == {"collector_host": f"{CM_ADDRESS}:9618",
                                                        "trust_domain": trust}
    for defs, address in ((cm, CM_ADDRESS), (wn, WN_ADDRESS)):
        assert expand(defs, "COLLECTOR_HOST") == f"{CM_ADDRESS}:9618"
        assert expand(defs, "CONDOR_HOST") == CM_ADDRESS
        assert expand(defs, "NETWORK_INTERFACE") == address, "each host binds its own private address"
        check_security(defs, trust)
        # the files are rendered under this test's directory instead of /etc/condor
        here = str(pool.etc["pool_master" if address == CM_ADDRESS else "execute_hosts"])
        values = " ".join(expand(defs, n).replace(here, "/etc/condor") for n in defs)
        assert "/etc/condor/passwords.d" in values
        assert not re.search(r"(^|[\s=,])/(tmp|var/tmp|dev/shm)(/|\s|$)", values), "no world-writable paths"
    # one file per role; the master carries the central manager and the schedd
    assert sorted(p.name for p in (pool.etc["pool_master"] / "config.d").iterdir()) == [
        "10-dodas-pool.conf", "20-dodas-central_manager.conf", "20-dodas-schedd.conf"]
    assert sorted(p.name for p in (pool.etc["execute_hosts"] / "config.d").iterdir()) == [
        "10-dodas-pool.conf", "20-dodas-startd.conf"]
    assert [d.strip() for d in expand(cm, "DAEMON_LIST").split(",")] == ["MASTER", "COLLECTOR", "NEGOTIATOR",
                                                                         "SCHEDD"]
    assert [d.strip() for d in expand(wn, "DAEMON_LIST").split(",")] == ["MASTER", "STARTD"]
    assert expand(wn, "SLOT_TYPE_1_PARTITIONABLE") == "TRUE" and expand(wn, "START") == "TRUE"
    assert "FLOCK_TO" not in cm, "no flocking unless asked"


def test_htcondor_reads_the_files_as_our_parser_does(pool, tmp_path):
    """HTCondor's own configuration reader (htcondor2.param) over the same files."""
    for host in ("pool_master", "execute_hosts"):
        ours = pool.config(host)
        names = sorted(ours)
        theirs = condor_param(pool.etc[host] / "config.d", names, tmp_path)
        for n in names:
            got, want = str(theirs[n]), expand(ours, n)   # typed for what HTCondor knows: 9618, True
            if want.upper() in ("TRUE", "FALSE"):
                got, want = got.upper(), want.upper()
            assert got == want, (host, n, theirs[n], want)


def test_secrets_on_disk_are_root_only_and_never_printed(pool):
    key = pool.signing_key
    for host, etc in pool.etc.items():
        for d in ("passwords.d", "tokens.d"):
            assert stat.S_IMODE((etc / d).stat().st_mode) == 0o700, (host, d)
        for f in (etc / "config.d").iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644
            assert key not in f.read_text(), "no secret in a configuration file"
        for f in [*(etc / "passwords.d").iterdir(), *(etc / "tokens.d").iterdir()]:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        no_world_writable(etc)
        assert (etc / "passwords.d" / "POOL").read_text() == key
    tokens = [(etc / "tokens.d" / "dodas-pool").read_text().strip() for etc in pool.etc.values()]
    for report in pool.reports.values():
        assert key not in report["_raw"], "the signing key is never in Ansible's output"
        for t in tokens:
            assert t.split(".")[2] not in report["_raw"], "nor a token's signature"


def test_the_pool_tokens_verify_as_htcondor_verifies_them(pool):
    key_file = (pool.etc["execute_hosts"] / "passwords.d" / "POOL").read_bytes()
    token = (pool.etc["execute_hosts"] / "tokens.d" / "dodas-pool").read_text().strip()
    claims = verify_token(token, key_file)
    assert claims["iss"] == "dodas-dep-1" and claims["sub"] == "condor@dodas-dep-1"
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "kid": "POOL", "typ": "JWT"}
    # another deployment's key does not verify it; nor the key used without HTCondor's derivation
    with pytest.raises(Exception):
        verify_token(token, b"another-deployments-signing-key-0123456789")
    from joserfc import jwt
    from joserfc.jwk import OctKey
    with pytest.raises(Exception):
        jwt.decode(token, OctKey.import_key(key_file), algorithms=["HS256"])


def test_token_scopes_lifetime_and_stability():
    mod = load_token_module()
    key = "k" * 43
    scoped = mod.idtoken(key, "startd@td", "td", ["READ", "ADVERTISE_STARTD"])
    claims = verify_token(scoped, key.encode())
    assert claims["scope"] == "condor:/READ condor:/ADVERTISE_STARTD"
    assert mod.idtoken(key, "startd@td", "td", ["READ", "ADVERTISE_STARTD"]) == scoped, "stable: rewriting is a no-op"
    timed = verify_token(mod.idtoken(key, "u@td", "td", lifetime=600, now=1_800_000_000), key.encode())
    assert (timed["iat"], timed["exp"]) == (1_800_000_000, 1_800_000_600)
    assert mod.scramble(mod.scramble(b"abc\x00")) == b"abc\x00"
    with pytest.raises(ValueError, match="no signing key"):
        mod.idtoken("", "u@td", "td")


def test_rendering_again_changes_nothing(pool):
    """dodas up on an unchanged pool: the same files, the same token, so condor is not restarted."""
    report = pool.run("startd")
    assert report["changed"] == 0, report["changed_tasks"]


def test_flocking_to_an_existing_pool(tmp_path):
    flock_token = "eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.eyJzdWIiOiJzY2hlZGRAY21zIn0.c2lnbmF0dXJl"
    p = Pool(tmp_path, ["flock_to=[\"cms-pool.example.org:9618\", \"vocms0207.cern.ch\"]",
                        f"flock_token={flock_token}"])
    p.run("central_manager")
    report = p.run("schedd")
    defs = p.config("pool_master")
    assert expand(defs, "FLOCK_TO") == "cms-pool.example.org:9618, vocms0207.cern.ch"
    f = p.etc["pool_master"] / "tokens.d" / "dodas-flock"
    assert f.read_text().strip() == flock_token and stat.S_IMODE(f.stat().st_mode) == 0o600
    assert flock_token not in report["_raw"]


def test_the_pool_opens_no_port_to_the_world():
    """On clouds the pool's port (9618, every daemon behind HTCondor's shared port) is open
    only to the deployment's own machines (its security group); SSH is the only way in."""
    from dodas import services
    from dodas.model.network import ingress_rules

    assert ingress_rules(services.plan(str(POOL)).model) == ()


def test_the_console_command_locates_a_pool_without_a_schedd(tmp_path):
    """`dodas validate` as a user runs it."""
    _name, text, old, new, needle, says = BAD[2]
    t = tmp_path / "pool.yaml"
    t.write_text(swap(text, old, new))
    r = subprocess.run([sys.executable, "-m", "dodas", "validate", str(t)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "DODAS_HOME": str(tmp_path / "home")})
    assert r.returncode == 1
    assert r.stderr.startswith(f"{t}:{line_of(t, needle)}:5: {says}"), r.stderr
