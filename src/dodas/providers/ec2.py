"""The `ec2` provider: Amazon EC2 (or anything that speaks its API) with boto3.

An instance is made in its image's region (`aws://REGION/ami-...`; a bare AMI id
is in the provider's `region`), so a deployment may span regions; its type is
`instance_type` or the smallest of that region with the cpus and memory asked for;
`provider_id` is `REGION/i-...`. The key pair and security group (cloud.py) exist
in each region used; everything is tagged with the deployment's id.

A record per deployment in the data directory (cloud.Record, written before the
step it guards) holds the regions used, where `describe`, `resources` and `purge`
look (with no record, as for a deployment made elsewhere, the last two look in
every region), and each instance's ClientToken: new for every instance made and
recorded before `run_instances`, so a launch repeated after a crash returns the
first one's instance, and forgotten when the instance is deleted, so one made again
(after a scale-down) is never the replay of a terminated one.

boto3's waiters wait: `instance_running` after a launch (InvalidInstanceID.NotFound
while the new instance is not yet visible is waited out), `instance_terminated`
before a security group is deleted (EC2 refuses with DependencyViolation while an
instance using it shuts down; that is retried too). SSH is the engine's to wait for.

Credentials: the AWS credential chain (profile, environment, instance role) or an
Infrastructure Manager auth-file line (type = EC2).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from typing import Any

from dodas import paths
from dodas.model.deployment import ComputeSpec, DeploymentModel
from dodas.providers import keys
from dodas.providers.base import ComputeRequest, Machine, ProviderError
from dodas.providers.cloud import ALL, SELF, CloudProvider, Record, Rule, resource_name
from dodas.providers.config import ProviderConfig, im_auth_entry

TAG_DEP, TAG_INST = "dodas:deployment", "dodas:instance"
AUTH_CODES = {"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch",
              "InvalidAccessKeyId", "ExpiredToken", "UnrecognizedClientException"}
#: retried with backoff; an instance not yet visible and a group still in use are only a matter of time
TRANSIENT_CODES = {"RequestLimitExceeded", "Throttling", "ThrottlingException", "InsufficientInstanceCapacity",
                   "ServiceUnavailable", "InternalError", "Unavailable", "InvalidInstanceID.NotFound",
                   "DependencyViolation"}
MADE = ["pending", "running", "stopping", "stopped"]  # what create and delete look for
NOT_GONE = [*MADE, "shutting-down"]  # what resources and purge look for


class EC2Error(ProviderError):
    def __init__(self, provider: str, message: str, code: str = "", *, transient: bool = False) -> None:
        super().__init__(provider, message, transient=transient)
        self.code = code


class EC2Provider(CloudProvider):
    def __init__(self, cfg: ProviderConfig) -> None:
        super().__init__(cfg)
        o = cfg.options
        self.region = o.get("region") or "us-east-1"
        self.endpoint_url = o.get("endpoint_url")
        self.subnet_id = o.get("subnet_id")
        #: seconds between a waiter's polls, and how long a waiter waits
        self.poll = float(o.get("poll_interval", 5))
        self.timeout = float(o.get("timeout", 600))
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._records: dict[str, Record] = {}
        self._types: dict[str, list[tuple[int, int, str]]] = {}
        #: the regions of the images of the last plan checked (preflight)
        self._plan_regions: set[str] = set()

    # -- plumbing --------------------------------------------------------------
    def _client(self, region: str | None = None) -> Any:
        region = region or self.region
        with self._clients_lock:
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

    def _error(self, what: str, code: str, msg: str) -> EC2Error:
        if code in AUTH_CODES:
            return EC2Error(self.name, f"authentication failed ({code}): check the credentials", code)
        return EC2Error(self.name, f"{what}: {code}: {msg}", code, transient=code in TRANSIENT_CODES)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """One API call; errors become ProviderErrors that name the cause."""
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise self._error(what, err.get("Code", ""), err.get("Message", "")) from None
        except EndpointConnectionError as exc:
            raise ProviderError(self.name, f"{what}: cannot reach the endpoint ({exc})", transient=True) from None
        except BotoCoreError as exc:
            raise ProviderError(self.name, f"{what}: {exc}") from None

    def _wait(self, what: str, ec2: Any, waiter: str, ids: list[str]) -> None:
        """Wait with one of boto3's waiters (`instance_running`, `instance_terminated`)."""
        from botocore.exceptions import WaiterError

        def wait() -> WaiterError | None:
            try:
                ec2.get_waiter(waiter).wait(InstanceIds=ids, WaiterConfig={
                    "Delay": self.poll, "MaxAttempts": max(1, math.ceil(self.timeout / max(self.poll, 0.01)))})
            except WaiterError as exc:
                return exc
            return None
        exc = self._call(what, wait)
        if exc is not None:
            last = exc.last_response or {}
            if last.get("Error"):
                raise self._error(what, last["Error"].get("Code", ""), last["Error"].get("Message", "")) from None
            states = sorted({i["State"]["Name"] for r in last.get("Reservations", []) for i in r["Instances"]})
            timed_out = "Max attempts exceeded" in str(exc)
            raise EC2Error(self.name, f"{what}: instance {', '.join(ids)} "
                           + (f"still {'/'.join(states)} after {self.timeout:.0f}s" if timed_out
                              else f"is {'/'.join(states)}"), "Waiter", transient=timed_out) from None

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
        fits = [t for t in self._instance_types(region or self.region) if t[0] >= need_cpu and t[1] >= need_mem]
        return min(fits)[2] if fits else None

    def _instance_types(self, region: str) -> list[tuple[int, int, str]]:
        if region not in self._types:  # regions offer different types
            pages = self._client(region).get_paginator("describe_instance_types").paginate()
            self._types[region] = [(t["VCpuInfo"]["DefaultVCpus"], t["MemoryInfo"]["SizeInMiB"], t["InstanceType"])
                                   for page in pages for t in page["InstanceTypes"]]
        return self._types[region]

    # -- the deployment's record: regions used, ClientTokens -------------------------
    def _record(self, dep: str) -> Record:
        with self._record_lock:
            return self._records.setdefault(dep, Record("ec2", self.name, dep))

    def _token(self, dep: str, inst: str) -> str:
        """The ClientToken of the instance being made: the recorded one, or a new one
        recorded before it is used."""
        return self._record(dep).change(lambda r: r.setdefault("tokens", {}).setdefault(inst, uuid.uuid4().hex))

    def _forget_token(self, dep: str, inst: str) -> None:
        if self._record(dep).read() is not None:
            self._record(dep).change(lambda r: r.setdefault("tokens", {}).pop(inst, None))

    def _before_setup(self, dep: str, region: Any) -> None:
        if region not in self._recorded_regions(dep):
            self._record(dep).change(lambda r: r.update(regions=sorted({*r.get("regions", []), region})))

    def _recorded_regions(self, dep: str) -> list[str]:
        return list((self._record(dep).read() or {}).get("regions") or [])

    def _regions(self, dep: str) -> list[str]:
        """The regions a deployment uses: recorded, of the plan's images, the default."""
        return sorted({self.region, *self._plan_regions, *self._recorded_regions(dep)})

    def _search_regions(self, dep: str) -> list[str]:
        """Where to look for what a deployment left: its regions, or every region
        when nothing was recorded here."""
        if self._record(dep).read() is not None:
            return self._regions(dep)
        try:
            res = self._call("listing regions", self._client().describe_regions)
            return sorted({self.region, *(r["RegionName"] for r in res.get("Regions", []))})
        except ProviderError as exc:
            if "authentication" in exc.message:
                raise
            return self._regions(dep)

    def _prepare_scopes(self, dep: str) -> list[Any]:
        return sorted({*self._recorded_regions(dep), *self._plan_regions} or {self.region})

    # -- preflight ---------------------------------------------------------------
    def preflight(self, model: DeploymentModel) -> list[str]:
        problems = self.host_problems(model)
        try:
            ec2 = self._client()
            attrs = self._call("reading account limits", ec2.describe_account_attributes,
                               AttributeNames=["max-instances"])
        except ProviderError as exc:
            return [exc.message]
        computes = [n for n in model.nodes.values() if n.is_compute]
        self._plan_regions = {self.image_of(n.compute)[0] or self.region for n in computes}  # type: ignore[arg-type]
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

    # -- key pair and security group (cloud.py decides, these translate) ------------------
    def _ensure_key_pair(self, dep: str, region: Any) -> str:
        ec2, name = self._client(region), resource_name(dep)
        existing = self._call("looking up the key pair", ec2.describe_key_pairs,
                              Filters=[{"Name": "key-name", "Values": [name]}]).get("KeyPairs", [])
        if not existing:
            self._call("importing the key pair", ec2.import_key_pair, KeyName=name,
                       PublicKeyMaterial=keys.ensure(dep).public_openssh.encode(),
                       TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": TAG_DEP, "Value": dep}]}])
        return name

    def _groups(self, ec2: Any, dep: str) -> list[dict[str, Any]]:
        return self._call("looking up the security group", ec2.describe_security_groups,
                          Filters=[{"Name": "group-name", "Values": [resource_name(dep)]}]).get("SecurityGroups", [])

    def _ensure_group(self, dep: str, dep_name: str, region: Any) -> Any:
        ec2 = self._client(region)
        found = self._groups(ec2, dep)
        if found:
            return found[0]["GroupId"]
        return self._call("creating the security group", ec2.create_security_group, GroupName=resource_name(dep),
                          Description=f"dodas deployment {dep_name}",
                          TagSpecifications=[{"ResourceType": "security-group",
                                              "Tags": [{"Key": TAG_DEP, "Value": dep}]}])["GroupId"]

    def _group_rules(self, group: Any, region: Any) -> dict[Rule, Any]:
        res = self._call("reading the security group", self._client(region).describe_security_groups,
                         GroupIds=[group])
        out: dict[Rule, Any] = {}
        for perm in res["SecurityGroups"][0].get("IpPermissions", []):
            proto = str(perm.get("IpProtocol"))
            low, high = (None, None) if proto == ALL else (perm.get("FromPort"), perm.get("ToPort"))
            remotes = [r["CidrIp"] for r in perm.get("IpRanges", [])] + \
                [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])] + \
                [f"pl:{p['PrefixListId']}" for p in perm.get("PrefixListIds", [])] + \
                [SELF if p.get("GroupId") == group else f"sg:{p.get('GroupId')}"
                 for p in perm.get("UserIdGroupPairs", [])]
            for remote in remotes:
                out[Rule(proto, low, high, remote)] = None
        return out

    @staticmethod
    def _permission(rule: Rule, group: str) -> dict[str, Any]:
        perm: dict[str, Any] = {"IpProtocol": rule.protocol}
        if rule.protocol != ALL:
            perm.update(FromPort=rule.low, ToPort=rule.high)
        r = rule.remote
        if r == SELF or r.startswith("sg:"):
            perm["UserIdGroupPairs"] = [{"GroupId": group if r == SELF else r[3:]}]
        elif r.startswith("pl:"):
            perm["PrefixListIds"] = [{"PrefixListId": r[3:]}]
        elif ":" in r:
            perm["Ipv6Ranges"] = [{"CidrIpv6": r}]
        else:
            perm["IpRanges"] = [{"CidrIp": r}]
        return perm

    def _authorize(self, group: Any, region: Any, rules: list[Rule]) -> None:
        self._call("opening the ports", self._client(region).authorize_security_group_ingress, GroupId=group,
                   IpPermissions=[self._permission(r, group) for r in rules])

    def _revoke(self, group: Any, region: Any, rules: dict[Rule, Any]) -> None:
        self._call("closing ports", self._client(region).revoke_security_group_ingress, GroupId=group,
                   IpPermissions=[self._permission(r, group) for r in sorted(rules)])

    # -- the contract --------------------------------------------------------------
    def _find(self, ec2: Any, dep: str, inst: str | None = None, states: list[str] = MADE) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{TAG_DEP}", "Values": [dep]}, {"Name": "instance-state-name", "Values": states}]
        if inst:
            filters.append({"Name": f"tag:{TAG_INST}", "Values": [inst]})
        res = self._call("finding instances", ec2.describe_instances, Filters=filters)
        return [i for r in res.get("Reservations", []) for i in r["Instances"]]

    async def create(self, req: ComputeRequest) -> Machine:
        return await asyncio.to_thread(self._create, req)

    def _create(self, req: ComputeRequest) -> Machine:
        image_region, ami = self.image_of(req.spec)
        region = image_region or self.region
        ec2 = self._client(region)
        found = self._find(ec2, req.deployment_id, req.instance_id)
        if not found:
            itype = self.instance_type(req.spec, region)
            if not ami or not itype:
                raise ProviderError(self.name, f"{req.instance_id}: no image or no instance type fits")
            key_name, sg = self.shared(req.deployment_id, region)
            tags = [{"Key": TAG_DEP, "Value": req.deployment_id}, {"Key": TAG_INST, "Value": req.instance_id},
                    {"Key": "Name",
                     "Value": f"dodas-{req.deployment_name}-{paths.instance_component(req.instance_id)}"}]
            kwargs: dict[str, Any] = dict(
                ImageId=ami, InstanceType=itype, MinCount=1, MaxCount=1, KeyName=key_name,
                UserData=keys.cloud_init(req.deployment_name),
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                                   {"ResourceType": "volume", "Tags": tags}])
            if self.subnet_id:
                kwargs["NetworkInterfaces"] = [{"DeviceIndex": 0, "SubnetId": self.subnet_id, "Groups": [sg],
                                                "AssociatePublicIpAddress": req.spec.network == "PUBLIC"}]
            else:
                kwargs["SecurityGroupIds"] = [sg]
            for _ in range(2):
                token = self._token(req.deployment_id, req.instance_id)
                found = self._call("starting the instance", ec2.run_instances, ClientToken=token,
                                   **kwargs)["Instances"]
                if found[0]["State"]["Name"] not in ("shutting-down", "terminated"):
                    break
                # the token's instance was made and has ended since: the next one is new
                self._forget_token(req.deployment_id, req.instance_id)
        iid = found[0]["InstanceId"]
        self._wait("waiting for the instance to run", ec2, "instance_running", [iid])
        res = self._call("reading the instance", ec2.describe_instances, InstanceIds=[iid])
        return self._machine(region, res["Reservations"][0]["Instances"][0], req.deployment_id, req.instance_id,
                             req.spec)

    def _machine(self, region: str, inst: dict[str, Any], dep: str, instance_id: str,
                 spec: ComputeSpec | None) -> Machine:
        return self.machine(f"{region}/{inst['InstanceId']}", dep, instance_id, spec, inst.get("PublicIpAddress"),
                            inst.get("PrivateIpAddress"), region=region, instance_type=inst.get("InstanceType"))

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        def run() -> Machine | None:
            for region in self._regions(deployment_id):
                found = self._find(self._client(region), deployment_id, instance_id)
                if found:
                    return self._machine(region, found[0], deployment_id, instance_id, None)
            return None
        return await asyncio.to_thread(run)

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        def run() -> None:
            region = provider_id.split("/", 1)[0] if provider_id and "/" in provider_id else None
            for r in [region] if region else self._regions(deployment_id):
                ec2 = self._client(r)
                ids = [i["InstanceId"] for i in self._find(ec2, deployment_id, instance_id)]
                if ids:
                    self._call("terminating the instance", ec2.terminate_instances, InstanceIds=ids)
            self._forget_token(deployment_id, instance_id)
        await asyncio.to_thread(run)

    async def resources(self, deployment_id: str) -> list[str]:
        def run() -> list[str]:
            out = []
            for region in self._search_regions(deployment_id):
                ec2 = self._client(region)
                out += [f"{region}/{i['InstanceId']}" for i in self._find(ec2, deployment_id, states=NOT_GONE)]
                out += [f"{region}/{g['GroupId']}" for g in self._groups(ec2, deployment_id)]
                kps = self._call("listing key pairs", ec2.describe_key_pairs,
                                 Filters=[{"Name": "key-name", "Values": [resource_name(deployment_id)]}])
                out += [f"{region}/{k['KeyName']}" for k in kps.get("KeyPairs", [])]
            return out
        return await asyncio.to_thread(run)

    async def purge(self, deployment_id: str) -> None:
        def run() -> None:
            for region in self._search_regions(deployment_id):
                self._purge_region(self._client(region), deployment_id)
            self.forget(deployment_id)
            self._record(deployment_id).remove()
        await asyncio.to_thread(run)

    def _purge_region(self, ec2: Any, dep: str) -> None:
        for _ in range(3):  # the waiter gives up on an instance seen pending or stopping: end it again
            ids = [i["InstanceId"] for i in self._find(ec2, dep)]
            if ids:
                self._call("terminating instances", ec2.terminate_instances, InstanceIds=ids)
            # those just ended, by id (a filter on states may not show them yet), and any still ending
            ending = sorted({*ids, *(i["InstanceId"] for i in self._find(ec2, dep, states=NOT_GONE))})
            if not ending:
                break
            try:
                self._wait("waiting for the instances to end", ec2, "instance_terminated", ending)
                break
            except EC2Error as exc:
                if exc.code != "Waiter" or exc.transient:
                    raise
        for g in self._groups(ec2, dep):
            deadline = time.monotonic() + min(self.timeout, 12 * self.poll)
            while True:  # a group stays in use a little while after its instances ended
                try:
                    self._call("deleting the security group", ec2.delete_security_group, GroupId=g["GroupId"])
                    break
                except EC2Error as exc:
                    if exc.code != "DependencyViolation" or time.monotonic() > deadline:
                        raise
                    time.sleep(self.poll)
        self._call("deleting the key pair", ec2.delete_key_pair, KeyName=resource_name(dep))
