"""The autoscaler watches an HTCondor pool of templates/htcondor.yaml (issue 16,
item 7): the reader's settings are taken from the deployment (the collector from
the central manager's host and port, a token of the pool that dodas signs from
the pool's generated signing key), and the token reaches HTCondor only through a
private token directory while a child Python asks the daemons.

HTCondor's daemons cannot run here, and `dodas up` of the pool needs VMs, so the
deployment's state is what the engine's own RunContext holds after the real
central manager playbook ran in render-only mode (tests/support/htcondor.py, Pool): the
machines, the reported attributes and the generated secrets. The token is
verified with code independent of dodas's (support.htcondor.verify_token: joserfc,
cryptography's HKDF). Kubernetes (the chart on a kubernetes provider) is not
autoscaled from a deployment: refused, naming what is."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.htcondor import CM_ADDRESS, POOL, POOL_K8S, Pool, load_token_module, ssh_provider, verify_token

from dodas.elastic.readers import htcondor as reader_mod
from dodas.elastic.readers import reader_for
from dodas.engine.context import RunContext
from dodas.model.deployment import Instance
from dodas.services import autoscale


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Pool:
    """The pool's master and one execute node, the central manager configured (render-only)."""
    p = Pool(tmp_path_factory.mktemp("autoscale-pool"))
    p.run("central_manager")
    return p


def policy_of(plan):
    from dodas.elastic.policy import policies
    (policy,) = policies(plan)
    return policy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Spy:
    """Wraps the reader's child: what it was started with, and its token directory while it ran."""

    def __init__(self, answer=None) -> None:
        self.answer = answer   # None: run the real child; else request -> what the child answers
        self.calls: list[dict] = []

    def __call__(self, argv, env, request, timeout):
        d = env.get("_CONDOR_SEC_TOKEN_DIRECTORY")
        seen = {"argv": argv, "env": dict(env), "request": request, "dir": d}
        if d is not None:
            files = sorted(Path(d).iterdir())
            seen["dir_mode"] = stat.S_IMODE(os.stat(d).st_mode)
            seen["files"] = [(f.name, stat.S_IMODE(f.stat().st_mode), f.read_text()) for f in files]
        self.calls.append(seen)
        if self.answer is None:
            return subprocess.run(argv, input=request, env=env, capture_output=True, text=True, timeout=timeout)
        return subprocess.CompletedProcess(argv, 0, json.dumps(self.answer(json.loads(request))) + "\n", "")


# -- (1) the pool plans on VMs, with the autoscaler's policy ---------------------------------------
def test_the_pool_plans_on_vms_and_the_autoscaler_finds_its_policy(cli, dodas_home):
    from dodas import services

    ssh_provider(dodas_home)
    r = cli("plan", str(POOL), "--provider", "lab", "--no-refresh")
    assert r.code == 0, r.err
    assert "elastic: execute_hosts 1..5, idle 300 s, watching htcondor" in r.out
    policy = policy_of(services.plan(str(POOL), []))
    assert (policy.node, policy.workload, policy.count_input) == ("execute_hosts", "htcondor", "number_of_workers")


# -- (2) the reader's settings from the deployment ------------------------------------------------
def test_the_readers_settings_come_from_the_deployment(pool):
    policy = policy_of(pool.plan)
    params = autoscale.htcondor_access(policy, pool.plan.model, pool.ctx)
    assert set(params) == {"collector", "token"}
    assert params["collector"] == f"{CM_ADDRESS}:9618"
    trust_domain = pool.ctx.attributes[Instance("central_manager", 0)]["trust_domain"]
    assert trust_domain == "dodas-dep-1", "what the central manager reported"
    # the token verifies against the key file the role wrote, as HTCondor derives the key
    key_file = (pool.etc["pool_master"] / "passwords.d" / "POOL").read_bytes()
    claims = verify_token(params["token"], key_file)
    assert claims["iss"] == trust_domain and claims["sub"] == f"condor@{trust_domain}"
    assert claims["scope"] == "condor:/READ condor:/ADMINISTRATOR"
    now = time.time()
    assert claims["iat"] <= now + 1 and now + autoscale.DRAIN_TIMEOUT_S < claims["exp"] <= now + 3600 + 1
    with pytest.raises(Exception):
        verify_token(params["token"], b"another-deployments-signing-key-0123456789")
    # the same settings through the state's rows (what `target` reads), as the engine saves them
    rows = {(i.node, i.index): SimpleNamespace(kind="compute", attributes=m.attributes(), secrets={})
            for i, m in pool.ctx.machines.items()}
    for i, attrs in pool.ctx.attributes.items():
        rows[(i.node, i.index)] = SimpleNamespace(kind="software", attributes=attrs,
                                                  secrets=pool.ctx.secrets.get(i, {}))
    got, cores = autoscale._workload_access(policy, pool.plan, rows)
    assert got["collector"] == params["collector"] and cores == 2
    assert verify_token(got["token"], key_file)["sub"] == f"condor@{trust_domain}"


def test_the_collector_port_is_the_central_managers_property(pool, tmp_path):
    from dodas import services

    text = POOL.read_text().replace("      type: tosca.nodes.dodas.HTCondor.CentralManager\n",
                                    "      type: tosca.nodes.dodas.HTCondor.CentralManager\n"
                                    "      properties: { port: 9620 }\n", 1)
    template = tmp_path / "pool.yaml"
    template.write_text(text)
    plan = services.plan(str(template), [])
    ctx = RunContext(plan.model, "dep-1", "pool1", machines=dict(pool.ctx.machines),
                     attributes=dict(pool.ctx.attributes), secrets=dict(pool.ctx.secrets))
    assert autoscale.htcondor_access(policy_of(plan), plan.model, ctx)["collector"] == f"{CM_ADDRESS}:9620"


def test_a_pool_not_configured_yet_is_a_reason_to_wait(pool):
    policy = policy_of(pool.plan)
    model = pool.plan.model
    ctx = RunContext(model, "dep-1", "pool1", secrets=dict(pool.ctx.secrets))
    with pytest.raises(autoscale.DodasError, match='host "pool_master" has no address yet'):
        autoscale.htcondor_access(policy, model, ctx)
    ctx = RunContext(model, "dep-1", "pool1", machines=dict(pool.ctx.machines), secrets=dict(pool.ctx.secrets))
    with pytest.raises(autoscale.DodasError, match='central manager "central_manager" is not configured yet'):
        autoscale.htcondor_access(policy, model, ctx)


def test_the_token_is_given_through_a_private_directory_removed_after_the_read(pool, monkeypatch):
    params = autoscale.htcondor_access(policy_of(pool.plan), pool.plan.model, pool.ctx)
    token = params["token"]
    slot = ('[ Name = "slot1@wn-0"; Machine = "wn-0"; State = "Unclaimed"; Activity = "Idle"; Cpus = 2; '
            'SlotType = "Partitionable"; TotalSlotCpus = 2; MyAddress = "<10.0.0.6:9618?addrs=10.0.0.6-9618>" ]')
    job = '[ ClusterId = 7; ProcId = 0; JobStatus = 1; RequestCpus = 4; Owner = "alice" ]'
    spy = Spy(lambda request: {"ads": {"slots": [slot], "jobs": [job], "drain": []}[request["op"]]})
    monkeypatch.setattr(reader_mod, "_spawn", spy)
    reader = reader_for("htcondor", **params)
    assert token not in repr(reader)
    workload = asyncio.run(reader.read())
    assert workload.waiting_cores == 2 and [w.host for w in workload.workers] == ["10.0.0.6"]
    assert len(spy.calls) == 2
    for call in spy.calls:
        assert call["dir_mode"] == 0o700 and call["files"] == [("dodas-autoscaler", 0o600, token + "\n")]
        assert not Path(call["dir"]).exists(), "removed after the read"
        assert call["env"]["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] == "IDTOKENS"
        assert json.loads(call["request"])["collector"] == f"{CM_ADDRESS}:9618"
        signature = token.split(".")[2]
        for where in (" ".join(call["argv"]), call["request"], *call["env"].values()):
            assert token not in where and signature not in where
    # the drain: the same way, with the startd's name
    spy.calls.clear()
    assert asyncio.run(reader.drain(workload.workers[0])) is True
    (drain,) = [c for c in spy.calls if json.loads(c["request"])["op"] == "drain"]
    assert json.loads(drain["request"])["name"] == "wn-0" and not Path(drain["dir"]).exists()
    assert token not in drain["request"]


# -- (3) no collector where the settings say: a reason naming it -----------------------------------
def test_no_collector_is_a_clear_message_naming_it(pool, monkeypatch):
    params = autoscale.htcondor_access(policy_of(pool.plan), pool.plan.model, pool.ctx)
    collector = f"127.0.0.1:{free_port()}"
    spy = Spy()   # the real child, with the real htcondor2 bindings
    monkeypatch.setattr(reader_mod, "_spawn", spy)
    policy = policy_of(pool.plan)
    t = autoscale.Target("pool1", "dep-1", policy, {**params, "collector": collector}, 2, [])
    assert params["token"] not in repr(t)
    from dodas.elastic.decide import Memory
    with pytest.raises(reader_mod.HTCondorError) as info:
        autoscale.poll(t, Memory(), time.time())
    message = autoscale._why(info.value)
    assert message.startswith(f"cannot query the HTCondor collector at {collector}: "), message
    assert "Traceback" not in message and params["token"] not in message
    (call,) = spy.calls
    assert call["files"] == [("dodas-autoscaler", 0o600, params["token"] + "\n")]
    assert not Path(call["dir"]).exists(), "removed after a failed read too"


# -- out of scope, and one home for the signing ---------------------------------------------------
def test_the_chart_on_kubernetes_is_not_autoscaled_from_a_deployment():
    from dodas import services

    plan = services.plan(str(POOL_K8S), [])
    ctx = RunContext(plan.model, "dep-1", "pool1")
    policy = SimpleNamespace(node="htcondor", workload="htcondor")
    with pytest.raises(autoscale.DodasError, match="chart on a kubernetes provider is not supported"):
        autoscale.htcondor_access(policy, plan.model, ctx)


def test_the_roles_filter_signs_with_dodas_htcondor_tokens():
    from dodas import htcondor_tokens

    mod = load_token_module()
    assert mod.idtoken is htcondor_tokens.idtoken and mod.FilterModule().filters()["dodas_htcondor_idtoken"] is \
        htcondor_tokens.idtoken
    # an ansible-playbook whose Python has no dodas loads the same file by its path
    plugin = Path(reader_mod.__file__).parents[2] / "configure" / "roles" / "htcondor_config" / "filter_plugins" / \
        "htcondor_idtoken.py"
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('f', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "print(m.idtoken('k' * 43, 'condor@td', 'td', ['READ']))")
    r = subprocess.run([sys.executable, "-S", "-c", code, str(plugin)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == htcondor_tokens.idtoken("k" * 43, "condor@td", "td", ["READ"])


def test_a_collector_that_never_answers_is_given_up_naming_it(pool, monkeypatch):
    """A port that accepts connections and says nothing: the child is stopped at the time-out."""
    params = autoscale.htcondor_access(policy_of(pool.plan), pool.plan.model, pool.ctx)
    spy = Spy()
    monkeypatch.setattr(reader_mod, "_spawn", spy)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        collector = f"127.0.0.1:{silent.getsockname()[1]}"
        reader = reader_for("htcondor", **{**params, "collector": collector, "timeout": 2})
        started = time.monotonic()
        with pytest.raises(reader_mod.HTCondorError) as info:
            asyncio.run(reader.read())
    assert time.monotonic() - started < 10
    assert info.value.message == f"the HTCondor collector at {collector} did not answer within 2 s"
    assert not Path(spy.calls[0]["dir"]).exists()
