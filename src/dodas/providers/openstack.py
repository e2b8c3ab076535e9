"""The `openstack` provider, with openstacksdk.

The image from `ost://HOST/IMAGE-ID` (HOST picks the provider, see placement.py)
or an image name; the smallest flavour with the requested vcpus and RAM unless
`instance_type` names one; the deployment's key pair and security group, made by
`prepare` and reconciled with the plan's ingress on every `up` (cloud.py: SSH from
`ssh_from`, everything between the deployment's own machines, and exactly the
template's endpoint ports); cloud-init user data; a floating IP for
`network_name: PUBLIC` (a machine without one has no public address: the engine
reaches it through a bastion). Every server carries the deployment and instance
ids in its name and metadata, floating IPs in their description, the security
group in its name: `destroy` finds them all by those even when the state lost
them. Servers are waited for until ACTIVE; SSH is the engine's to wait for.

Credentials: a clouds.yaml entry (`cloud:`, or OS_CLOUD), with any auth type
keystoneauth knows: password, application credential, or an OIDC access token
(`v3oidcaccesstoken`, as INFN and EGI clouds use); or an IM auth-file line.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

from dodas import paths
from dodas.model.deployment import ComputeSpec, DeploymentModel
from dodas.providers import keys
from dodas.providers.base import ComputeRequest, Machine, ProviderError
from dodas.providers.cloud import ALL, SELF, CloudProvider, Rule, resource_name
from dodas.providers.config import ProviderConfig, im_auth_entry, openstack_auth_from_im

META_DEP, META_INST = "dodas_deployment", "dodas_instance"


def _connect(cfg: ProviderConfig) -> Any:
    import openstack

    o = cfg.options
    if o.get("auth_file"):
        args = openstack_auth_from_im(im_auth_entry(o["auth_file"], o.get("auth_id"), "OpenStack"))
        return openstack.connect(**{k: v for k, v in args.items() if v is not None})
    return openstack.connect(cloud=o.get("cloud"))


class OpenStackProvider(CloudProvider):
    def __init__(self, cfg: ProviderConfig, connect: Callable[[ProviderConfig], Any] | None = None) -> None:
        super().__init__(cfg)
        o = cfg.options
        self.network_name = o.get("network")
        self.public_network_name = o.get("public_network")
        self.timeout = float(o.get("timeout", 900))
        self._connect = connect or (lambda c: _connect(c))
        self._conn: Any = None

    # -- plumbing ------------------------------------------------------------------
    @property
    def conn(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self._connect(self.cfg)
            except Exception as exc:  # noqa: BLE001 - missing cloud, bad clouds.yaml
                raise ProviderError(self.name, f"cannot set up the connection: {_reason(exc)}") from None
        return self._conn

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - openstacksdk and keystoneauth raise many kinds
            raise self._error(what, exc) from None

    def _error(self, what: str, exc: Exception) -> ProviderError:
        """One exception of openstacksdk or keystoneauth as dodas says it. A quota
        refusal comes as 403 from Nova ("Quota exceeded for instances") and 409 from
        Neutron ("Quota exceeded for resources: ['floatingip']"): neither is an
        authentication failure, nor does retrying mend it."""
        chain = _chain(exc)
        names = {type(e).__name__ for e in chain}
        status = next((s for e in chain for s in (getattr(e, "status_code", None), getattr(e, "http_status", None))
                       if s), None)
        name, reason = type(exc).__name__, _reason(exc)
        if status in (403, 409, 413) and "quota" in reason.lower():
            return ProviderError(self.name, f"quota exceeded while {what}: {reason}")
        # `authorize` wraps keystoneauth's Unauthorized in a bare SDKException: look down the chain
        if status in (401, 403) and names & {"Unauthorized", "HttpException", "SDKException"} \
                or names & {"Unauthorized", "MissingRequiredOptions", "AuthorizationFailure"}:
            return ProviderError(self.name, f"authentication failed: {reason}")
        transient = status in (409, 429, 500, 502, 503, 504) or \
            name in ("ConnectFailure", "ConnectTimeout", "SSLError", "RetriableConnectionFailure")
        return ProviderError(self.name, f"{what}: {reason}", transient=transient)

    def _wait_active(self, server: Any, instance_id: str) -> Any:
        """The server once ACTIVE. One that goes to ERROR is a failed attempt, told with
        Nova's own reason (its fault: "No valid host was found", a quota, an image),
        which openstacksdk's waiter leaves out."""
        try:
            return self.conn.compute.wait_for_server(server, wait=self.timeout)
        except Exception as exc:  # noqa: BLE001 - as _call
            if type(exc).__name__ != "ResourceFailure":
                raise self._error("waiting for the server", exc) from None
        found = self._call("reading the failed server", self.conn.compute.find_server, server.id,
                           ignore_missing=True)
        fault = ((getattr(found, "fault", None) or {}).get("message") or "no reason given") if found else "gone"
        raise ProviderError(self.name, f"{instance_id}: the server went to ERROR: {fault[:300]}")

    def server_name(self, dep: str, inst: str) -> str:
        return f"dodas-{dep[:8]}-{paths.instance_component(inst)}"

    @staticmethod
    def image_ref(spec: ComputeSpec) -> str | None:
        image = spec.image or ""
        if image.startswith("ost://"):
            return image[len("ost://"):].split("/", 1)[1] if "/" in image[len("ost://"):] else None
        return image or None

    def find_image(self, ref: str) -> Any:
        return self._call("looking up the image", self.conn.image.find_image, ref, ignore_missing=True)

    def flavor_for(self, spec: ComputeSpec) -> Any:
        flavors = list(self._call("listing flavours", self.conn.compute.flavors))
        if spec.instance_type:
            return next((f for f in flavors if f.name == spec.instance_type or f.id == spec.instance_type), None)
        need_cpu, need_mem = spec.num_cpus or 1, spec.mem_mib or 512
        fits = [f for f in flavors if f.vcpus >= need_cpu and f.ram >= need_mem]
        return min(fits, key=lambda f: (f.vcpus, f.ram, f.disk or 0, f.name)) if fits else None

    # -- preflight -------------------------------------------------------------------
    def preflight(self, model: DeploymentModel) -> list[str]:
        try:
            self._call("authenticating", self.conn.authorize)
        except ProviderError as exc:
            return [exc.message]
        problems = self.host_problems(model)
        cpus = ram = count = 0
        for n in model.nodes.values():
            if not n.compute:
                continue
            spec, k = n.compute, model.instance_count(n.name)
            ref = self.image_ref(spec)
            try:
                if not ref or self.find_image(ref) is None:
                    problems.append(f'provider {self.name}: node "{n.name}": unknown image {spec.image or "(none)"}')
                flavor = self.flavor_for(spec)
            except ProviderError as exc:
                return [exc.message]
            if flavor is None:
                what = spec.instance_type or f"{spec.num_cpus} vcpus and {spec.mem_mib} MiB"
                problems.append(f'provider {self.name}: node "{n.name}": no flavour has {what}')
            else:
                cpus, ram, count = cpus + k * flavor.vcpus, ram + k * flavor.ram, count + k
        try:
            limits = self._call("reading quotas", self.conn.get_compute_limits)
        except ProviderError:
            limits = None
        if limits is not None:
            for label, need, cap, used in (
                    ("instances", count, limits.max_total_instances, limits.total_instances_used),
                    ("vcpus", cpus, limits.max_total_cores, limits.total_cores_used),
                    ("MiB of RAM", ram, limits.max_total_ram_size, limits.total_ram_used)):
                if cap is not None and cap >= 0 and need + (used or 0) > cap:
                    problems.append(f"provider {self.name}: quota exceeded: the deployment needs {need} {label}, "
                                    f"{used or 0} are in use and the project may use {cap}")
        return problems

    async def check(self) -> str:
        await asyncio.to_thread(self._call, "authenticating", self.conn.authorize)
        return f"authenticated to {self.conn.config.name if hasattr(self.conn, 'config') else self.name}"

    # -- create ----------------------------------------------------------------------
    async def create(self, req: ComputeRequest) -> Machine:
        return await asyncio.to_thread(self._create, req)

    def _find_server(self, dep: str, inst: str) -> Any:
        name = self.server_name(dep, inst)
        for s in self._call("finding the server", self.conn.compute.servers, name=f"^{name}$"):
            if (s.metadata or {}).get(META_DEP) == dep and (s.metadata or {}).get(META_INST) == inst:
                return s
        return None

    def _create(self, req: ComputeRequest) -> Machine:
        c = self.conn
        server = self._find_server(req.deployment_id, req.instance_id)
        if server is None:
            key_name, sg = self.shared(req.deployment_id)
            image = self.find_image(self.image_ref(req.spec) or "")
            flavor = self.flavor_for(req.spec)
            if image is None or flavor is None:
                raise ProviderError(self.name, f"{req.instance_id}: image or flavour not found")
            net = self._private_network()
            server = self._call("creating the server", c.compute.create_server,
                                name=self.server_name(req.deployment_id, req.instance_id), image_id=image.id,
                                flavor_id=flavor.id, networks=[{"uuid": net.id}], key_name=key_name,
                                security_groups=[{"name": sg.name}],
                                user_data=base64.b64encode(keys.cloud_init(req.deployment_name).encode()).decode(),
                                metadata={META_DEP: req.deployment_id, META_INST: req.instance_id,
                                          "dodas_name": req.deployment_name})
        server = self._wait_active(server, req.instance_id)
        public = None
        if req.spec.network == "PUBLIC":
            public = self._floating_ip(server, req)
        return self.machine(server.id, req.deployment_id, req.instance_id, req.spec, public, _first_address(server))

    # -- key pair and security group (cloud.py decides, these translate) ------------------
    def _ensure_key_pair(self, dep: str, scope: Any) -> str:
        name = resource_name(dep)
        if self._call("looking up the key pair", self.conn.compute.find_keypair, name, ignore_missing=True) is None:
            self._call("creating the key pair", self.conn.compute.create_keypair, name=name,
                       public_key=keys.ensure(dep).public_openssh)
        return name

    def _ensure_group(self, dep: str, dep_name: str, scope: Any) -> Any:
        n, name = self.conn.network, resource_name(dep)
        sg = self._call("looking up the security group", n.find_security_group, name, ignore_missing=True)
        if sg is None:
            sg = self._call("creating the security group", n.create_security_group, name=name,
                            description=f"dodas deployment {dep_name}")
        return sg

    def _group_rules(self, group: Any, scope: Any) -> dict[Rule, Any]:
        out: dict[Rule, Any] = {}
        for r in self._call("reading the security group", self.conn.network.security_group_rules,
                            security_group_id=group.id):
            if r.direction != "ingress":
                continue  # egress is left as the cloud makes it (everything out)
            proto = str(r.protocol) if r.protocol not in (None, "any") else ALL
            low, high = (None, None) if proto == ALL else (r.port_range_min, r.port_range_max)
            if r.remote_group_id:
                remote = SELF if r.remote_group_id == group.id else f"sg:{r.remote_group_id}"
            else:
                remote = r.remote_ip_prefix or ("::/0" if r.ethertype == "IPv6" else "0.0.0.0/0")
            out[Rule(proto, low, high, remote)] = r
        return out

    def _authorize(self, group: Any, scope: Any, rules: list[Rule]) -> None:
        for rule in rules:
            args: dict[str, Any] = {"ethertype": "IPv6" if ":" in rule.remote else "IPv4"}
            if rule.protocol != ALL:
                args.update(protocol=rule.protocol, port_range_min=rule.low, port_range_max=rule.high)
            if rule.remote == SELF:
                args.update(remote_group_id=group.id, ethertype="IPv4")
            else:
                args["remote_ip_prefix"] = rule.remote
            self._call("opening ports", self.conn.network.create_security_group_rule, security_group_id=group.id,
                       direction="ingress", **args)

    def _revoke(self, group: Any, scope: Any, rules: dict[Rule, Any]) -> None:
        for rule in sorted(rules):
            self._call("closing a port", self.conn.network.delete_security_group_rule, rules[rule],
                       ignore_missing=True)

    def _private_network(self) -> Any:
        n = self.conn.network
        if self.network_name:
            net = self._call("looking up the network", n.find_network, self.network_name, ignore_missing=True)
            if net is None:
                raise ProviderError(self.name, f'network "{self.network_name}" not found')
            return net
        nets = [x for x in self._call("listing networks", n.networks) if not x.is_router_external]
        if not nets:
            raise ProviderError(self.name, "no private network: set `network` in the provider configuration")
        return nets[0]

    def _floating_ip(self, server: Any, req: ComputeRequest) -> str:
        n = self.conn.network
        tag = f"dodas:{req.deployment_id}:{req.instance_id}"
        for ip in self._call("listing floating IPs", n.ips, description=tag):
            return ip.floating_ip_address
        ext = None
        if self.public_network_name:
            ext = self._call("looking up the public network", n.find_network, self.public_network_name,
                             ignore_missing=True)
        else:
            ext = next(iter(x for x in self._call("listing networks", n.networks) if x.is_router_external), None)
        if ext is None:
            raise ProviderError(self.name, "no public network for a floating IP: set `public_network`")
        port = next(iter(self._call("finding the server's port", n.ports, device_id=server.id)), None)
        if port is None:
            raise ProviderError(self.name, f"server {server.id} has no network port", transient=True)
        ip = self._call("allocating a floating IP", n.create_ip, floating_network_id=ext.id, port_id=port.id,
                        description=tag)
        return ip.floating_ip_address

    # -- describe / delete ----------------------------------------------------------------
    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        def run() -> Machine | None:
            s = self._find_server(deployment_id, instance_id)
            if s is None:
                return None
            tag = f"dodas:{deployment_id}:{instance_id}"
            fip = next(iter(self._call("listing floating IPs", self.conn.network.ips, description=tag)), None)
            return self.machine(s.id, deployment_id, instance_id, None, fip.floating_ip_address if fip else None,
                                _first_address(s))
        return await asyncio.to_thread(run)

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        def run() -> None:
            n = self.conn.network
            for ip in list(self._call("listing floating IPs", n.ips,
                                      description=f"dodas:{deployment_id}:{instance_id}")):
                self._call("releasing the floating IP", n.delete_ip, ip, ignore_missing=True)
            s = self._find_server(deployment_id, instance_id)
            if s is not None:
                self._call("deleting the server", self.conn.compute.delete_server, s, ignore_missing=True)
                self._call("waiting for the deletion", self.conn.compute.wait_for_delete, s, wait=self.timeout)
        await asyncio.to_thread(run)

    def _ours(self, deployment_id: str) -> list[Any]:
        return [s for s in self._call("listing servers", self.conn.compute.servers, name=f"^dodas-{deployment_id[:8]}-")
                if (s.metadata or {}).get(META_DEP) == deployment_id]

    def _our_ips(self, deployment_id: str) -> list[Any]:
        return [ip for ip in self._call("listing floating IPs", self.conn.network.ips)
                if (ip.description or "").startswith(f"dodas:{deployment_id}:")]

    async def resources(self, deployment_id: str) -> list[str]:
        def run() -> list[str]:
            out = [s.id for s in self._ours(deployment_id)] + [ip.id for ip in self._our_ips(deployment_id)]
            sg = self._call("looking up the security group", self.conn.network.find_security_group,
                            resource_name(deployment_id), ignore_missing=True)
            kp = self._call("looking up the key pair", self.conn.compute.find_keypair, resource_name(deployment_id),
                            ignore_missing=True)
            return out + ([sg.id] if sg else []) + ([kp.name] if kp else [])
        return await asyncio.to_thread(run)

    async def purge(self, deployment_id: str) -> None:
        def run() -> None:
            c, n = self.conn.compute, self.conn.network
            for ip in self._our_ips(deployment_id):
                self._call("releasing a floating IP", n.delete_ip, ip, ignore_missing=True)
            servers = self._ours(deployment_id)
            for s in servers:
                self._call("deleting a server", c.delete_server, s, ignore_missing=True)
            for s in servers:
                self._call("waiting for a deletion", c.wait_for_delete, s, wait=self.timeout)
            sg = self._call("looking up the security group", n.find_security_group, resource_name(deployment_id),
                            ignore_missing=True)
            if sg is not None:
                self._call("deleting the security group", n.delete_security_group, sg, ignore_missing=True)
            self._call("deleting the key pair", c.delete_keypair, resource_name(deployment_id), ignore_missing=True)
            self.forget(deployment_id)
        await asyncio.to_thread(run)


def _first_address(server: Any) -> str | None:
    for addrs in (getattr(server, "addresses", None) or {}).values():
        for a in addrs:
            if a.get("OS-EXT-IPS:type", "fixed") == "fixed" or len(addrs) == 1:
                return a.get("addr")
    return getattr(server, "access_ipv4", None) or None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or during, nearest first."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 6:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]

