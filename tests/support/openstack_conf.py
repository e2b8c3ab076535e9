"""The configuration files of the suite's OpenStack control plane (openstack_cloud.py
starts it). Every service listens on 127.0.0.1 only, runs one worker, logs to its
own file without debug. Keystone, Glance and Placement keep their databases in
SQLite files under the cloud's directory (one process each writes them); Nova and
Neutron on the suite's PostgreSQL server (POSTGRES says why).

The paste pipelines are written here rather than taken from /etc, because the
suite installs only Debian's python3-* libraries (their daemon packages would run
dbconfig-common and start system services), which carry no paste files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: the databases on PostgreSQL: Neutron's migrations alter constraints, which SQLite
#: cannot; Nova's API, conductor and compute write its databases at once from several
#: processes, and SQLite's single writer made a build fail with "database is locked"
POSTGRES = ("neutron", "nova_api", "nova", "nova_cell0")
#: the services' own accounts in the "service" project
SERVICE_USERS = ("glance", "placement", "nova", "neutron")


@dataclass
class Layout:
    """Where everything of one cloud lives: its directory, its ports and its passwords."""
    root: Path
    ports: dict[str, int]
    admin_password: str
    service_password: str
    user_password: str
    extra: dict[str, str] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    @property
    def keystone(self) -> str:
        return self.url("keystone", "/v3")

    @property
    def transport(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.ports['rabbit']}/"

    def db(self, name: str) -> str:
        """A service's database: its own SQLite file, unless it is one of POSTGRES."""
        return self.extra.get(f"{name}_db") or f"sqlite:///{self.root / 'db' / name}.sqlite"


def _ini(sections: dict[str, dict[str, object]]) -> str:
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {v}" for k, v in values.items()]
        out.append("")
    return "\n".join(out)


def _authtoken(lay: Layout, user: str) -> dict[str, object]:
    return {"www_authenticate_uri": lay.keystone, "auth_url": lay.keystone, "auth_type": "password",
            "project_domain_name": "Default", "user_domain_name": "Default", "project_name": "service",
            "username": user, "password": lay.service_password, "service_token_roles_required": "true"}


def _service_auth(lay: Layout, user: str) -> dict[str, object]:
    """A [section] through which one service calls another as its own user."""
    return {"auth_type": "password", "auth_url": lay.keystone, "project_domain_name": "Default",
            "user_domain_name": "Default", "project_name": "service", "username": user,
            "password": lay.service_password, "region_name": "RegionOne", "valid_interfaces": "public"}


def _common(lay: Layout, name: str) -> dict[str, object]:
    return {"debug": "false", "log_file": lay.root / "log" / f"{name}.log", "use_stderr": "false",
            "state_path": lay.root / "state" / name}


def keystone(lay: Layout) -> dict[str, str]:
    return {"keystone.conf": _ini({
        "DEFAULT": {"debug": "false", "log_file": lay.root / "log" / "keystone.log", "use_stderr": "false"},
        "database": {"connection": lay.db("keystone")},
        "token": {"provider": "fernet", "expiration": 7200},
        "fernet_tokens": {"key_repository": lay.root / "state" / "keystone" / "fernet"},
        # bcrypt's fewest rounds: every service authenticates often, and the CPU is shared
        "identity": {"password_hash_rounds": 4},
        "credential": {"key_repository": lay.root / "state" / "keystone" / "credential"},
        "cache": {"enabled": "false"},
    })}


def glance(lay: Layout) -> dict[str, str]:
    conf = _ini({
        "DEFAULT": {**_common(lay, "glance"), "bind_host": "127.0.0.1", "bind_port": lay.ports["glance"],
                    "workers": 1, "enabled_backends": "local:file"},
        "database": {"connection": lay.db("glance")},
        "glance_store": {"default_backend": "local"},
        "local": {"filesystem_store_datadir": lay.root / "state" / "glance" / "images"},
        "os_glance_staging_store": {"filesystem_store_datadir": lay.root / "state" / "glance" / "staging"},
        "os_glance_tasks_store": {"filesystem_store_datadir": lay.root / "state" / "glance" / "tasks"},
        "keystone_authtoken": _authtoken(lay, "glance"),
        "paste_deploy": {"flavor": "keystone", "config_file": lay.root / "etc" / "glance-api-paste.ini"},
        "oslo_policy": {"enforce_new_defaults": "false", "enforce_scope": "false"},
    })
    paste = """\
[pipeline:glance-api-keystone]
pipeline = versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
"""
    return {"glance-api.conf": conf, "glance-api-paste.ini": paste}


def placement(lay: Layout) -> dict[str, str]:
    return {"placement.conf": _ini({
        "DEFAULT": {"debug": "false", "log_file": lay.root / "log" / "placement.log", "use_stderr": "false"},
        "placement_database": {"connection": lay.db("placement")},
        "api": {"auth_strategy": "keystone"},
        "keystone_authtoken": _authtoken(lay, "placement"),
    })}


def nova(lay: Layout) -> dict[str, str]:
    conf = _ini({
        "DEFAULT": {**_common(lay, "nova"), "transport_url": lay.transport, "my_ip": "127.0.0.1",
                    "host": "dodas-hv1", "compute_driver": "fake.MediumFakeDriver",
                    "enabled_apis": "osapi_compute", "osapi_compute_listen": "127.0.0.1",
                    "osapi_compute_listen_port": lay.ports["nova"], "osapi_compute_workers": 1,
                    "api_paste_config": lay.root / "etc" / "nova-api-paste.ini",
                    "instances_path": lay.root / "state" / "nova" / "instances",
                    "vif_plugging_is_fatal": "false", "vif_plugging_timeout": 0,
                    "heal_instance_info_cache_interval": -1, "update_resources_interval": 0},
        "api_database": {"connection": lay.db("nova_api")},
        "database": {"connection": lay.db("nova")},
        "api": {"auth_strategy": "keystone"},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": -1},
        "keystone_authtoken": _authtoken(lay, "nova"),
        "placement": _service_auth(lay, "placement"),
        "neutron": _service_auth(lay, "neutron"),
        "glance": {"valid_interfaces": "public", "region_name": "RegionOne"},
        "service_user": {**_service_auth(lay, "nova"), "send_service_user_token": "true"},
        "oslo_concurrency": {"lock_path": lay.root / "state" / "nova" / "lock"},
        "oslo_messaging_notifications": {"driver": "noop"},
        "vnc": {"enabled": "false"},
        "oslo_policy": {"enforce_new_defaults": "false", "enforce_scope": "false"},
        "quota": {"driver": "nova.quota.DbQuotaDriver"},
    })
    paste = """\
[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: openstack_compute_api_v21

[pipeline:oscomputeversions]
pipeline = faultwrap oscomputeversionapp

[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory

[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = request_id faultwrap authtoken keystonecontext osapi_compute_app_v21

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory

[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory
"""
    return {"nova.conf": conf, "nova-api-paste.ini": paste}


def neutron(lay: Layout, mechanism: str) -> dict[str, str]:
    conf = _ini({
        "DEFAULT": {**_common(lay, "neutron"), "transport_url": lay.transport, "bind_host": "127.0.0.1",
                    "bind_port": lay.ports["neutron"], "api_workers": 1, "rpc_workers": 0,
                    "rpc_state_report_workers": 0, "core_plugin": "ml2", "service_plugins": "router",
                    "auth_strategy": "keystone", "api_paste_config": lay.root / "etc" / "neutron-api-paste.ini",
                    "notify_nova_on_port_status_changes": "false", "notify_nova_on_port_data_changes": "false",
                    "host": "dodas-hv1", "allow_overlapping_ips": "true"},
        "database": {"connection": lay.db("neutron")},
        "keystone_authtoken": _authtoken(lay, "neutron"),
        "oslo_concurrency": {"lock_path": lay.root / "state" / "neutron" / "lock"},
        "oslo_messaging_notifications": {"driver": "noop"},
        "agent": {"root_helper": "", "root_helper_daemon": "", "report_interval": 5},
        "oslo_policy": {"enforce_new_defaults": "false", "enforce_scope": "false"},
        "ml2": {"type_drivers": "local,flat", "tenant_network_types": "local",
                "mechanism_drivers": mechanism, "extension_drivers": "port_security"},
        "ml2_type_flat": {"flat_networks": "public"},
        "securitygroup": {"firewall_driver": "noop", "enable_security_group": "true"},
        "vxlan": {"enable_vxlan": "false"},
        # Neutron 2023.1 calls the Linux-bridge agent experimental (its default is OVN,
        # which needs its own databases and northd): the lighter agent is allowed here
        "experimental": {"linuxbridge": "true"},
        # the agent runs as root already: its privileged helpers start without sudo
        **{sec: {"helper_command": "privsep-helper"} for sec in (
            "privsep", "privsep_dhcp_release", "privsep_ovs_vsctl", "privsep_namespace", "privsep_conntrack",
            "privsep_link")},
    })
    paste = """\
[composite:neutron]
use = egg:Paste#urlmap
/: neutronversions_composite
/v2.0: neutronapi_v2_0

[composite:neutronapi_v2_0]
use = call:neutron.auth:pipeline_factory
keystone = request_id catch_errors authtoken keystonecontext extensions neutronapiapp_v2_0

[composite:neutronversions_composite]
use = call:neutron.auth:pipeline_factory
keystone = neutronversions

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:catch_errors]
paste.filter_factory = oslo_middleware:CatchErrors.factory

[filter:keystonecontext]
paste.filter_factory = neutron.auth:NeutronKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:extensions]
paste.filter_factory = neutron.api.extensions:plugin_aware_extension_middleware_factory

[app:neutronversions]
paste.app_factory = neutron.pecan_wsgi.app:versions_factory

[app:neutronapiapp_v2_0]
paste.app_factory = neutron.api.v2.router:APIRouter.factory
"""
    return {"neutron.conf": conf, "neutron-api-paste.ini": paste}


def rabbit(lay: Layout) -> dict[str, str]:
    # loopback only, no management plugin, a disk alarm that a busy CI disk does not trip
    return {"rabbitmq.conf": "\n".join([
        f"listeners.tcp.1 = 127.0.0.1:{lay.ports['rabbit']}",
        "distribution.listener.interface = 127.0.0.1",
        f"distribution.listener.port_range.min = {lay.ports['rabbit_dist']}",
        f"distribution.listener.port_range.max = {lay.ports['rabbit_dist']}",
        "disk_free_limit.absolute = 50MB",
        "loopback_users.guest = true",
        "log.file.level = warning", ""]),
        "enabled_plugins": "[].\n"}
