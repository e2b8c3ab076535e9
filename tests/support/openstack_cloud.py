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
import yaml

try:
    from support import openstack_conf as conf
    from support.statedb import postgres_server
    from support.waiting import wait_until
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from support import openstack_conf as conf
    from support.statedb import postgres_server
    from support.waiting import wait_until

#: Debian's interpreter: the services are Debian's python3-* packages
PY = "/usr/bin/python3"
RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
SERVE = str(Path(__file__).with_name("wsgi_serve.py"))
#: the hang guard of each wait at start-up (a busy machine is slow, not stuck)
START_GUARD = 600.0
PROJECT, DOMAIN, USER = "dodas", "dodas", "dodas"
IMAGE, PRIVATE, PUBLIC = "tiny-image", "private", "public"
#: flavours: the last does not fit the fake hypervisor (10 vCPUs), so the scheduler
#: puts a server of it in ERROR ("No valid host"), a real failed create
FLAVORS = (("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 10), ("m1.medium", 2, 4096, 20),
           ("x1.huge", 16, 4096, 20))


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
        log = open(self.lay.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the process keeps it
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


def _wal(lay: conf.Layout) -> None:
    """Write-ahead logging on every SQLite file (it stays set in the file): in the
    default journal mode an open read transaction, which the services keep beside
    a write one, makes the write's commit fail with "database is locked"."""
    import sqlite3

    for f in (lay.root / "db").glob("*.sqlite"):
        with sqlite3.connect(f) as db:
            db.execute("PRAGMA journal_mode=WAL")


def _start_keystone(c: Cloud) -> None:
    lay, etc = c.lay, str(c.lay.root / "etc" / "keystone.conf")
    ks = "keystone.cmd.manage"
    c.run("keystone-db", "--config-file", etc, "db_sync", module=ks)
    _wal(lay)
    for what in ("fernet_setup", "credential_setup"):
        c.run(f"keystone-{what}", "--config-file", etc, what, "--keystone-user", "root", "--keystone-group", "root",
              module=ks)
    c.run("keystone-bootstrap", "--config-file", etc, "bootstrap", "--bootstrap-password", lay.admin_password,
          "--bootstrap-admin-url", lay.keystone, "--bootstrap-public-url", lay.keystone,
          "--bootstrap-internal-url", lay.keystone, "--bootstrap-region-id", "RegionOne", module=ks)
    c.start("keystone", [PY, SERVE, str(lay.ports["keystone"]), "keystone.server.wsgi:initialize_public_application"],
            OS_KEYSTONE_CONFIG_FILES=etc)


def _db_syncs(c: Cloud) -> None:
    etc, lay = c.lay.root / "etc", c.lay
    c.run("glance-db", "--config-file", str(etc / "glance-api.conf"), "db_sync", module="glance.cmd.manage")
    c.run("placement-db", "--config-file", str(etc / "placement.conf"), "db", "sync", module="placement.cmd.manage")
    nova = ("--config-file", str(etc / "nova.conf"))
    c.run("nova-api-db", *nova, "api_db", "sync", module="nova.cmd.manage")
    c.run("nova-cell0", *nova, "cell_v2", "map_cell0", "--database_connection", lay.db("nova_cell0"),
          module="nova.cmd.manage")
    c.run("nova-cell1", *nova, "cell_v2", "create_cell", "--name", "cell1", module="nova.cmd.manage")
    c.run("nova-db", *nova, "db", "sync", module="nova.cmd.manage")
    c.run("neutron-db", "--config-file", str(etc / "neutron.conf"), "upgrade", "heads",
          module="neutron.db.migration.cli")
    _wal(lay)


def _write_clouds_yaml(c: Cloud, appcred: dict[str, str] | None) -> None:
    lay = c.lay

    def pw(user: str, password: str, project: str, domain: str) -> dict[str, Any]:
        return {"auth": {"auth_url": lay.keystone, "username": user, "password": password, "project_name": project,
                         "user_domain_name": domain, "project_domain_name": domain},
                "region_name": "RegionOne", "identity_api_version": 3, "interface": "public"}
    clouds = {"dodas-admin": pw("admin", lay.admin_password, "admin", "Default"),
              "dodas": pw(USER, lay.user_password, PROJECT, DOMAIN),
              "dodas-badpassword": pw(USER, "not-" + lay.user_password, PROJECT, DOMAIN)}
    if appcred:
        clouds["dodas-appcred"] = {"auth_type": "v3applicationcredential",
                                   "auth": {"auth_url": lay.keystone, **appcred},
                                   "region_name": "RegionOne", "identity_api_version": 3, "interface": "public"}
    c.clouds_yaml.write_text(yaml.safe_dump({"clouds": clouds}))
    c.clouds_yaml.chmod(0o600)


def _register(c: Cloud) -> None:
    """Service users, the catalogue, and the project dodas deploys into."""
    lay, admin = c.lay, c.connect()
    idn = admin.identity
    service = idn.create_project(name="service", domain_id="default")
    role_admin = idn.find_role("admin")
    role_member = idn.find_role("member")
    # "service": the role keystonemiddleware wants on the service token one service
    # sends another beside the user's (Nova's to Neutron and Glance)
    role_service = idn.create_role(name="service")
    for user in conf.SERVICE_USERS:
        u = idn.create_user(name=user, password=lay.service_password, domain_id="default")
        idn.assign_project_role_to_user(service, u, role_admin)
        idn.assign_project_role_to_user(service, u, role_service)
    for name, kind, port in (("glance", "image", "glance"), ("placement", "placement", "placement"),
                             ("nova", "compute", "nova"), ("neutron", "network", "neutron")):
        svc = idn.create_service(name=name, type=kind)
        url = lay.url(port, "/v2.1" if kind == "compute" else "")
        for interface in ("public", "internal", "admin"):
            idn.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id="RegionOne")
    dom = idn.create_domain(name=DOMAIN)
    proj = idn.create_project(name=PROJECT, domain_id=dom.id)
    user = idn.create_user(name=USER, password=lay.user_password, domain_id=dom.id, default_project_id=proj.id)
    idn.assign_project_role_to_user(proj, user, role_member)
    c.facts.update(project_id=proj.id, user_id=user.id)
    _write_clouds_yaml(c, None)
    mine = c.connect("dodas")
    cred = mine.identity.create_application_credential(user=user.id, name="dodas-tests",
                                                       secret=secrets.token_hex(16))
    _write_clouds_yaml(c, {"application_credential_id": cred.id, "application_credential_secret": cred.secret})


def _content(c: Cloud) -> None:
    """The image, the flavours, the networks and the router the tests deploy on."""
    admin, lay = c.connect(), c.lay
    for name, vcpus, ram, disk in FLAVORS:
        admin.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk)
    img = admin.image.create_image(name=IMAGE, disk_format="raw", container_format="bare", visibility="public",
                                   data=b"\0" * 1024, allow_duplicates=True)
    c.facts["image_id"] = img.id
    net = admin.network
    pub = net.create_network(name=PUBLIC, is_router_external=True, provider_network_type="local")
    net.create_subnet(network_id=pub.id, cidr="203.0.113.0/24", ip_version=4, is_dhcp_enabled=False,
                      gateway_ip="203.0.113.1")
    pid = c.facts["project_id"]
    priv = net.create_network(name=PRIVATE, project_id=pid)
    sub = net.create_subnet(network_id=priv.id, cidr="10.0.0.0/24", ip_version=4, is_dhcp_enabled=False,
                            project_id=pid)
    router = net.create_router(name="router", project_id=pid, external_gateway_info={"network_id": pub.id})
    net.add_interface_to_router(router, subnet_id=sub.id)
    c.facts.update(public_network_id=pub.id, private_network_id=priv.id)


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
        _start_keystone(c)
        _db_syncs(c)  # while RabbitMQ and Keystone start
        c.wait_port("keystone")
        _write_clouds_yaml(c, None)
        _register(c)
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
        _content(c)
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
def openstack_cloud():
    """The run's OpenStack (started on first use): a Cloud with clouds.yaml written."""
    why = available()
    if why:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="dodas-openstack-"))
    cloud = start_cloud(root)
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
