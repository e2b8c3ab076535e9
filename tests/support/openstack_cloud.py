"""A real OpenStack control plane for the OpenStack provider's tests, from Debian's
packages (make.py test installs them): RabbitMQ, Keystone, Glance, Placement, Nova
(API, conductor, scheduler, and compute with Nova's fake driver sized like a small
hypervisor: 10 vCPUs, 8 GiB) and Neutron (server with ML2, and the Linux-bridge
agent that binds the servers' ports). One per test run, in a directory of its own,
on 127.0.0.1 only; every process in its own process group, all stopped at the end.

What it is not: the fake driver starts no machine, so nothing can be logged in to;
the networks are of type "local" (no wire), so a floating IP is an API object
with no NAT behind it. What the provider asks of the APIs is answered by the real
services, which is what its tests are about.

`python tests/support/openstack_cloud.py` starts one and keeps it until ^C (for
looking at it with the openstack client: OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

try:
    from support import openstack_conf as conf
    from support import openstack_seed as seed
    from support.statedb import postgres_server
    from support.waiting import wait_until
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from support import openstack_conf as conf
    from support import openstack_seed as seed
    from support.statedb import postgres_server
    from support.waiting import wait_until

#: Debian's interpreter: the services are Debian's python3-* packages
PY = "/usr/bin/python3"
RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
SERVE = str(Path(__file__).with_name("wsgi_serve.py"))
#: the hang guard of each wait at start-up (a busy machine is slow, not stuck)
START_GUARD = 600.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> str | None:
    """Why the cloud cannot start here, or None."""
    import importlib.util as iu

    if not Path(RABBIT).exists():
        return "rabbitmq-server is not installed (make.py test installs it)"
    probe = subprocess.run([PY, "-c", "import keystone, glance, placement, nova, neutron"], capture_output=True)
    if probe.returncode != 0:
        return "Debian's python3-keystone/glance/placement/nova/neutron are not installed (make.py test installs them)"
    if iu.find_spec("openstack") is None:
        return "openstacksdk is not installed"
    return None


@dataclass
class Cloud:
    """A running control plane: its layout, its clouds.yaml and its processes."""
    lay: conf.Layout
    clouds_yaml: Path = field(init=False)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    started_in: float = 0.0

    def __post_init__(self) -> None:
        self.clouds_yaml = self.lay.root / "clouds.yaml"

    # -- processes ---------------------------------------------------------------------
    def _env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {**keep, "HOME": str(self.lay.root / "home"), **extra}

    def run(self, what: str, *args: str, module: str | None = None) -> None:
        """A one-off management command (db sync, bootstrap), its output in the log."""
        cmd = [PY, "-c", f"import sys; from {module} import main; sys.exit(main())", *args] if module else list(args)
        with open(self.lay.root / "log" / f"setup-{what}.log", "ab") as log:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                  cwd=self.lay.root).returncode
        if code != 0:
            raise RuntimeError(f"{what} failed ({code}): see {self.lay.root}/log/setup-{what}.log")

    def start(self, name: str, cmd: list[str], **env: str) -> None:
        log = open(self.lay.root / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(**env),
                                            cwd=self.lay.root, start_new_session=True)
        log.close()

    def start_main(self, name: str, module: str, *conf_files: str, path_first: str | None = None) -> None:
        args = [a for f in conf_files for a in ("--config-file", str(self.lay.root / "etc" / f))]
        env = {"PATH": f"{path_first}:{os.environ.get('PATH', '/usr/bin:/bin')}"} if path_first else {}
        self.start(name, [PY, "-c", f"import sys; from {module} import main; sys.exit(main())", *args], **env)

    def alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"OpenStack services exited: {dead}; logs in {self.lay.root}/log")

    def wait_port(self, service: str) -> None:
        def up() -> bool:
            self.alive()
            with socket.socket() as s:
                s.settimeout(1)
                return s.connect_ex(("127.0.0.1", self.lay.ports[service])) == 0
        wait_until(up, f"{service} to listen", timeout=START_GUARD, every=0.2)

    def stop(self) -> None:
        """Every process group, TERM then KILL; epmd (which Erlang leaves behind) too."""
        for p in self.procs.values():
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(p.pid, signal.SIGKILL)
                p.wait()
            _signal_group(p.pid, signal.SIGKILL)  # children left in the group (privsep, workers)
        for fn in self.cleanups:
            fn()
        self.cleanups.clear()
        epmd = shutil.which("epmd")
        if epmd:
            subprocess.run([epmd, "-kill"], capture_output=True,
                           env={**self._env(), "ERL_EPMD_PORT": str(self.lay.ports["epmd"])})

    # -- the SDK ---------------------------------------------------------------------------
    def connect(self, cloud: str = "dodas-admin") -> Any:
        from openstack.config.loader import OpenStackConfig
        from openstack.connection import Connection

        loader = OpenStackConfig(config_files=[str(self.clouds_yaml)], vendor_files=[], load_envvars=False)
        return Connection(config=loader.get_one(cloud))


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _layout(root: Path) -> conf.Layout:
    ports = {k: _free_port() for k in ("keystone", "glance", "placement", "nova", "neutron", "rabbit",
                                       "rabbit_dist", "epmd")}
    pw = {k: secrets.token_hex(12) for k in ("admin", "service", "user")}
    return conf.Layout(root, ports, pw["admin"], pw["service"], pw["user"])


def _write_configs(lay: conf.Layout) -> None:
    for d in ("etc", "log", "db", "home", "rabbit", "state/keystone", "state/glance/images", "state/glance/staging",
              "state/glance/tasks", "state/nova/instances", "state/nova/lock", "state/neutron/lock", "state/placement"):
        (lay.root / d).mkdir(parents=True, exist_ok=True)
    files = {**conf.keystone(lay), **conf.glance(lay), **conf.placement(lay), **conf.nova(lay),
             **conf.neutron(lay, "linuxbridge"), **conf.rabbit(lay)}
    for name, text in files.items():
        (lay.root / "etc" / name).write_text(text)


#: the Linux-bridge agent lists ebtables' nat chains at start (its ARP-spoofing clean-up),
#: and this machine's kernel has no ebtables nat table (legacy ebtables exits 255, which
#: the agent retries for ever). No tap device is ever plugged (the fake driver makes
#: none), so the agent never programs a rule: the listing answers "no chains", and any
#: other use fails loudly rather than pretending
EBTABLES_SHIM = """#!/bin/sh
case " $* " in
  *" -L "*) echo "Bridge table: nat"; exit 0;;
  *) echo "dodas test cloud: ebtables $* is not available on this kernel" >&2; exit 1;;
esac
"""


def _start_rabbit(c: Cloud) -> None:
    lay = c.lay
    c.start("rabbitmq", [RABBIT], RABBITMQ_CONFIG_FILE=str(lay.root / "etc" / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(lay.root / "etc" / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(lay.root / "rabbit" / "mnesia"), RABBITMQ_LOG_BASE=str(lay.root / "log"),
            RABBITMQ_NODENAME=f"dodas{lay.ports['rabbit']}@localhost", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(lay.ports["rabbit"]), RABBITMQ_DIST_PORT=str(lay.ports["rabbit_dist"]),
            ERL_EPMD_ADDRESS="127.0.0.1", ERL_EPMD_PORT=str(lay.ports["epmd"]),
            RABBITMQ_PID_FILE=str(lay.root / "rabbit" / "pid"), RABBITMQ_SERVER_ERL_ARGS="+S 1:1 +A 4",
            RABBITMQ_SCHEDULER_BIND_TYPE="u")


def _wal(lay: conf.Layout, name: str) -> None:
    """Write-ahead logging on a SQLite file (it stays set in the file): in the
    default journal mode an open read transaction, which the services keep beside
    a write one, makes the write's commit fail with "database is locked"."""
    import sqlite3

    with sqlite3.connect(lay.root / "db" / f"{name}.sqlite") as db:
        db.execute("PRAGMA journal_mode=WAL")


def _keystone(c: Cloud) -> None:
    lay, etc = c.lay, str(c.lay.root / "etc" / "keystone.conf")
    ks = "keystone.cmd.manage"
    c.run("keystone-db", "--config-file", etc, "db_sync", module=ks)
    _wal(lay, "keystone")
    for what in ("fernet_setup", "credential_setup"):
        c.run(f"keystone-{what}", "--config-file", etc, what, "--keystone-user", "root", "--keystone-group", "root",
              module=ks)
    c.run("keystone-bootstrap", "--config-file", etc, "bootstrap", "--bootstrap-password", lay.admin_password,
          "--bootstrap-admin-url", lay.keystone, "--bootstrap-public-url", lay.keystone,
          "--bootstrap-internal-url", lay.keystone, "--bootstrap-region-id", "RegionOne", module=ks)
    c.start("keystone", [PY, SERVE, str(lay.ports["keystone"]), "keystone.server.wsgi:initialize_public_application"],
            OS_KEYSTONE_CONFIG_FILES=etc)


def _nova_db(c: Cloud) -> None:
    nova = ("--config-file", str(c.lay.root / "etc" / "nova.conf"))
    c.run("nova-api-db", *nova, "api_db", "sync", module="nova.cmd.manage")
    c.run("nova-cell0", *nova, "cell_v2", "map_cell0", "--database_connection", c.lay.db("nova_cell0"),
          module="nova.cmd.manage")
    c.run("nova-cell1", *nova, "cell_v2", "create_cell", "--name", "cell1", module="nova.cmd.manage")
    c.run("nova-db", *nova, "db", "sync", module="nova.cmd.manage")


def _other_dbs(c: Cloud) -> None:
    etc = c.lay.root / "etc"
    c.run("glance-db", "--config-file", str(etc / "glance-api.conf"), "db_sync", module="glance.cmd.manage")
    _wal(c.lay, "glance")
    c.run("placement-db", "--config-file", str(etc / "placement.conf"), "db", "sync", module="placement.cmd.manage")
    _wal(c.lay, "placement")
    c.run("neutron-db", "--config-file", str(etc / "neutron.conf"), "upgrade", "heads",
          module="neutron.db.migration.cli")


def _in_parallel(*steps: Callable[[], None]) -> None:
    """The set-up commands that depend on nothing of each other, side by side: each is
    mostly a Python interpreter importing its service, and the wall time halves."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(steps)) as pool:
        for f in [pool.submit(step) for step in steps]:
            f.result()


def _hypervisor_up(c: Cloud) -> bool:
    c.alive()
    return bool(list(c.connect().compute.services(binary="nova-compute")))


def _agent_up(c: Cloud) -> bool:
    c.alive()
    return any(a.is_alive for a in c.connect().network.agents(binary="neutron-linuxbridge-agent"))


def start_cloud(root: Path) -> Cloud:
    """Everything, in dependency order; on any failure what started is stopped."""
    t0 = time.monotonic()
    c = Cloud(_layout(root))
    pg = postgres_server()
    for name in conf.POSTGRES:
        database = pg.new_database()
        c.lay.extra[f"{name}_db"] = pg.url(database)
        c.cleanups.append(lambda database=database: pg.drop_database(database))
    try:
        _write_configs(c.lay)
        _start_rabbit(c)
        _in_parallel(lambda: _keystone(c), lambda: _nova_db(c), lambda: _other_dbs(c))  # RabbitMQ starts meanwhile
        c.wait_port("keystone")
        seed.write_clouds_yaml(c, None)
        seed.register(c)
        c.start_main("glance", "glance.cmd.api", "glance-api.conf")
        c.start("placement", [PY, SERVE, str(c.lay.ports["placement"]), "placement.wsgi:init_application"],
                OS_PLACEMENT_CONFIG_DIR=str(c.lay.root / "etc"))
        c.wait_port("rabbit")
        c.start_main("neutron-server", "neutron.cmd.eventlet.server", "neutron.conf")
        shim = c.lay.root / "bin" / "ebtables"
        shim.parent.mkdir(exist_ok=True)
        shim.write_text(EBTABLES_SHIM)
        shim.chmod(0o755)
        c.start_main("neutron-linuxbridge-agent", "neutron.cmd.eventlet.plugins.linuxbridge_neutron_agent",
                     "neutron.conf", path_first=str(shim.parent))
        for svc in ("nova-api", "nova-conductor", "nova-scheduler"):
            c.start_main(svc, f"nova.cmd.{svc.split('-')[1]}", "nova.conf")
        for port in ("glance", "placement", "neutron", "nova"):
            c.wait_port(port)
        c.start_main("nova-compute", "nova.cmd.compute", "nova.conf")
        seed.content(c)
        wait_until(lambda: _hypervisor_up(c), "nova-compute to register", timeout=START_GUARD, every=1)
        c.run("nova-discover", "--config-file", str(c.lay.root / "etc" / "nova.conf"), "cell_v2", "discover_hosts",
              module="nova.cmd.manage")
        wait_until(lambda: list(c.connect().compute.hypervisors()), "the hypervisor", timeout=START_GUARD, every=1)
        wait_until(lambda: _agent_up(c), "the Linux-bridge agent", timeout=START_GUARD, every=1)
    except BaseException:
        c.stop()
        raise
    c.started_in = time.monotonic() - t0
    return c


@pytest.fixture(scope="session")
def openstack_cloud(request):
    """The run's OpenStack (started on first use): a Cloud with clouds.yaml written."""
    why = available()
    if why:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="dodas-openstack-"))
    cloud = start_cloud(root)
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # its cost, in every run's output
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nOpenStack control plane started in {cloud.started_in:.0f} s")
    try:
        yield cloud
    finally:
        cloud.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    cloud = start_cloud(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="dodas-openstack-")))
    print(f"up in {cloud.started_in:.0f} s: OS_CLIENT_CONFIG_FILE={cloud.clouds_yaml}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.stop()
