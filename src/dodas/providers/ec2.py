"""The `ec2` provider: Amazon EC2 (or anything that speaks its API) with boto3.

Contract, as for every cloud provider: the image comes from `aws://REGION/ami-...`
(or a bare AMI id), the instance type from `instance_type` or else the smallest
type with the requested cpus and memory; one security group and one key pair per
deployment; a public address for `network_name: PUBLIC`; everything tagged with
the deployment's id, so that `destroy` finds it even if the state lost it.
`run_instances` gets a ClientToken derived from (deployment, instance): a create
repeated after a crash returns the instance the first one made.

Credentials come from the AWS credential chain (profile, environment, instance
role) or from an Infrastructure Manager auth-file line (type = EC2).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from typing import Any

from dodas import paths
from dodas.model.deployment import ComputeSpec, DeploymentModel
from dodas.providers import keys
from dodas.providers.base import ComputeRequest, Machine, Provider, ProviderError
from dodas.providers.config import ProviderConfig, im_auth_entry

TAG_DEP, TAG_INST = "dodas:deployment", "dodas:instance"
AUTH_CODES = {"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch",
              "InvalidAccessKeyId", "ExpiredToken", "UnrecognizedClientException"}
TRANSIENT_CODES = {"RequestLimitExceeded", "Throttling", "ThrottlingException", "InsufficientInstanceCapacity",
                   "ServiceUnavailable", "InternalError", "Unavailable"}


class EC2Provider(Provider):
    host_kind = "vm"

    def __init__(self, cfg: ProviderConfig) -> None:
        self.name = cfg.name
        self.cfg = cfg
        o = cfg.options
        self.region = o.get("region") or "us-east-1"
        self.endpoint_url = o.get("endpoint_url")
        self.ssh_user = o.get("ssh_user", "ubuntu")
        self.ssh_from = o.get("ssh_from", "0.0.0.0/0")
        self.wait_ssh = bool(o.get("wait_ssh", True))
        self.subnet_id = o.get("subnet_id")
        self._clients: dict[str, Any] = {}
        #: creates run in threads side by side; the per-deployment key pair and
        #: security group must be made once, not once per instance
        self._setup_lock = threading.Lock()
        self._types: list[tuple[int, int, str]] | None = None

    # -- plumbing --------------------------------------------------------------
    def _client(self, region: str | None = None) -> Any:
        region = region or self.region
        if region not in self._clients:
            import boto3

            o = self.cfg.options
            kwargs: dict[str, Any] = {"region_name": region}
            if o.get("auth_file"):
                e = im_auth_entry(o["auth_file"], o.get("auth_id"), "EC2")
                kwargs.update(aws_access_key_id=e.get("username"), aws_secret_access_key=e.get("password"))
            elif o.get("profile"):
                kwargs["profile_name"] = o["profile"]
            try:
                session = boto3.session.Session(**kwargs)
            except Exception as exc:  # noqa: BLE001 - ProfileNotFound and friends
                raise ProviderError(self.name, f"cannot load AWS credentials: {exc}") from None
            self._clients[region] = session.client("ec2", endpoint_url=self.endpoint_url)
        return self._clients[region]

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """One API call; errors become ProviderErrors that name the cause."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            msg = exc.response.get("Error", {}).get("Message", "")
            if code in AUTH_CODES:
                raise ProviderError(self.name, f"authentication failed ({code}): check the credentials") from None
            raise ProviderError(self.name, f"{what}: {code}: {msg}", transient=code in TRANSIENT_CODES) from None
        except EndpointConnectionError as exc:
            raise ProviderError(self.name, f"{what}: cannot reach the endpoint ({exc})", transient=True) from None
        except BotoCoreError as exc:
            raise ProviderError(self.name, f"{what}: {exc}") from None

    @staticmethod
    def image_of(spec: ComputeSpec) -> tuple[str | None, str | None]:
        """(region, AMI id) from `aws://REGION/ami-...` or a bare id."""
        image = spec.image or ""
        if image.startswith("aws://"):
            region, _, ami = image[len("aws://"):].partition("/")
            return region or None, ami or None
        return None, image or None

    def instance_type(self, spec: ComputeSpec, region: str | None = None) -> str | None:
        if spec.instance_type:
            return spec.instance_type
        need_cpu, need_mem = spec.num_cpus or 1, spec.mem_mib or 512
        fits = [t for t in self._instance_types(region) if t[0] >= need_cpu and t[1] >= need_mem]
        return min(fits)[2] if fits else None

    def _instance_types(self, region: str | None) -> list[tuple[int, int, str]]:
        if self._types is None:
            ec2 = self._client(region)
            out = []
            for page in ec2.get_paginator("describe_instance_types").paginate():
                for t in page["InstanceTypes"]:
                    out.append((t["VCpuInfo"]["DefaultVCpus"], t["MemoryInfo"]["SizeInMiB"], t["InstanceType"]))
            self._types = out
        return self._types

    # -- preflight ---------------------------------------------------------------
    def preflight(self, model: DeploymentModel) -> list[str]:
        problems: list[str] = []
        try:
            ec2 = self._client()
            attrs = self._call("reading account limits", ec2.describe_account_attributes,
                               AttributeNames=["max-instances"])
        except ProviderError as exc:
            return [exc.message]
        computes = [n for n in model.nodes.values() if n.is_compute]
        for n in computes:
            region, ami = self.image_of(n.compute)  # type: ignore[arg-type]
            if not ami:
                problems.append(f'provider {self.name}: node "{n.name}" names no image (os.image, e.g. '
                                "aws://eu-west-1/ami-...)")
                continue
            try:
                found = self._call("looking up the image", self._client(region).describe_images, ImageIds=[ami])
                if not found.get("Images"):
                    raise ProviderError(self.name, "InvalidAMIID.NotFound")
            except ProviderError as exc:
                if "authentication" in exc.message:
                    return [exc.message]
                problems.append(f'provider {self.name}: node "{n.name}": unknown image {ami} '
                                f"in {region or self.region}")
            try:
                if self.instance_type(n.compute, region) is None:  # type: ignore[arg-type]
                    c = n.compute
                    problems.append(f'provider {self.name}: node "{n.name}": no instance type has '
                                    f"{c.num_cpus} cpus and {c.mem_mib} MiB")  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - listing types failed: say so
                problems.append(f"provider {self.name}: cannot list instance types: {exc}")
        limit = next((int(v["AttributeValue"]) for a in attrs.get("AccountAttributes", [])
                      if a["AttributeName"] == "max-instances" for v in a["AttributeValues"]), None)
        if limit is not None:
            need = sum(model.instance_count(n.name) for n in computes)
            running = self._running_count()
            if need + running > limit:
                problems.append(f"provider {self.name}: quota exceeded: the deployment needs {need} instances, "
                                f"{running} already run, and the account allows {limit} (max-instances)")
        return problems

    def _running_count(self) -> int:
        ec2 = self._client()
        res = self._call("counting instances", ec2.describe_instances, Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        return sum(len(r["Instances"]) for r in res.get("Reservations", []))

    async def check(self) -> str:
        ec2 = self._client()
        res = await asyncio.to_thread(self._call, "listing regions", ec2.describe_regions)
        return f"{len(res.get('Regions', []))} regions visible, using {self.region}"

    # -- the contract --------------------------------------------------------------
    async def create(self, req: ComputeRequest) -> Machine:
        return await asyncio.to_thread(self._create, req)

    def _find(self, ec2: Any, dep: str, inst: str | None = None) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{TAG_DEP}", "Values": [dep]},
                   {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
        if inst:
            filters.append({"Name": f"tag:{TAG_INST}", "Values": [inst]})
        res = self._call("finding instances", ec2.describe_instances, Filters=filters)
        return [i for r in res.get("Reservations", []) for i in r["Instances"]]

    def _create(self, req: ComputeRequest) -> Machine:
        region, ami = self.image_of(req.spec)
        ec2 = self._client(region)
        found = self._find(ec2, req.deployment_id, req.instance_id)
        if not found:
            itype = self.instance_type(req.spec, region)
            if not ami or not itype:
                raise ProviderError(self.name, f"{req.instance_id}: no image or no instance type fits")
            with self._setup_lock:
                key_name = self._key_pair(ec2, req.deployment_id)
                sg = self._security_group(ec2, req)
            tags = [{"Key": TAG_DEP, "Value": req.deployment_id}, {"Key": TAG_INST, "Value": req.instance_id},
                    {"Key": "Name",
                     "Value": f"dodas-{req.deployment_name}-{paths.instance_component(req.instance_id)}"}]
            kwargs: dict[str, Any] = dict(
                ImageId=ami, InstanceType=itype, MinCount=1, MaxCount=1, KeyName=key_name,
                UserData=keys.cloud_init(req.deployment_name),
                ClientToken=hashlib.sha256(f"{req.deployment_id}/{req.instance_id}".encode()).hexdigest()[:64],
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                                   {"ResourceType": "volume", "Tags": tags}])
            public = req.spec.network == "PUBLIC"
            if self.subnet_id:
                kwargs["NetworkInterfaces"] = [{"DeviceIndex": 0, "SubnetId": self.subnet_id, "Groups": [sg],
                                                "AssociatePublicIpAddress": public}]
            else:
                kwargs["SecurityGroupIds"] = [sg]
            res = self._call("starting the instance", ec2.run_instances, **kwargs)
            found = res["Instances"]
        inst = found[0]
        inst = self._wait_running(ec2, inst["InstanceId"])
        machine = self._machine(inst, req.deployment_id, req.instance_id, req.spec)
        if self.wait_ssh:
            _wait_port(machine.public_address or machine.private_address, 22, 300, self.name)
        return machine

    def _wait_running(self, ec2: Any, iid: str, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            res = self._call("waiting for the instance", ec2.describe_instances, InstanceIds=[iid])
            inst = res["Reservations"][0]["Instances"][0]
            state = inst["State"]["Name"]
            if state == "running":
                return inst
            if state in ("terminated", "shutting-down"):
                raise ProviderError(self.name, f"instance {iid} ended while starting ({state})")
            if time.monotonic() > deadline:
                raise ProviderError(self.name, f"instance {iid} still {state} after {timeout:.0f}s", transient=True)
            time.sleep(2)

    def _key_pair(self, ec2: Any, dep_id: str) -> str:
        name = f"dodas-{dep_id}"
        public = keys.ensure(dep_id).public_openssh
        existing = self._call("looking up the key pair", ec2.describe_key_pairs,
                              Filters=[{"Name": "key-name", "Values": [name]}]).get("KeyPairs", [])
        if not existing:
            self._call("importing the key pair", ec2.import_key_pair, KeyName=name,
                       PublicKeyMaterial=public.encode(),
                       TagSpecifications=[{"ResourceType": "key-pair",
                                           "Tags": [{"Key": TAG_DEP, "Value": dep_id}]}])
        return name

    def _security_group(self, ec2: Any, req: ComputeRequest) -> str:
        name = f"dodas-{req.deployment_id}"
        res = self._call("looking up the security group", ec2.describe_security_groups,
                         Filters=[{"Name": "group-name", "Values": [name]}])
        if res.get("SecurityGroups"):
            return res["SecurityGroups"][0]["GroupId"]
        sg = self._call("creating the security group", ec2.create_security_group, GroupName=name,
                        Description=f"dodas deployment {req.deployment_name}",
                        TagSpecifications=[{"ResourceType": "security-group",
                                            "Tags": [{"Key": TAG_DEP, "Value": req.deployment_id}]}])["GroupId"]
        perms = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": self.ssh_from}]},
                 {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": sg}]}]
        for p in req.spec.ports:
            port = p.source or p.target
            if port:
                perms.append({"IpProtocol": p.protocol, "FromPort": port, "ToPort": port,
                              "IpRanges": [{"CidrIp": "0.0.0.0/0"}]})
        self._call("opening the ports", ec2.authorize_security_group_ingress, GroupId=sg, IpPermissions=perms)
        return sg

    def _machine(self, inst: dict[str, Any], dep: str, instance_id: str, spec: ComputeSpec | None) -> Machine:
        return Machine(
            provider_id=inst["InstanceId"], public_address=inst.get("PublicIpAddress"),
            private_address=inst.get("PrivateIpAddress"), connection="ssh", ssh_user=self.ssh_user,
            ssh_key_file=str(keys.private_key_path(dep)),
            facts={"num_cpus": spec.num_cpus if spec else None, "mem_mib": spec.mem_mib if spec else None,
                   "workdir": paths.host_dir("/var/tmp/dodas", dep, instance_id),
                   "instance_type": inst.get("InstanceType")})

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        found = await asyncio.to_thread(self._find, self._client(), deployment_id, instance_id)
        return self._machine(found[0], deployment_id, instance_id, None) if found else None

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        def run() -> None:
            ec2 = self._client()
            ids = [i["InstanceId"] for i in self._find(ec2, deployment_id, instance_id)]
            if ids:
                self._call("terminating the instance", ec2.terminate_instances, InstanceIds=ids)
        await asyncio.to_thread(run)

    async def resources(self, deployment_id: str) -> list[str]:
        def run() -> list[str]:
            ec2 = self._client()
            out = [i["InstanceId"] for i in self._find(ec2, deployment_id)]
            sgs = self._call("listing security groups", ec2.describe_security_groups,
                             Filters=[{"Name": "group-name", "Values": [f"dodas-{deployment_id}"]}])
            out += [g["GroupId"] for g in sgs.get("SecurityGroups", [])]
            kps = self._call("listing key pairs", ec2.describe_key_pairs,
                             Filters=[{"Name": "key-name", "Values": [f"dodas-{deployment_id}"]}])
            out += [k["KeyName"] for k in kps.get("KeyPairs", [])]
            return out
        return await asyncio.to_thread(run)

    async def purge(self, deployment_id: str) -> None:
        def run() -> None:
            ec2 = self._client()
            ids = [i["InstanceId"] for i in self._find(ec2, deployment_id)]
            if ids:
                self._call("terminating instances", ec2.terminate_instances, InstanceIds=ids)
                deadline = time.monotonic() + 600
                while self._find(ec2, deployment_id) and time.monotonic() < deadline:
                    time.sleep(2)
            sgs = self._call("listing security groups", ec2.describe_security_groups,
                             Filters=[{"Name": "group-name", "Values": [f"dodas-{deployment_id}"]}])
            for g in sgs.get("SecurityGroups", []):
                self._call("deleting the security group", ec2.delete_security_group, GroupId=g["GroupId"])
            self._call("deleting the key pair", ec2.delete_key_pair, KeyName=f"dodas-{deployment_id}")
            keys.remove(deployment_id)
        await asyncio.to_thread(run)


def _wait_port(host: str | None, port: int, timeout: float, provider: str) -> None:
    if not host:
        raise ProviderError(provider, "the instance has no address to reach it by")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5):
                return
        except OSError:
            time.sleep(3)
    raise ProviderError(provider, f"SSH on {host}:{port} did not answer within {timeout:.0f}s", transient=True)

