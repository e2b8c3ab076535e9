"""The engine's fault behaviour on the simulated provider: many deployments with
failing creates and deletes, kill -9 during creation, failover between providers,
placement policies. After destroy the provider holds nothing of ours."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pytest
import yaml
from support.livecluster import Dodas, compute_template, wait_while_running

from dodas.errors import DodasError
from dodas.providers.simulated import server_count


def providers_yaml(home: Path, body: str) -> None:
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("providers:\n" + textwrap.indent(textwrap.dedent(body), "  "))


def boxes(tmp_path: Path, count: int = 3, policy: str = "") -> str:
    policies = yaml.safe_load(textwrap.dedent(policy))["policies"] if policy else None
    return compute_template(tmp_path / f"boxes{count}.yaml", count=count, cpus=2, mem="2 GB", policies=policies)


def _servers(home: Path, provider: str, dep_id: str) -> dict[str, str]:
    """A simulated provider's servers of one deployment: file name -> server id."""
    servers = (home / "data" / "simulated" / provider / dep_id).glob("*.json")
    return {f.name: json.loads(f.read_text())["id"] for f in servers}


def test_fifty_deployments_with_create_and_delete_failures(tmp_path, dodas_home):
    """50 deployments over two flaky clouds: creates fail for good (some after the
    server exists), deletes fail often (retried, and sometimes failing still, so
    that failed attempts' clean-ups fail too), a failed attempt fails over to the
    second cloud. Each ends complete or cleanly failed: no instance half-way, no
    attempt left running, the lock released, every server of it either in the
    state or named in its attempt's clean-up problems. Destroy leaves nothing."""
    from dodas.cli.progress import factory
    from dodas.engine.engine import DeploymentFailed
    from dodas.services import deploy, read

    quiet = factory(quiet=True)

    def clouds(seed: int) -> None:
        """A seed per dodas run: every run builds its providers afresh, and one seed
        for all would repeat one run's luck 50 times."""
        providers_yaml(dodas_home, f"""\
            - {{name: flaky-a, type: simulated, rank: 1, failure_rate: 0.3, transient: false,
               delete_failure_rate: 0.8, delete_transient: true, seed: {seed}}}
            - {{name: flaky-b, type: simulated, rank: 2, failure_rate: 0.3, transient: false,
               delete_failure_rate: 0.8, delete_transient: true, seed: {seed + 1}}}
            """)
    t = boxes(tmp_path, 3)
    outcomes = {"CREATE_COMPLETE": 0, "CREATE_FAILED": 0}
    failovers = leaks = 0
    for n in range(50):
        clouds(2 * n)
        try:
            deploy.up(t, name=f"d{n}", pairs=None, inputs_file=None, provider_name=None, parallelism=3,
                      listener=quiet, max_providers=2)
        except DeploymentFailed:
            pass
        st = read.status(f"d{n}")
        assert st["status"] in outcomes, st["status"]
        outcomes[st["status"]] += 1
        assert st["locked_by"] is None, f"d{n}: the lock is released"
        attempts = st["attempts"]
        assert attempts and all(a["status"] in ("failed", "succeeded") for a in attempts), attempts
        assert all(a["error"] for a in attempts if a["status"] == "failed"), attempts
        failovers += len(attempts) > 1
        rows = {f"{i['node']}-{i['index']}.json": i for i in st["instances"]}
        if st["status"] == "CREATE_COMPLETE":
            assert attempts[-1] == {**attempts[-1], "status": "succeeded", "provider": st["provider"]}
            assert len(rows) == 3 and {i["state"] for i in rows.values()} == {"created"}
            assert _servers(dodas_home, st["provider"], st["id"]) == {k: i["provider_id"] for k, i in rows.items()}
        else:
            assert st["reason"] and "failed" in st["reason"]
            assert attempts[-1]["status"] == "failed" and attempts[-1]["provider"] == st["provider"]
            # a failed attempt is removed; what its clean-up could not remove stays in the state, in error
            assert {i["state"] for i in rows.values()} <= {"error"}, rows
            left = _servers(dodas_home, st["provider"], st["id"])
            assert set(left) <= set(rows), "every server of the last attempt is in the state"
            if rows or left:
                assert "clean-up problems" in attempts[-1]["error"], attempts[-1]
        for a in attempts[:-1]:  # an earlier attempt's provider holds something only if its clean-up said so
            if _servers(dodas_home, a["provider"], st["id"]):
                assert "clean-up problems" in a["error"], a
                leaks += 1
    assert outcomes["CREATE_COMPLETE"] > 0 and outcomes["CREATE_FAILED"] > 0, outcomes
    assert failovers > 0 and leaks > 0, (failovers, leaks)
    # destroy everything; a destroy that meets failing deletes is simply repeated
    for n in range(50):
        for k in range(20):
            clouds(1000 + 100 * n + 2 * k)
            try:
                deploy.destroy(f"d{n}", parallelism=3, listener=quiet)
                break
            except DodasError:
                continue
        st = read.status(f"d{n}")
        assert st["status"] == "DELETE_COMPLETE" and st["instances"] == [] and st["locked_by"] is None
    assert server_count("flaky-a") == 0 and server_count("flaky-b") == 0, "the providers hold nothing of ours"


def test_kill_9_during_creation_then_up(tmp_path, state_db):
    d = Dodas(tmp_path / "home")
    state_db.env(d.env)
    providers_yaml(d.home, """\
        - name: slow
          type: simulated
          rank: 1
          create_latency: 1.0
        """)
    t = boxes(tmp_path, 6)
    proc = d.popen("up", t, "--name", "k", "--parallelism", "2")
    wait_while_running(proc, lambda: server_count_in(d.home) >= 2, "two machines were made")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    created_before = server_count_in(d.home)
    assert 2 <= created_before < 6
    d.run("up", t, "--name", "k")
    assert server_count_in(d.home) == 6, "no duplicates: the servers made before the kill were found by tag"
    st = d.json("status", "k")
    assert st["status"] == "CREATE_COMPLETE" and len(st["instances"]) == 6
    d.run("destroy", "k", "--yes")
    assert server_count_in(d.home) == 0


def server_count_in(home: Path, provider: str = "slow") -> int:
    return len(list((home / "data" / "simulated" / provider).glob("*/*.json")))


def test_failover_to_the_next_provider(tmp_path):
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, """\
        - name: broken
          type: simulated
          rank: 1
          failure_rate: 1.0
          delete_failure_rate: 0.0
          transient: false
        - name: good
          type: simulated
          rank: 2
        """)
    t = boxes(tmp_path, 2)
    r = d.run("up", t, "--name", "fo")
    assert "trying the next provider: good" in r.stderr
    st = d.json("status", "fo")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "good"
    assert [(a["provider"], a["status"]) for a in st["attempts"]] == [("broken", "failed"), ("good", "succeeded")]
    assert "simulated failure" in st["attempts"][0]["error"] or "simulated timeout" in st["attempts"][0]["error"]
    text = d.run("status", "fo").stdout
    assert "#1 broken" in text and "failed" in text
    assert server_count_in(d.home, "broken") == 0, "the failed attempt was removed completely"
    d.run("destroy", "fo", "--yes")


def test_failover_whose_clean_up_fails_leaks_nothing(tmp_path):
    """An attempt fails on provider A and so does removing what it made (A's
    deletes fail); the next attempt succeeds on B. A's servers are not forgotten:
    the attempt keeps its error (and what its clean-up could not remove), and
    destroy removes what carries the deployment's tag on A as well as on B."""
    d = Dodas(tmp_path / "home")
    config = """\
        - name: broken
          type: simulated
          rank: 1
          failure_rate: 1.0          # every create fails, half of them after the server exists
          delete_failure_rate: {rate}
          transient: false
          seed: 5
        - name: good
          type: simulated
          rank: 2
          delete_failure_rate: {rate}
          seed: 11
        """
    providers_yaml(d.home, config.format(rate=1.0))
    t = boxes(tmp_path, 4)
    r = d.run("up", t, "--name", "leak")
    assert "trying the next provider: good" in r.stderr
    left_on_a = server_count_in(d.home, "broken")
    assert left_on_a > 0, "A's clean-up failed: its servers are still there"
    assert server_count_in(d.home, "good") == 4
    st = d.json("status", "leak")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "good"
    assert [(a["provider"], a["status"]) for a in st["attempts"]] == [("broken", "failed"), ("good", "succeeded")]
    error = st["attempts"][0]["error"]
    assert "simulated failure creating" in error or "simulated timeout" in error, error
    assert "clean-up problems" in error and "simulated failure deleting" in error, error
    assert {i["provider_id"] for i in st["instances"]} == {
        json.loads(f.read_text())["id"] for f in (d.home / "data" / "simulated" / "good").glob("*/*.json")}, \
        "the instances are B's servers"

    providers_yaml(d.home, config.format(rate=0.0))  # both clouds delete again
    d.run("destroy", "leak", "--yes")
    assert server_count_in(d.home, "broken") == 0, "destroy removed what the failed attempt left on A"
    assert server_count_in(d.home, "good") == 0
    st = d.json("status", "leak")
    assert st["status"] == "DELETE_COMPLETE"
    assert st["attempts"][0]["error"] == error, "the attempt keeps its error"


def test_keep_failed_and_max_providers(tmp_path):
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, """\
        - name: broken
          type: simulated
          rank: 1
          failure_rate: 1.0
          delete_failure_rate: 0.0
          transient: false
          seed: 3
        - name: good
          type: simulated
          rank: 2
        """)
    t = boxes(tmp_path, 4)
    r = d.run("up", t, "--name", "kf", "--max-providers", "1", "--keep-failed", check=False)
    assert r.returncode == 1 and "failed" in r.stderr
    st = d.json("status", "kf")
    assert st["status"] == "CREATE_FAILED"
    assert [(a["provider"], a["status"]) for a in st["attempts"]] == [("broken", "kept")]
    assert server_count_in(d.home, "broken") > 0, "the kept attempt's servers are still there to look at"
    d.run("destroy", "kf", "--yes")
    assert server_count_in(d.home, "broken") == 0


def test_all_providers_fail(tmp_path):
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, """\
        - {name: b1, type: simulated, rank: 1, failure_rate: 1.0, delete_failure_rate: 0, transient: false}
        - {name: b2, type: simulated, rank: 2, failure_rate: 1.0, delete_failure_rate: 0, transient: false}
        """)
    r = d.run("up", boxes(tmp_path, 1), "--name", "all", "--max-providers", "2", check=False)
    assert r.returncode == 1 and "every provider tried failed" in r.stderr
    assert "b1:" in r.stderr and "b2:" in r.stderr
    st = d.json("status", "all")
    assert [a["status"] for a in st["attempts"]] == ["failed", "failed"]


def test_placement_policy_pins_a_provider(tmp_path):
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, """\
        - {name: first, type: simulated, rank: 1}
        - {name: second, type: simulated, rank: 2, cloud_ids: [sla-42]}
        """)
    policy = """\
        policies:
          - pin:
              type: tosca.policies.indigo.SlaPlacement
              properties: {sla_id: sla-42}
        """
    d.run("up", boxes(tmp_path, 1, policy), "--name", "pinned")
    assert d.json("status", "pinned")["provider"] == "second"
    r = d.run("up", boxes(tmp_path, 1, policy.replace("sla-42", "sla-99")), "--name", "nowhere", check=False)
    assert r.returncode == 1 and "asks for sla-99" in r.stderr


def test_providers_command(tmp_path):
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, """\
        - {name: sim, type: simulated, rank: 5}
        """)
    rows = d.json("providers")
    assert [(r["name"], r["type"]) for r in rows] == [("sim", "simulated"), ("local", "local")]
    assert d.run("providers", "--check").returncode == 0


@pytest.mark.parametrize("body,expect", [
    ("- {name: x, type: nonsense}\n", "known types"),
    ("- {type: ec2}\n", "needs a name"),
    ("- {name: a, type: simulated}\n- {name: a, type: simulated}\n", "configured twice"),
])
def test_bad_provider_configuration(tmp_path, body, expect):
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, body)
    r = d.run("providers", check=False)
    assert r.returncode == 1 and expect in r.stderr and "providers.yaml" in r.stderr


def test_a_project_quota_counts_other_deployments_not_the_deployments_own(tmp_path):
    """The simulated provider's quota (a cloud project's, as OpenStack's preflight
    reads it): a plan beyond it is passed over for the next provider, with the
    quota's words; the servers a deployment holds count as available to it."""
    d = Dodas(tmp_path / "home")
    providers_yaml(d.home, """\
        - {name: small, type: simulated, rank: 1, quota: {instances: 3, cores: 6}}
        - {name: other, type: simulated, rank: 2}
        """)
    t = boxes(tmp_path, 2)  # 2 x 2 cores
    d.run("up", t, "--name", "first")
    assert d.json("status", "first")["provider"] == "small"
    r = d.run("plan", t, "--name", "first", "-i", "n=3")  # its own 4 cores are available to it: 6 fit
    assert "quota exceeded" not in r.stdout + r.stderr, r.stdout + r.stderr
    r = d.run("plan", t, "--name", "second")  # 4 more cores beside first's 4: over 6
    said = r.stdout + r.stderr
    assert "passed over: small (provider small: quota exceeded: the deployment needs 2 instances, 2 are in use " \
           "and the project may use 3; provider small: quota exceeded: the deployment needs 4 vcpus, 4 are in use " \
           "and the project may use 6)" in said, said
    d.run("up", t, "--name", "second")
    assert d.json("status", "second")["provider"] == "other"
    r = d.run("plan", t, "--name", "third", "--provider", "small", "-i", "n=1", check=False)
    assert r.returncode == 0, "2 cores beside 4 fit"
    r = d.run("plan", t, "--name", "third", "--provider", "small", "-i", "n=2", check=False)
    assert r.returncode != 0 and "provider small: quota exceeded" in r.stdout + r.stderr, r.stdout + r.stderr
    for name in ("first", "second"):
        d.run("destroy", name, "--yes")


def test_a_create_waits_while_its_hold_file_exists(tmp_path, dodas_home):
    """`create_hold`: what browser tests hold a creation with, whatever the machine's load."""
    import asyncio

    from dodas.model.deployment import ComputeSpec
    from dodas.providers.base import ComputeRequest
    from dodas.providers.config import ProviderConfig
    from dodas.providers.simulated import SimulatedProvider

    hold = tmp_path / "hold"
    hold.touch()
    sim = SimulatedProvider(ProviderConfig("held", "simulated", options={"create_hold": str(hold)}))

    async def held_then_released() -> None:
        made = asyncio.ensure_future(sim.create(ComputeRequest("d1", "d", "vm[0]", ComputeSpec(num_cpus=1))))
        await asyncio.sleep(0.5)  # a slow machine only lengthens what must stay held
        assert not made.done() and server_count("held") == 0, "no machine while the hold file exists"
        hold.unlink()
        machine = await asyncio.wait_for(made, 120)
        assert machine.provider_id and server_count("held") == 1

    asyncio.run(held_then_released())
