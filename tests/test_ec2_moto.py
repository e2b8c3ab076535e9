"""The EC2 provider against a real moto server on loopback: real HTTP from boto3,
real create, describe and terminate; bad credentials, unknown images, no
instance type big enough and exhausted quotas refused before anything is made;
a deployment over two regions removed from both; security-group rules that follow
the template on every up; ClientTokens new for each instance made. What moto does
not do by itself (an instance not yet visible right after its launch, one still
shutting down when its group is deleted) is injected through botocore's event
hooks on the provider's real client, as AWS answers it."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path

import boto3
import pytest
from support.livecluster import Dodas
from support.moto_ec2 import SECRET_KEY, an_ami, ec2, ours, start_moto, stop, template, write_providers


def left_in(url: str, dep_id: str, region: str) -> list[str]:
    """What a deployment still holds in a region: instances not terminated, its
    security group, its key pair."""
    c = ec2(url, region)
    name = [{"Name": "group-name", "Values": [f"dodas-{dep_id}"]}]
    return ([i["InstanceId"] for i in ours(url, dep_id, region)]
            + [g["GroupId"] for g in c.describe_security_groups(Filters=name)["SecurityGroups"]]
            + [k["KeyName"] for k in c.describe_key_pairs(
                Filters=[{"Name": "key-name", "Values": [f"dodas-{dep_id}"]}])["KeyPairs"]])


def public_rules(url: str, dep_id: str, region: str = "us-east-1") -> set[tuple]:
    """The deployment's group's inbound rules: (protocol, from, to, CIDR or "self")."""
    (g,) = ec2(url, region).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"dodas-{dep_id}"]}])["SecurityGroups"]
    out = set()
    for p in g["IpPermissions"]:
        for r in p.get("IpRanges", []):
            out.add((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"]))
        for pair in p.get("UserIdGroupPairs", []):
            out.add((p["IpProtocol"], p.get("FromPort"), p.get("ToPort"),
                     "self" if pair["GroupId"] == g["GroupId"] else pair["GroupId"]))
    return out


def test_up_and_destroy_on_moto(cloud, moto, tmp_path):
    t = template(tmp_path, f"aws://us-east-1/{an_ami(moto)}")
    cloud.run("up", t, "--name", "vms")
    st = cloud.json("status", "vms")
    assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "aws"
    dep_id = st["id"]
    instances = ours(moto, dep_id)
    assert len(instances) == 2
    assert {i["InstanceType"] for i in instances} == {min_type_for(moto, 2, 3815)}
    assert all(i["KeyName"] == f"dodas-{dep_id}" for i in instances)
    tags = {t["Key"]: t["Value"] for t in instances[0]["Tags"]}
    assert tags["dodas:deployment"] == dep_id and tags["dodas:instance"].startswith("vm[")
    assert public_rules(moto, dep_id) == {("tcp", 22, 22, "0.0.0.0/0"), ("-1", None, None, "self"),
                                          ("tcp", 8080, 8080, "0.0.0.0/0")}
    assert sorted(i["provider_id"] for i in st["instances"]) == sorted(f"us-east-1/{i['InstanceId']}"
                                                                       for i in instances)
    key = cloud.home / "data" / "keys" / dep_id
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    outs = cloud.outputs("vms")
    assert sorted(outs["addresses"]) == sorted(i["PublicIpAddress"] for i in instances)
    # up again: nothing new
    assert "nothing to change" in cloud.run("up", t, "--name", "vms").stdout
    assert len(ours(moto, dep_id)) == 2
    # scale down, up again, then destroy
    tokens = {tag(i, "dodas:instance"): i["ClientToken"] for i in ours(moto, dep_id)}
    assert len(set(tokens.values())) == 2
    cloud.run("up", t, "--name", "vms", "-i", "n=1", "--yes")  # a scale-down deletes: asked
    assert len(ours(moto, dep_id)) == 1
    cloud.run("up", t, "--name", "vms", "-i", "n=2")
    now = {tag(i, "dodas:instance"): i["ClientToken"] for i in ours(moto, dep_id)}
    # vm[1] is made again: with a token of its own, or AWS would answer with the terminated one
    assert now["vm[0]"] == tokens["vm[0]"] and now["vm[1]"] != tokens["vm[1]"]
    cloud.run("destroy", "vms", "--yes")
    assert ours(moto, dep_id) == []
    assert ec2(moto).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"dodas-{dep_id}"]}])["SecurityGroups"] == []
    assert ec2(moto).describe_key_pairs(Filters=[{"Name": "key-name", "Values": [f"dodas-{dep_id}"]}])["KeyPairs"] == []
    assert not key.exists()


def tag(instance: dict, key: str) -> str:
    return next(t["Value"] for t in instance.get("Tags", []) if t["Key"] == key)


def min_type_for(url: str, cpus: int, mem: int) -> str:
    types = []
    for page in ec2(url).get_paginator("describe_instance_types").paginate():
        types += [(t["VCpuInfo"]["DefaultVCpus"], t["MemoryInfo"]["SizeInMiB"], t["InstanceType"])
                  for t in page["InstanceTypes"]]
    return min(t for t in types if t[0] >= cpus and t[1] >= mem)[2]


def _instances_total(url: str) -> int:
    res = ec2(url).describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return sum(len(r["Instances"]) for r in res["Reservations"])


def test_unknown_image(cloud, moto, tmp_path):
    before = _instances_total(moto)
    r = cloud.run("up", template(tmp_path, "aws://us-east-1/ami-00000000deadbeef"), "--name", "img", check=False)
    assert r.returncode == 1
    assert "provider aws" in r.stderr and "unknown image ami-00000000deadbeef" in r.stderr
    assert cloud.json("list") == [] and _instances_total(moto) == before


def test_no_instance_type_big_enough(cloud, moto, tmp_path):
    r = cloud.run("up", template(tmp_path, an_ami(moto), cpus=4096), "--name", "big", check=False)
    assert r.returncode == 1 and "no instance type has 4096 cpus" in r.stderr
    assert cloud.json("list") == []


def test_quota_exceeded(cloud, moto, tmp_path):
    before = _instances_total(moto)
    r = cloud.run("up", template(tmp_path, an_ami(moto), count=25), "--name", "many", check=False)
    assert r.returncode == 1 and "quota exceeded" in r.stderr and "needs 25 instances" in r.stderr
    assert _instances_total(moto) == before


def test_bad_credentials(tmp_path):
    proc, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
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
        stop(proc)


@pytest.fixture(scope="module")
def moto_iam():
    """A moto server that checks credentials against its IAM users (after the three
    unchecked calls that make one): (url, access key id, secret key)."""
    proc, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        iam = boto3.client("iam", region_name="us-east-1", endpoint_url=url, aws_access_key_id="AKIDBOOTSTRAP",
                           aws_secret_access_key="bootstrap")
        iam.create_user(UserName="dodas-im")
        iam.put_user_policy(UserName="dodas-im", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="dodas-im")["AccessKey"]
        yield url, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        stop(proc)


def test_the_im_auth_file_is_what_authenticates_and_its_secrets_never_show(moto_iam, tmp_path):
    """The credentials of an IM auth file are the ones used: the environment holds
    another key, which this server refuses (without the file, dodas fails to
    authenticate). And the file's secrets, given the way DODAS users give them,
    appear in no output, event, log or file dodas writes."""
    from botocore.exceptions import ClientError

    url, key_id, secret = moto_iam
    d = Dodas(tmp_path / "home")
    wrong = ("AKIDWRONGENVIRON", "wrong-" + os.urandom(8).hex())
    d.env.update(AWS_ACCESS_KEY_ID=wrong[0], AWS_SECRET_ACCESS_KEY=wrong[1], AWS_DEFAULT_REGION="us-east-1",
                 AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        d.env.pop(k, None)
    with pytest.raises(ClientError, match="AuthFailure"):
        ec2(url, key=wrong).describe_regions()
    t = template(tmp_path, an_ami(url, key=(key_id, secret)), count=1)
    write_providers(d.home, url)
    r = d.run("up", t, "--name", "sec", check=False)
    assert r.returncode == 1 and "provider aws: authentication failed" in r.stderr
    token = "tok-" + os.urandom(8).hex()
    auth = tmp_path / "auth.dat"
    auth.write_text(f"id = aws1; type = EC2; username = {key_id}; password = {secret}\n"
                    f"id = ost; type = OpenStack; host = https://127.0.0.1:5000; username = u; "
                    f"password = {token}; tenant = t\n")
    write_providers(d.home, url, extra=f"    auth_file: {auth}\n    auth_id: aws1\n")
    seen = []
    for args in (["up", t, "--name", "sec"], ["status", "sec", "--json"], ["logs", "sec"], ["outputs", "sec"],
                 ["providers", "--check"], ["providers", "--json"]):
        r = d.run(*args)
        seen.append(r.stdout + r.stderr)
    dep_id = d.json("status", "sec")["id"]
    made = ec2(url, key=(key_id, secret)).describe_instances(
        Filters=[{"Name": "tag:dodas:deployment", "Values": [dep_id]}])["Reservations"]
    assert [i["State"]["Name"] for r in made for i in r["Instances"]] == ["running"]
    for args in (["destroy", "sec", "--yes"], ["logs", "sec", "--json"]):
        r = d.run(*args)
        seen.append(r.stdout + r.stderr)
    blob = "\n".join(seen)
    assert "IM auth file" in blob  # the source is named, the secret is not
    assert secret not in blob and token not in blob
    for path in d.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and token.encode() not in data, path


# -- two regions ------------------------------------------------------------------
def two_region_template(path: Path, url: str, ports: str = "web: {protocol: tcp, source: 8080}") -> str:
    path.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        topology_template:
          node_templates:
            east:
              type: tosca.nodes.indigo.Compute
              capabilities:
                endpoint: {{properties: {{network_name: PUBLIC, ports: {{{ports}}}}}}}
                host: {{properties: {{instance_type: t3.micro}}}}
                os: {{properties: {{image: "aws://us-east-1/{an_ami(url, "us-east-1")}"}}}}
            west:
              type: tosca.nodes.indigo.Compute
              capabilities:
                endpoint: {{properties: {{network_name: PRIVATE}}}}
                scalable: {{properties: {{count: 2}}}}
                host: {{properties: {{instance_type: t3.micro}}}}
                os: {{properties: {{image: "aws://eu-west-1/{an_ami(url, "eu-west-1")}"}}}}
        """))
    return str(path)


def test_a_deployment_over_two_regions_is_destroyed_in_both(cloud, moto, tmp_path):
    """Each instance is made, found and deleted in its image's region; the key pair
    and the group exist in each region used, and destroy leaves nothing in either."""
    t = two_region_template(tmp_path / "two.yaml", moto)
    cloud.run("up", t, "--name", "two")
    dep_id = cloud.json("status", "two")["id"]
    (east,) = ours(moto, dep_id, "us-east-1")
    west = ours(moto, dep_id, "eu-west-1")
    assert tag(east, "dodas:instance") == "east[0]"
    assert sorted(tag(i, "dodas:instance") for i in west) == ["west[0]", "west[1]"]
    for region in ("us-east-1", "eu-west-1"):
        assert len(left_in(moto, dep_id, region)) in (3, 4)  # its instances, the group, the key pair
        assert public_rules(moto, dep_id, region) == {("tcp", 22, 22, "0.0.0.0/0"), ("-1", None, None, "self"),
                                                      ("tcp", 8080, 8080, "0.0.0.0/0")}
    ids = {i["id"]: i["provider_id"] for i in cloud.json("status", "two")["instances"]}
    assert ids["east[0]"] == f"us-east-1/{east['InstanceId']}" and ids["west[1]"].startswith("eu-west-1/i-")
    # up again: every instance is found where it is, nothing is made again
    assert "nothing to change" in cloud.run("up", t, "--name", "two").stdout
    assert len(ours(moto, dep_id, "eu-west-1")) == 2
    cloud.run("destroy", "two", "--yes")
    assert left_in(moto, dep_id, "us-east-1") == [] and left_in(moto, dep_id, "eu-west-1") == []
    assert all(i["State"]["Name"] == "terminated" for i in ours(moto, dep_id, "eu-west-1", ended=True))
    regions = cloud.home / "data" / "ec2" / "aws"
    assert not regions.exists() or not any(regions.iterdir())


# -- security-group rules follow the template --------------------------------------
def test_rules_follow_the_template_on_every_up(cloud, moto, tmp_path):
    """Ports removed from the template are closed and added ones opened on the next
    up, in every region; a rule added by hand is revoked; SSH and the group's own
    machines stay."""
    t = two_region_template(tmp_path / "r.yaml", moto, "web: {protocol: tcp, source: 8080}, "
                                                       "ui: {protocol: tcp, source: 8888}")
    cloud.run("up", t, "--name", "rules")
    dep_id = cloud.json("status", "rules")["id"]
    base = {("tcp", 22, 22, "0.0.0.0/0"), ("-1", None, None, "self")}
    assert public_rules(moto, dep_id, "eu-west-1") == base | {("tcp", 8080, 8080, "0.0.0.0/0"),
                                                              ("tcp", 8888, 8888, "0.0.0.0/0")}
    (g,) = ec2(moto).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"dodas-{dep_id}"]}])["SecurityGroups"]
    ec2(moto).authorize_security_group_ingress(GroupId=g["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    two_region_template(tmp_path / "r.yaml", moto, "ui: {protocol: tcp, source: 8888}, "
                                                   "api: {protocol: udp, source: 9000}")
    cloud.run("up", t, "--name", "rules")
    for region in ("us-east-1", "eu-west-1"):
        assert public_rules(moto, dep_id, region) == base | {("tcp", 8888, 8888, "0.0.0.0/0"),
                                                             ("udp", 9000, 9000, "0.0.0.0/0")}, region
    cloud.run("destroy", "rules", "--yes")
    assert left_in(moto, dep_id, "us-east-1") == [] and left_in(moto, dep_id, "eu-west-1") == []


# -- in-process: the provider itself on moto ------------------------------------------
@pytest.fixture
def aws(moto, dodas_home, monkeypatch):
    from dodas.providers.config import ProviderConfig
    from dodas.providers.ec2 import EC2Provider

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDDODASTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    return EC2Provider(ProviderConfig("aws", "ec2", 1, [], [], {"region": "us-east-1", "endpoint_url": moto,
                                                                 "poll_interval": 0.2}))


def a_request(moto: str, dep: str, inst: str = "vm[0]"):
    from dodas.model.deployment import ComputeSpec
    from dodas.providers.base import ComputeRequest

    spec = ComputeSpec(instance_type="t3.micro", image=f"aws://us-east-1/{an_ami(moto)}", network="PUBLIC")
    return ComputeRequest(dep, "demo", inst, spec)


def fail_once(client, event: str, code: str, when=lambda params: True) -> list:
    """Answer the first call of `event` that `when` accepts with an EC2 error, as
    AWS would; the calls answered are listed in the returned list."""
    from botocore.awsrequest import AWSResponse

    answered: list = []

    def hook(params, **_):
        if not answered and when(params):
            answered.append(params)
            return (AWSResponse("http://moto", 400, {}, None),
                    {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {}})
        return None
    client.meta.events.register(f"before-call.ec2.{event}", hook)
    return answered


def test_spark_jupyter_opens_only_its_public_ports(aws, moto):
    """The catalogue's Spark template: JupyterLab and the read-only UI public, the
    master's port only between the deployment's machines (the group's own rule)."""
    from dodas import services
    from dodas.model.network import ingress_rules

    plan = services.plan(str(Path(__file__).resolve().parent.parent / "templates" / "spark-jupyter.yaml"),
                         [f"image=aws://us-east-1/{an_ami(moto)}"])
    dep = "spark-" + os.urandom(4).hex()
    asyncio.run(aws.prepare(dep, "spark", ingress_rules(plan.model)))
    assert public_rules(moto, dep) == {("tcp", 22, 22, "0.0.0.0/0"), ("tcp", 8080, 8080, "0.0.0.0/0"),
                                       ("tcp", 8888, 8888, "0.0.0.0/0"), ("-1", None, None, "self")}
    asyncio.run(aws.purge(dep))
    assert left_in(moto, dep, "us-east-1") == []


def test_an_instance_not_yet_visible_after_its_launch_is_waited_for(aws, moto):
    """Right after run_instances, AWS may answer InvalidInstanceID.NotFound for the
    new instance (eventual consistency): that is waited out, not a failure."""
    from dodas.model.network import Ingress

    dep = "nf-" + os.urandom(4).hex()
    asyncio.run(aws.prepare(dep, "demo", (Ingress("tcp", 8080),)))
    answered = fail_once(aws._client("us-east-1"), "DescribeInstances", "InvalidInstanceID.NotFound",
                         lambda params: any(k.startswith("InstanceId.") for k in params["body"]))
    m = asyncio.run(aws.create(a_request(moto, dep)))
    assert answered, "the injected answer was given"
    (inst,) = ours(moto, dep)
    assert m.provider_id == f"us-east-1/{inst['InstanceId']}" and inst["State"]["Name"] == "running"
    asyncio.run(aws.purge(dep))
    assert left_in(moto, dep, "us-east-1") == []


def test_purge_waits_for_instances_shutting_down(aws, moto):
    """AWS refuses to delete a group while an instance using it is shutting down
    (DependencyViolation): purge waits until the instances are terminated, and
    retries a refusal that comes a little later still."""
    dep = "sd-" + os.urandom(4).hex()
    asyncio.run(aws.prepare(dep, "demo", ()))
    asyncio.run(aws.create(a_request(moto, dep, "vm[0]")))
    asyncio.run(aws.create(a_request(moto, dep, "vm[1]")))
    client = aws._client("us-east-1")
    shutting = {"left": 0}

    def terminated(**_):  # from the terminate call on, AWS shows the instances shutting down twice
        shutting["left"] = 2
    client.meta.events.register("after-call.ec2.TerminateInstances", terminated)

    def still_shutting_down(parsed, **_):
        ended = [i for r in parsed.get("Reservations", []) for i in r["Instances"]
                 if i["State"]["Name"] == "terminated"]
        if shutting["left"] > 0 and ended:
            shutting["left"] -= 1
            for i in ended:
                i["State"] = {"Code": 32, "Name": "shutting-down"}
    client.meta.events.register("after-call.ec2.DescribeInstances", still_shutting_down)
    seen = []

    def group_in_use(params, **_):
        from botocore.awsrequest import AWSResponse
        seen.append(shutting["left"])
        if shutting["left"] > 0 or len(seen) == 1:  # in use while shutting down, and once more after
            return (AWSResponse("http://moto", 400, {}, None),
                    {"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"},
                     "ResponseMetadata": {}})
        return None
    client.meta.events.register("before-call.ec2.DeleteSecurityGroup", group_in_use)
    asyncio.run(aws.purge(dep))
    assert seen[0] == 0, "the group was deleted while an instance was still shutting down"
    assert len(seen) == 2 and left_in(moto, dep, "us-east-1") == []
    assert asyncio.run(aws.resources(dep)) == []


def test_client_tokens_are_kept_across_a_crash_and_new_after_a_delete(aws, moto):
    """The token of an instance is written down before run_instances: the call
    repeated after a failure sends the same one (EC2 would return the instance the
    first call made); once the instance is deleted, making it again uses a new one."""
    dep = "tok-" + os.urandom(4).hex()
    asyncio.run(aws.prepare(dep, "demo", ()))
    client = aws._client("us-east-1")
    sent: list[str] = []
    client.meta.events.register("provide-client-params.ec2.RunInstances",
                                lambda params, **_: sent.append(params["ClientToken"]))
    from botocore.exceptions import EndpointConnectionError

    def lost(**_):  # the first launch never gets an answer
        if len(sent) == 1:
            raise EndpointConnectionError(endpoint_url="http://moto")
    client.meta.events.register("before-call.ec2.RunInstances", lost)
    from dodas.providers.base import ProviderError
    with pytest.raises(ProviderError) as err:
        asyncio.run(aws.create(a_request(moto, dep)))
    assert err.value.transient
    record = json.loads(aws._record(dep).path.read_text())
    assert record["tokens"] == {"vm[0]": sent[0]} and record["regions"] == ["us-east-1"]
    asyncio.run(aws.create(a_request(moto, dep)))  # as after a restart: the same token
    assert sent[1] == sent[0]
    (inst,) = ours(moto, dep)
    assert inst["ClientToken"] == sent[0]
    asyncio.run(aws.delete(dep, "vm[0]", f"us-east-1/{inst['InstanceId']}"))
    assert json.loads(aws._record(dep).path.read_text())["tokens"] == {}
    asyncio.run(aws.create(a_request(moto, dep)))
    assert len(sent) == 3 and sent[2] != sent[0]
    assert {i["ClientToken"] for i in ours(moto, dep)} == {sent[2]}
    asyncio.run(aws.purge(dep))
    assert left_in(moto, dep, "us-east-1") == [] and not aws._record(dep).path.exists()
