"""What the suite's OpenStack holds once it runs (openstack_cloud.py starts it): the
services' users and the catalogue, the domain, project and user dodas deploys as
(with an application credential), the flavours, the tiny image, the networks and
the router; and the clouds.yaml that names it all for openstacksdk."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import yaml

from support import openstack_conf as conf

if TYPE_CHECKING:
    from support.openstack_cloud import Cloud

PROJECT, DOMAIN, USER = "dodas", "dodas", "dodas"
IMAGE, PRIVATE, PUBLIC = "tiny-image", "private", "public"
#: flavours: the last does not fit the fake hypervisor (10 vCPUs), so the scheduler
#: puts a server of it in ERROR ("No valid host"), a real failed create
FLAVORS = (("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 10), ("m1.medium", 2, 4096, 20),
           ("x1.huge", 16, 4096, 20))


def write_clouds_yaml(c: Cloud, appcred: dict[str, str] | None) -> None:
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


def register(c: Cloud) -> None:
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
    write_clouds_yaml(c, None)
    mine = c.connect("dodas")
    cred = mine.identity.create_application_credential(user=user.id, name="dodas-tests",
                                                       secret=secrets.token_hex(16))
    write_clouds_yaml(c, {"application_credential_id": cred.id, "application_credential_secret": cred.secret})


def content(c: Cloud) -> None:
    """The image, the flavours, the networks and the router the tests deploy on."""
    admin = c.connect()
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
