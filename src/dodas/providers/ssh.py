"""The `ssh` provider: hosts you already have (bare metal, a lab's machines).

"Creating" an instance claims a free host of the pool, "deleting" it stops every
process dodas started there, removes its work directory and releases the host.
Claims live in a file under the data directory, taken under a file lock, keyed by
(deployment id, instance id): a claim repeated after a crash finds the host it
claimed before. Host keys are learnt on first contact (accept-new) into dodas's
own known_hosts file and checked from then on.

    - name: lab
      type: ssh
      hosts:
        - address: 10.0.0.5
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

from dodas import paths
from dodas.model.deployment import DeploymentModel
from dodas.providers.base import ComputeRequest, Machine, ProcessRef, Provider, ProviderError
from dodas.providers.config import ProviderConfig

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
    address: str
    user: str
    key: str | None
    port: int
    options: dict[str, Any]

    @property
    def key_id(self) -> str:
        return f"{self.address}:{self.port}"


class SSHProvider(Provider):
    host_kind = "vm"

    def __init__(self, cfg: ProviderConfig) -> None:
        self.name = cfg.name
        self.hosts: list[Host] = []
        for h in cfg.options.get("hosts") or []:
            if not isinstance(h, dict) or not h.get("address"):
                raise ProviderError(self.name, "each host needs an address")
            key = os.path.expanduser(h["key"]) if h.get("key") else None
            self.hosts.append(Host(str(h["address"]), str(h.get("user") or os.environ.get("USER") or "root"), key,
                                   int(h.get("port", 22)), dict(h)))
        self.claims_file = paths.data_dir() / "ssh" / f"{cfg.name}.json"
        self.known_hosts = paths.data_dir() / "ssh" / "known_hosts"

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
    def _fits(h: Host, req: ComputeRequest) -> bool:
        cpus, mem = h.options.get("num_cpus"), h.options.get("mem_mib")
        return (cpus is None or req.spec.num_cpus is None or cpus >= req.spec.num_cpus) and \
               (mem is None or req.spec.mem_mib is None or mem >= req.spec.mem_mib)

    # -- ssh ------------------------------------------------------------------------
    def ssh_args(self, h: Host) -> list[str]:
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=10", "-p", str(h.port)]
        if h.key:
            args += ["-i", h.key, "-o", "IdentitiesOnly=yes"]
        return [*args, f"{h.user}@{h.address}"]

    def _run(self, h: Host, command: list[str], stdin: str | None = None, timeout: float = 120) -> str:
        try:
            r = subprocess.run([*self.ssh_args(h), shlex.join(command)], input=stdin, capture_output=True,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProviderError(self.name, f"host {h.address}: no answer within {timeout:.0f}s",
                                transient=True) from None
        if r.returncode == 255:
            raise ProviderError(self.name, f"cannot log in to {h.user}@{h.address}:{h.port}: "
                                f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else 'ssh failed'}",
                                transient=True)
        if r.returncode != 0:
            raise ProviderError(self.name, f"host {h.address}: {r.stderr.strip()[-500:]}")
        return r.stdout

    # -- the contract -------------------------------------------------------------
    def preflight(self, model: DeploymentModel) -> list[str]:
        if not self.hosts:
            return [f"provider {self.name}: no hosts configured"]
        problems = []
        for n in model.nodes.values():
            if n.compute is None:
                continue
            probe = ComputeRequest("", "", n.name, n.compute)
            if not any(self._fits(h, probe) for h in self.hosts):
                problems.append(f'provider {self.name}: node "{n.name}": no host of the pool has '
                                f"{n.compute.num_cpus} cpus and {n.compute.mem_mib} MiB")
        if problems:
            return problems
        need = sum(model.instance_count(n.name) for n in model.nodes.values() if n.is_compute)
        with self._claims() as claims:
            free = [h for h in self.hosts if h.key_id not in claims]
        mine = 0  # hosts this deployment already holds count as available to it
        if need > len(free) + mine:
            return [f"provider {self.name}: the deployment needs {need} hosts and {len(free)} of "
                    f"{len(self.hosts)} are free"]
        return []

    async def check(self) -> str:
        for h in self.hosts:
            await asyncio.to_thread(self._run, h, ["true"])
        return f"{len(self.hosts)} host(s) answer"

    async def create(self, req: ComputeRequest) -> Machine:
        with self._claims() as claims:
            held = next((k for k, c in claims.items() if c["deployment"] == req.deployment_id
                         and c["instance"] == req.instance_id), None)
            if held is None:
                host = next((h for h in self.hosts if h.key_id not in claims and self._fits(h, req)), None)
                if host is None:
                    raise ProviderError(self.name, f"no free host fits {req.instance_id} "
                                        f"({len(self.hosts)} in the pool, {len(claims)} claimed)")
                claims[host.key_id] = {"deployment": req.deployment_id, "instance": req.instance_id}
                held = host.key_id
        host = self._host(held)
        if host is None:
            raise ProviderError(self.name, f"host {held} is no longer in the pool")
        try:
            await asyncio.to_thread(self._run, host, ["true"])
        except ProviderError:
            with self._claims() as claims:
                claims.pop(held, None)
            raise
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
        await asyncio.to_thread(self._run, host, [python, "-c", CLEANUP, workdir, base])
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
        host = next((h for h in self.hosts if h.address == machine.private_address
                     and h.port == machine.ssh_port), None)
        if host is None or not recorded:
            return None
        out = await asyncio.to_thread(self._run, host, [host.options.get("python", "python3"), "-c", ALIVE,
                                                        *map(str, recorded)])
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
        return Machine(provider_id=h.key_id, public_address=h.address, private_address=h.address,
                       connection="ssh", ssh_user=h.user, ssh_port=h.port, ssh_key_file=h.key, facts=facts)
