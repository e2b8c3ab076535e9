"""The `ssh` provider: hosts you already have (bare metal, a lab's machines).

"Creating" an instance claims a free host of the pool, "deleting" it stops every
process dodas started there, removes its work directory and releases the host.
Claims live in a file under the data directory, taken under a file lock, keyed by
(deployment id, instance id): a claim repeated after a crash finds the host it
claimed before. Host keys are learnt on first contact (accept-new) into dodas's
own known_hosts file and checked from then on; the hosts outlive claims, so their
keys are kept when a deployment ends.

A host has the `address` this machine reaches it by, and the `private_address` the
other hosts reach it by (the same unless given). A host with only a
`private_address` sits on a private network: dodas reaches it through a bastion
(the deployment's public host, or the provider's `bastion:`), and only nodes on a
private network (`network_name: PRIVATE`) are placed on it; a PUBLIC node needs a
host with an `address`.

    - name: lab
      type: ssh
      # bastion: {address: gw.example.org, user: ubuntu, key: ~/.ssh/id_ed25519}
      hosts:
        - address: 10.0.0.5
          private_address: 192.168.1.5
          user: ubuntu
          key: ~/.ssh/id_ed25519
          port: 22
          num_cpus: 8            # what the roles may use (default: what the template asks)
          mem_mib: 16384
          python: /usr/bin/python3
          spark_home: /opt/spark # optional: use this Spark instead of installing one
          java_home: /usr/lib/jvm/java-17-openjdk-amd64
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shlex
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dodas import paths, ssh_access
from dodas.model.deployment import ComputeSpec, DeploymentModel
from dodas.providers.base import ComputeRequest, Machine, ProcessRef, Provider, ProviderError
from dodas.providers.config import ProviderConfig
from dodas.ssh_access import Endpoint

#: Run on the host by `delete`: stop every process marked for the machine, then
#: remove its directory, which must lie inside the pool's work directory (argv 2);
#: what cannot be removed is reported, never passed over. Python, because the host
#: has it for Ansible anyway.
CLEANUP = r"""
import os, shutil, signal, sys, time
target, base = os.path.abspath(sys.argv[1]), os.path.realpath(sys.argv[2])
parent = os.path.realpath(os.path.dirname(target))
if not (parent == base or parent.startswith(base + os.sep)) or os.path.basename(target) in ("", ".", ".."):
    sys.exit("refusing to remove %s: it is not inside %s" % (target, base))
mark = ("DODAS_MACHINE=" + sys.argv[1]).encode()
def start(p):
    try:
        return open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
def marked():
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                env = open("/proc/%s/environ" % p, "rb").read().split(b"\0")
            except OSError:
                continue
            if mark in env:
                out.append((int(p), start(p)))
    return out
for sig in (signal.SIGTERM, signal.SIGKILL):
    for p, began in marked():
        if start(p) == began:  # still the process that was found: a recycled pid is not signalled
            try: os.kill(p, sig)
            except OSError: pass
    for _ in range(100):
        if not marked(): break
        time.sleep(0.1)
failed = []
def onerror(func, path, info):
    if not isinstance(info[1], FileNotFoundError):
        failed.append("%s: %s" % (path, getattr(info[1], "strerror", None) or info[1]))
if os.path.lexists(target):
    shutil.rmtree(target, onerror=onerror)
if failed or os.path.lexists(target):
    sys.exit("cannot remove %s (%s)" % (target, failed[0] if failed else "still there"))
"""

#: Run on the host by `processes_alive`: each argument is "PID:START" (START the
#: recorded start time in clock ticks since boot, "?" when the record has none);
#: a process is alive when it runs and, if START is known, started then.
ALIVE = r"""
import json, sys
out = {}
for arg in sys.argv[1:]:
    pid, start = arg.split(":", 1)
    try:
        fields = open("/proc/%d/stat" % int(pid)).read().rsplit(")", 1)[1].split()
        out[arg] = fields[0] not in ("Z", "X") and (start == "?" or fields[19] == start)
    except (OSError, IndexError, ValueError):
        out[arg] = False
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Host:
    #: how this machine reaches the host; None: only through a bastion
    address: str | None
    #: how the other hosts reach it
    private_address: str
    user: str
    key: str | None
    port: int
    options: dict[str, Any]

    @property
    def key_id(self) -> str:
        return f"{self.address or self.private_address}:{self.port}"

    def endpoint(self) -> Endpoint:
        return Endpoint(self.address or self.private_address, self.port, self.user, self.key)


class SSHProvider(Provider):
    host_kind = "vm"
    ephemeral_hosts = False

    def __init__(self, cfg: ProviderConfig) -> None:
        self.name = cfg.name
        self.hosts: list[Host] = []
        for n, h in enumerate(cfg.options.get("hosts") or [], 1):
            if not isinstance(h, dict) or not (h.get("address") or h.get("private_address")):
                raise ProviderError(self.name, f"host {n}: each host needs an address (or, behind a bastion, "
                                    "a private_address)")
            key = os.path.expanduser(h["key"]) if h.get("key") else None
            address = str(h["address"]) if h.get("address") else None
            self.hosts.append(Host(address, str(h.get("private_address") or address),
                                   str(h.get("user") or os.environ.get("USER") or "root"), key,
                                   int(h.get("port", 22)), dict(h)))
        self.claims_file = paths.data_dir() / "ssh" / f"{cfg.name}.json"

    # -- claims ------------------------------------------------------------------
    @contextmanager
    def _claims(self) -> Iterator[dict[str, dict[str, str]]]:
        self.claims_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.claims_file.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.claims_file.read_text()) if self.claims_file.exists() else {}
                yield data
                tmp = self.claims_file.with_suffix(".part")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.claims_file)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _host(self, key_id: str) -> Host | None:
        return next((h for h in self.hosts if h.key_id == key_id), None)

    @staticmethod
    def _fits(h: Host, spec: ComputeSpec) -> bool:
        cpus, mem = h.options.get("num_cpus"), h.options.get("mem_mib")
        return (cpus is None or spec.num_cpus is None or cpus >= spec.num_cpus) and \
               (mem is None or spec.mem_mib is None or mem >= spec.mem_mib) and \
               (spec.network != "PUBLIC" or h.address is not None)

    # -- ssh ------------------------------------------------------------------------
    def _jump(self, h: Host, deployment_id: str | None = None) -> Endpoint | None:
        """How to reach a host: directly when it has an address; else through the
        provider's bastion, or the public host the same deployment holds (its
        bastion), or else the pool's first public host."""
        if h.address is not None or self.bastion is False:
            return None
        if isinstance(self.bastion, Endpoint):
            return self.bastion
        publics = [x for x in self.hosts if x.address is not None]
        if deployment_id is not None:
            with self._claims() as claims:
                mine = {k for k, c in claims.items() if c["deployment"] == deployment_id}
            publics = sorted(publics, key=lambda x: x.key_id not in mine)
        if not publics:
            raise ProviderError(self.name, f"host {h.private_address} has no address this machine can reach, and "
                                "the pool has no public host nor a bastion to reach it through")
        return publics[0].endpoint()

    def _run(self, h: Host, command: list[str], stdin: str | None = None, timeout: float = 120,
             deployment_id: str | None = None) -> str:
        jump = self._jump(h, deployment_id)
        config = ssh_access.write_jump_config(self.claims_file.parent / "jumps", [jump]) if jump else None
        where = access_text(h, jump)
        try:
            r = subprocess.run([*ssh_access.ssh_command(h.endpoint(), jump, config), shlex.join(command)],
                               input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProviderError(self.name, f"host {where}: no answer within {timeout:.0f}s", transient=True) from None
        if r.returncode == 255:
            raise ProviderError(self.name, f"cannot log in to {where}: "
                                f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'ssh failed'}",
                                transient=True)
        if r.returncode != 0:
            raise ProviderError(self.name, f"host {where}: {r.stderr.strip()[-500:]}")
        return r.stdout

    # -- the contract -------------------------------------------------------------
    def preflight(self, model: DeploymentModel) -> list[str]:
        return self.host_problems(model) + self._pool_problems(model)

    def _pool_problems(self, model: DeploymentModel) -> list[str]:
        """The pool's hosts against the plan's machines: sizes, count, public addresses."""
        if not self.hosts:
            return [f"provider {self.name}: no hosts configured"]
        problems = []
        for n in model.nodes.values():
            if n.compute is None:
                continue
            if not any(self._fits(h, n.compute) for h in self.hosts):
                public = " and a public address" if n.compute.network == "PUBLIC" else ""
                problems.append(f'provider {self.name}: node "{n.name}": no host of the pool has '
                                f"{n.compute.num_cpus} cpus and {n.compute.mem_mib} MiB{public}")
        if problems:
            return problems
        need = sum(model.instance_count(n.name) for n in model.nodes.values() if n.is_compute)
        need_public = sum(model.instance_count(n.name) for n in model.nodes.values()
                          if n.compute is not None and n.compute.network == "PUBLIC")
        with self._claims() as claims:
            # hosts this deployment already holds are available to it
            usable = [h for h in self.hosts if h.key_id not in claims
                      or (self.deployment_id is not None and claims[h.key_id]["deployment"] == self.deployment_id)]
        mine = sum(1 for h in usable if h.key_id in claims)
        if need > len(usable):
            return [f"provider {self.name}: the deployment needs {need} hosts and {len(usable) - mine} of "
                    f"{len(self.hosts)} are free" + (f" (besides the {mine} it holds)" if mine else "")]
        public = sum(1 for h in usable if h.address is not None)
        if need_public > public:
            return [f"provider {self.name}: the deployment needs {need_public} hosts with a public address and "
                    f"{public} are free"]
        return []

    async def check(self) -> str:
        for h in self.hosts:
            await asyncio.to_thread(self._run, h, ["true"])
        behind = sum(1 for h in self.hosts if h.address is None)
        return f"{len(self.hosts)} host(s) answer" + (f" ({behind} through a bastion)" if behind else "")

    async def create(self, req: ComputeRequest) -> Machine:
        with self._claims() as claims:
            held = next((k for k, c in claims.items() if c["deployment"] == req.deployment_id
                         and c["instance"] == req.instance_id), None)
            if held is None:
                # a private node takes a host without a public address first: those can hold nothing else
                free = sorted((h for h in self.hosts if h.key_id not in claims and self._fits(h, req.spec)),
                              key=lambda h: req.spec.network != "PUBLIC" and h.address is not None)
                host = free[0] if free else None
                if host is None:
                    raise ProviderError(self.name, f"no free host fits {req.instance_id} "
                                        f"({len(self.hosts)} in the pool, {len(claims)} claimed)")
                claims[host.key_id] = {"deployment": req.deployment_id, "instance": req.instance_id}
                held = host.key_id
        host = self._host(held)
        if host is None:
            raise ProviderError(self.name, f"host {held} is no longer in the pool")
        # whether it answers is the engine's to find out: a private host is reached
        # through the deployment's bastion, which may not be claimed yet
        return self._machine(host, req.deployment_id, req.instance_id, req)

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        with self._claims() as claims:
            held = next((k for k, c in claims.items() if c["deployment"] == deployment_id
                         and c["instance"] == instance_id), None)
        host = self._host(held) if held else None
        return self._machine(host, deployment_id, instance_id, None) if host else None

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        with self._claims() as claims:
            held = next((k for k, c in claims.items() if c["deployment"] == deployment_id
                         and c["instance"] == instance_id), None)
        host = self._host(held) if held else None
        if host is None:
            return
        workdir = self._workdir(host, deployment_id, instance_id)
        python = host.options.get("python", "python3")
        base = host.options.get("workdir", "/var/tmp/dodas")
        await asyncio.to_thread(self._run, host, [python, "-c", CLEANUP, workdir, base], None, 120, deployment_id)
        with self._claims() as claims:
            claims.pop(held, None)  # type: ignore[arg-type]

    async def resources(self, deployment_id: str) -> list[str]:
        with self._claims() as claims:
            return sorted(k for k, c in claims.items() if c["deployment"] == deployment_id)

    async def purge(self, deployment_id: str) -> None:
        with self._claims() as claims:
            held = [(k, c["instance"]) for k, c in claims.items() if c["deployment"] == deployment_id]
        for _key, inst in held:
            await self.delete(deployment_id, inst, None)

    async def processes_alive(self, machine: Machine, recorded: list[ProcessRef]) -> dict[ProcessRef, bool] | None:
        host = self._host(machine.provider_id)
        if host is None or not recorded:
            return None
        with self._claims() as claims:
            dep = (claims.get(host.key_id) or {}).get("deployment")
        out = await asyncio.to_thread(self._run, host, [host.options.get("python", "python3"), "-c", ALIVE,
                                                        *map(str, recorded)], None, 120, dep)
        answers = json.loads(out)
        return {r: bool(answers.get(str(r))) for r in recorded}

    def _workdir(self, h: Host, dep: str, inst: str) -> str:
        return paths.host_dir(h.options.get("workdir", "/var/tmp/dodas"), dep, inst)  # always inside the base

    def _machine(self, h: Host, dep: str, inst: str, req: ComputeRequest | None) -> Machine:
        o = h.options
        spec = req.spec if req else None
        facts = {"workdir": self._workdir(h, dep, inst),
                 "num_cpus": o.get("num_cpus") or (spec.num_cpus if spec else None) or 1,
                 "mem_mib": o.get("mem_mib") or (spec.mem_mib if spec else None) or 1024}
        for k in ("python", "spark_home", "java_home", "venv_bin"):
            if o.get(k):
                facts[k] = o[k]
        if o.get("python") and not o.get("venv_bin"):
            facts["venv_bin"] = str(Path(o["python"]).parent)
        return Machine(provider_id=h.key_id, public_address=h.address, private_address=h.private_address,
                       connection="ssh", ssh_user=h.user, ssh_port=h.port, ssh_key_file=h.key, facts=facts)


def access_text(h: Host, jump: Endpoint | None) -> str:
    where = f"{h.user}@{h.address or h.private_address}:{h.port}"
    return f"{where} (through {jump.address}:{jump.port})" if jump else where
