"""The EC2 provider against a real moto server on loopback: real HTTP from boto3,
real create, describe and terminate; bad credentials, unknown images, no
instance type big enough and exhausted quotas refused before anything is made."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from livecluster import Dodas, compute_template

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

SECRET_KEY = "dodas-test-secret-" + os.urandom(8).hex()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(extra_env: dict[str, str] | None = None):
    port = _free_port()
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


@pytest.fixture(scope="module")
def moto():
    proc, url = _start_moto()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def ec2(url: str):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url, aws_access_key_id="AKIDDODASTEST",
                        aws_secret_access_key=SECRET_KEY)


@pytest.fixture
def d(tmp_path, moto):
    dodas = Dodas(tmp_path / "home")
    dodas.env.update(AWS_ACCESS_KEY_ID="AKIDDODASTEST", AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                     AWS_DEFAULT_REGION="us-east-1")
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        dodas.env.pop(k, None)
    write_providers(dodas.home, moto)
    return dodas


def write_providers(home: Path, url: str, extra: str = "") -> None:
    cfg = home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(textwrap.dedent(f"""\
        providers:
          - name: aws
            type: ec2
            rank: 1
            region: us-east-1
            endpoint_url: {url}
            wait_ssh: false
        """) + extra)


def an_ami(url: str) -> str:
    return ec2(url).describe_images()["Images"][0]["ImageId"]


def template(tmp_path: Path, image: str, count: int = 2, cpus: int = 2, mem: str = "4 GB") -> str:
    return compute_template(tmp_path / "vms.yaml", count=count, cpus=cpus, mem=mem, node="vm", image=image,
                            public_port=8080, address_output="public_address")


def ours(url: str, dep_id: str) -> list[dict]:
    res = ec2(url).describe_instances(Filters=[{"Name": "tag:dodas:deployment", "Values": [dep_id]}])
    return [i for r in res["Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]


def test_up_and_destroy_on_moto(d, moto, tmp_path):
    t = template(tmp_path, f"aws://us-east-1/{an_ami(moto)}")
    d.run("up", t, "--name", "vms")
    st = d.json("status", "vms")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "aws"
    dep_id = st["id"]
    instances = ours(moto, dep_id)
    assert len(instances) == 2
    assert {i["InstanceType"] for i in instances} == {min_type_for(moto, 2, 3815)}
    assert all(i["KeyName"] == f"dodas-{dep_id}" for i in instances)
    tags = {t["Key"]: t["Value"] for t in instances[0]["Tags"]}
    assert tags["dodas:deployment"] == dep_id and tags["dodas:instance"].startswith("vm[")
    sg = ec2(moto).describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"dodas-{dep_id}"]}])
    rules = sg["SecurityGroups"][0]["IpPermissions"]
    assert any(r.get("FromPort") == 8080 for r in rules) and any(r.get("FromPort") == 22 for r in rules)
    key = d.home / "data" / "keys" / dep_id
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    outs = d.outputs("vms")
    assert sorted(outs["addresses"]) == sorted(i["PublicIpAddress"] for i in instances)
    # up again: nothing new
    assert "nothing to change" in d.run("up", t, "--name", "vms").stdout
    assert len(ours(moto, dep_id)) == 2
    # scale down, then destroy
    d.run("up", t, "--name", "vms", "-i", "n=1")
    assert len(ours(moto, dep_id)) == 1
    d.run("destroy", "vms", "--yes")
    assert ours(moto, dep_id) == []
    assert ec2(moto).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"dodas-{dep_id}"]}])["SecurityGroups"] == []
    assert ec2(moto).describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"dodas-{dep_id}"]}])["KeyPairs"] == []
    assert not key.exists()


def min_type_for(url: str, cpus: int, mem: int) -> str:
    types = []
    for page in ec2(url).get_paginator("describe_instance_types").paginate():
        types += [(t["VCpuInfo"]["DefaultVCpus"], t["MemoryInfo"]["SizeInMiB"], t["InstanceType"])
                  for t in page["InstanceTypes"]]
    return min(t for t in types if t[0] >= cpus and t[1] >= mem)[2]


def _instances_total(url: str) -> int:
    res = ec2(url).describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return sum(len(r["Instances"]) for r in res["Reservations"])


def test_unknown_image(d, moto, tmp_path):
    before = _instances_total(moto)
    r = d.run("up", template(tmp_path, "aws://us-east-1/ami-00000000deadbeef"), "--name", "img", check=False)
    assert r.returncode == 1
    assert "provider aws" in r.stderr and "unknown image ami-00000000deadbeef" in r.stderr
    assert d.json("list") == [] and _instances_total(moto) == before


def test_no_instance_type_big_enough(d, moto, tmp_path):
    r = d.run("up", template(tmp_path, an_ami(moto), cpus=4096), "--name", "big", check=False)
    assert r.returncode == 1 and "no instance type has 4096 cpus" in r.stderr
    assert d.json("list") == []


def test_quota_exceeded(d, moto, tmp_path):
    before = _instances_total(moto)
    r = d.run("up", template(tmp_path, an_ami(moto), count=25), "--name", "many", check=False)
    assert r.returncode == 1 and "quota exceeded" in r.stderr and "needs 25 instances" in r.stderr
    assert _instances_total(moto) == before


def test_bad_credentials(tmp_path):
    proc, url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        d = Dodas(tmp_path / "home")
        d.env.update(AWS_ACCESS_KEY_ID="AKIDNOSUCHUSER", AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        write_providers(d.home, url)
        r = d.run("up", template(tmp_path, "ami-12c6146b"), "--name", "creds", check=False)
        assert r.returncode == 1
        assert "provider aws: authentication failed" in r.stderr
        assert SECRET_KEY not in r.stderr + r.stdout
        assert d.json("list") == []
        check = d.run("providers", "--check", check=False)
        assert check.returncode == 1 and "authentication failed" in check.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_secrets_from_an_im_auth_file_never_show(d, moto, tmp_path):
    """A known secret, given the way DODAS users give it (an IM auth file), must not
    appear in any output, event, log or file dodas writes."""
    token = "tok-" + os.urandom(8).hex()
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = aws1; type = EC2; username = AKIDFROMIMFILE; password = {SECRET_KEY}\n"
                    f"id = ost; type = OpenStack; host = https://127.0.0.1:5000; username = u; "
                    f"password = {token}; tenant = t\n")
    write_providers(d.home, moto, extra=f"    auth_file: {auth}\n    auth_id: aws1\n")
    t = template(tmp_path, an_ami(moto), count=1)
    seen = []
    for args in (["up", t, "--name", "sec"], ["status", "sec", "--json"], ["logs", "sec"], ["outputs", "sec"],
                 ["providers", "--check"], ["providers", "--json"], ["destroy", "sec", "--yes"],
                 ["logs", "sec", "--json"]):
        r = d.run(*args)
        seen.append(r.stdout + r.stderr)
    blob = "\n".join(seen)
    assert "IM auth file" in blob  # the source is named, the secret is not
    assert SECRET_KEY not in blob and token not in blob
    for path in d.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET_KEY.encode() not in data and token.encode() not in data, path
