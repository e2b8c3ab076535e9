"""The type library covers the type families INDIGO-DataCloud and DODAS templates
use: one realistic template per family, importing the type file the way real
templates do (INDIGO's custom_types.yaml on a branch, DODAS-TS's dodas_types.yml),
validates offline. Most of these types are known only (dodas has no playbooks
for them): validate accepts them; what plan and up do with them is not tested here."""

from __future__ import annotations

import textwrap

import pytest
from support.type_families import DODAS_TS, FAMILIES, GALAXY, INDIGO_MASTER, JUPYTER_VM


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_template_validates_offline(cli, tmp_path, family):
    t = tmp_path / f"{family}.yaml"
    t.write_text(FAMILIES[family])
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err
    assert "valid" in r.out


def test_a_wrong_property_on_a_known_only_type_is_still_an_error(cli, tmp_path):
    """Known-only types are checked like any other: their properties are declared."""
    t = tmp_path / "typo.yaml"
    t.write_text(GALAXY.replace("admin_email: {get_input: admin_email}", "admin_emial: x@example.org"))
    r = cli("validate", str(t), "--offline")
    assert r.code == 1 and "admin_emial" in r.err


def test_dodas_and_indigo_spellings_are_both_accepted(cli, tmp_path):
    """Where a type name is dodas's and INDIGO's/DODAS-TS's, both property sets are."""
    t = tmp_path / "spark.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        imports:
          - dodas_types: {DODAS_TS}
        topology_template:
          node_templates:
            spark:
              type: tosca.nodes.DODAS.HelmInstall.Spark
              properties:
                externalIp: 192.0.2.10
                externalIP: 192.0.2.10
                workers: 3
        """))
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err


def test_policies_pin_a_provider_or_an_sla(cli, tmp_path):
    t = tmp_path / "policies.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        imports:
          - indigo_custom_types: {INDIGO_MASTER}
        topology_template:
          node_templates:
            vm:
              type: tosca.nodes.indigo.Compute
              capabilities:
                os: {{properties: {{image: ost://cloud.example.org/abc}}}}
          policies:
            - pin: {{type: tosca.policies.indigo.Placement, properties: {{cloud_id: site-a, availability_zone: az1}},
                     targets: [vm]}}
            - sla: {{type: tosca.policies.indigo.CredentialsAwareSlaPlacement,
                     properties: {{sla_id: 5e1daa9f, username: u, password: p}}, targets: [vm]}}
        """))
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err


#: the families the library must carry (INDIGO custom_types.yaml, DODAS-TS dodas_types.yml)
EXPECTED = """
tosca.nodes.indigo.Compute tosca.nodes.indigo.ElasticCluster tosca.nodes.indigo.MesosLoadBalancer
tosca.nodes.indigo.LRMS.FrontEnd.Torque tosca.nodes.indigo.LRMS.WorkerNode.Torque
tosca.nodes.indigo.LRMS.FrontEnd.Slurm tosca.nodes.indigo.LRMS.WorkerNode.Slurm
tosca.nodes.indigo.LRMS.FrontEnd.SlurmGalaxy tosca.nodes.indigo.LRMS.WorkerNode.SlurmGalaxy
tosca.nodes.indigo.LRMS.FrontEnd.Local tosca.nodes.indigo.LRMS.WorkerNode.Local
tosca.nodes.indigo.LRMS.FrontEnd.Mesos tosca.nodes.indigo.LRMS.WorkerNode.Mesos
tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes
tosca.nodes.indigo.MesosMaster tosca.nodes.indigo.MesosSlave tosca.nodes.indigo.Container.Runtime.Docker
tosca.nodes.indigo.Container.Application.Docker tosca.nodes.indigo.Container.Application.Docker.Marathon
tosca.nodes.indigo.Container.Application.Docker.Chronos tosca.nodes.indigo.JupyterHub
tosca.nodes.indigo.GalaxyPortal tosca.nodes.indigo.GalaxyShedTool tosca.nodes.indigo.GalaxyReferenceData
tosca.nodes.indigo.Helm.Chart tosca.nodes.indigo.Kubernetes.HelmChart tosca.nodes.indigo.KubeCreate
tosca.nodes.indigo.k3s tosca.nodes.indigo.XCache tosca.nodes.indigo.OneData tosca.nodes.indigo.OneClient
tosca.nodes.indigo.OneProvider tosca.nodes.indigo.Dynafed tosca.nodes.indigo.BlockStorage
tosca.nodes.indigo.network.Network tosca.nodes.indigo.network.Port tosca.nodes.indigo.VR.CentralPoint
tosca.nodes.indigo.DEEPaaS tosca.nodes.indigo.HadoopMaster tosca.nodes.indigo.HadoopSlave
tosca.nodes.indigo.Elasticsearch tosca.nodes.indigo.Kibana tosca.nodes.indigo.GlusterFS
tosca.nodes.indigo.SparkMesos tosca.nodes.indigo.TensorflowOnMesos tosca.nodes.indigo.ZabbixServer
tosca.nodes.indigo.ZabbixAgent tosca.nodes.indigo.HelmInstall
tosca.nodes.DODAS.HelmInstall tosca.nodes.DODAS.HelmInstall.Spark tosca.nodes.DODAS.HelmInstall.HTCondor
tosca.nodes.DODAS.HelmInstall.HTCondorCMS tosca.nodes.DODAS.HelmInstall.CachingOnDemand
tosca.nodes.DODAS.HelmInstall.Grafana tosca.nodes.DODAS.KubeCreate tosca.nodes.DODAS.k3s
tosca.nodes.DODAS.FrontEnd.Kubernetes tosca.nodes.DODAS.WorkerNode.Kubernetes tosca.nodes.DODAS.NfsClient
tosca.nodes.DODAS.JupyterVM tosca.nodes.DODAS.ml_infn tosca.nodes.DODAS.pip_manager
""".split()


def _library() -> tuple[str, dict]:
    import yaml

    from dodas import paths
    text = paths.TYPE_LIBRARY.read_text()
    return text, yaml.safe_load(text)


def test_the_library_carries_every_family():
    _, lib = _library()
    assert not [t for t in EXPECTED if t not in lib["node_types"]]
    for cap in ("Torque", "Slurm", "Local", "Mesos", "Kubernetes"):
        props = lib["capability_types"][f"tosca.capabilities.indigo.LRMS.{cap}"]["properties"]
        assert props["type"]["default"] == cap.lower()
    assert "tosca.relationships.indigo.Manages" in lib["relationship_types"]
    assert {"tosca.artifacts.Implementation.YAML", "tosca.artifacts.AnsibleGalaxy.role"} <= set(lib["artifact_types"])


def test_known_only_types_name_no_playbooks():
    """A type marked `# known only` declares its interface (properties, capabilities,
    requirements) and no operation: dodas has no playbook to run for it."""
    import re

    text, lib = _library()
    known = re.findall(r"^  # known only\n  ([\w.-]+):$", text, re.M)
    assert len(known) > 50
    for name in known:
        t = lib["node_types"][name]
        assert "interfaces" not in t, name
        parent = lib["node_types"].get(t["derived_from"], {})
        ops = [op for iface in (parent.get("interfaces") or {}).values() for op in iface.values()]
        # one that derives from a type with playbooks inherits them (MesosMaster: planned Mesos playbooks)
        assert not ops or name in {"tosca.nodes.indigo.MesosMaster", "tosca.nodes.indigo.MesosSlave"}, name


@pytest.mark.parametrize("url", [
    "https://raw.githubusercontent.com/DODAS-TS/dodas-templates/master/tosca-types/dodas_custom_apps/jupyter_vm.yml",
    "https://github.com/dodas-ts/dodas-templates/raw/main/tosca-types/dodas_legacy_types.yml",
    "https://raw.githubusercontent.com/INDIGO-DC/tosca-types/master/custom_types.yaml?token=abc",
])
def test_every_form_of_the_type_files_url_resolves_offline(cli, tmp_path, url):
    t = tmp_path / "t.yaml"
    t.write_text(JUPYTER_VM.replace(DODAS_TS, url))
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err


def test_a_missing_host_is_named_even_beside_a_host_capability(cli, tmp_path):
    t = tmp_path / "t.yaml"
    t.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n"
                 "    front:\n      type: tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes\n")
    r = cli("validate", str(t))
    assert r.code == 1
    assert 'node "front": missing requirement "host"' in r.err, r.err


#: what `plan` may deploy of each family's template, and what it refuses (known only)
VERDICTS = {
    "caching-on-demand": set(),
    "galaxy": {"elastic_cluster", "galaxy_portal", "galaxy_refdata", "galaxy_tools", "lrms_front_end", "wn_node"},
    "htcondor-k8s": set(),
    "jupyter-vm": {"jupyter", "ml", "pip"},
    "k3s": {"k3s_agent", "k3s_server", "manifest", "nfs"},
    "kubernetes-jupyterhub": {"hub_on_vm", "jupyterhub"},
    "mesos-marathon": {"docker_runtime", "mesos_lb", "mesos_master", "mesos_slave", "nightly_job", "web_app"},
    "onedata": {"client", "dynafed", "provider", "space"},
    "slurm-elastic": {"block_storage", "elastic_cluster_front_end", "lrms_front_end", "wn_node"},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_gets_the_right_verdict(tmp_path, family):
    """Machines, Kubernetes and Helm releases (HTCondor, CachingOnDemand) are deployed;
    Mesos, Slurm, Galaxy, OneData, JupyterHub, k3s ... are known only."""
    from dodas import services
    from dodas.model.support import known_only_nodes

    t = tmp_path / f"{family}.yaml"
    t.write_text(FAMILIES[family])
    model = services.validate(str(t), offline=True).model
    assert set(known_only_nodes(model)) == VERDICTS[family]
    deployable = [model.nodes[n] for n in model.nodes if n not in VERDICTS[family]]
    assert all(n.is_compute or n.operations for n in deployable), "what is deployed has something to run"
