"""The type library against the published INDIGO-DataCloud and DODAS-TS type files.

Every YAML file under the reference folder (DODAS_REFERENCE_TYPES; by default
/work/shared/reference/tosca-types, laid out OWNER/BRANCH/<path in the repository>)
is read, whatever branch it is of: a branch added there later is checked by these
same tests. The folder missing is a failure, never a skip: these tests are how the
library is known to cover what real templates import.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support.every_type import templates
from support.reference_types import ENV, declarations, problems, reference_files, reference_root

from dodas.tosca import typelib

#: node types dodas deploys, of those the published files declare (the rest are known
#: only: `validate` accepts them, `plan` and `up` refuse them); machines are deployed too
DEPLOYABLE = {
    "tosca.nodes.indigo.Compute", "tosca.nodes.indigo.MonitoredCompute",
    "tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes", "tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes",
    "tosca.nodes.DODAS.FrontEnd.Kubernetes", "tosca.nodes.DODAS.WorkerNode.Kubernetes",
    "tosca.nodes.indigo.HelmInstall", "tosca.nodes.DODAS.HelmInstall", "tosca.nodes.DODAS.HelmInstall.Spark",
    "tosca.nodes.DODAS.HelmInstall.HTCondor", "tosca.nodes.DODAS.HelmInstall.HTCondorCMS",
    "tosca.nodes.DODAS.HelmInstall.CachingOnDemand", "tosca.nodes.DODAS.HelmInstall.Grafana",
    "tosca.nodes.indigo.XCache",
}


def _root() -> Path:
    root = reference_root()
    assert root.is_dir() and reference_files(root), (
        f"the published type files are not at {root}: set {ENV} to the folder holding them "
        "(OWNER/BRANCH/<path>, as ../shared/reference/tosca-types)")
    return root


def test_the_library_covers_every_published_declaration():
    found = problems(_root(), typelib.sections())
    assert not found, f"{len(found)} published declarations missing or narrower in the library:\n" + "\n".join(found)


def test_the_check_names_each_missing_or_narrower_declaration(tmp_path):
    """The check itself, on a made-up branch: what it must report, it reports."""
    branch = tmp_path / "someone" / "newbranch" / "types"
    branch.mkdir(parents=True)
    (branch / "more_types.yaml").write_text(textwrap.dedent("""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          tosca.nodes.indigo.NotInTheLibrary:
            derived_from: tosca.nodes.Root
          tosca.nodes.indigo.JupyterHub:
            derived_from: tosca.nodes.SoftwareComponent
            properties:
              a_new_setting: {type: string, required: false}
          tosca.nodes.DODAS.HelmInstall:
            derived_from: tosca.nodes.indigo.HelmInstall
            properties:
              name: {type: integer, required: false}
              namespace: {type: string, required: false, constraints: [{valid_values: [a]}]}
        """))
    found = problems(tmp_path, typelib.sections())
    where = "someone/newbranch/types/more_types.yaml: node_types"
    assert f"{where} tosca.nodes.indigo.NotInTheLibrary: missing" in found
    assert f"{where} tosca.nodes.indigo.JupyterHub property a_new_setting: missing" in found
    assert f"{where} tosca.nodes.DODAS.HelmInstall property name: type string instead of integer" in found
    assert f"{where} tosca.nodes.DODAS.HelmInstall property name: required without a default (published optional " \
           "or with a default)" in found
    assert len(found) == 4, found  # a wider declaration (namespace: no constraint here) is no problem


def _families() -> dict[str, str]:
    decls = declarations(_root())
    nodes = {n for _f, section, n, _t in decls if section == "node_types"}
    policies = {n for _f, section, n, _t in decls if section == "policy_types"}
    return templates(typelib.sections(), nodes, policies)


def test_every_family_validates_offline_with_every_property_and_gets_its_verdict(tmp_path):
    """One template per family (every published node type, every property of it and
    of its capabilities); each validates offline, and `plan`'s verdict is deployable
    for machines, DEPLOYABLE and TOSCA's own types (the user's to fill), known only
    for every other node."""
    from dodas import services
    from dodas.errors import DodasError
    from dodas.model.support import known_only

    families = _families()
    library = set(typelib.names())
    assert len(families) > 50
    failed, wrong = [], []
    for family, text in sorted(families.items()):
        path = tmp_path / f"{family}.yaml"
        path.write_text(text)
        try:
            model = services.validate(str(path), offline=True).model
        except DodasError as exc:
            failed.append(f"{family}: {exc}")
            continue
        for name, node in model.nodes.items():
            deployable = node.is_compute or node.type in DEPLOYABLE or node.type not in library
            if (known_only(node, model) is None) != deployable:
                wrong.append(f"{family}: {name} ({node.type}) should be {'deployable' if deployable else 'known only'}")
    assert not failed, "\n".join(failed)
    assert not wrong, "\n".join(wrong)


def _sources(root: Path) -> dict[tuple[str, str], str]:
    """(owner, branch) -> owner/repository, from the folder's SOURCES.txt; a branch
    it does not list is of the owner's repository it lists."""
    out: dict[tuple[str, str], str] = {}
    for line in (root / "SOURCES.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.startswith("#"):
            out[(fields[0].split("/")[0], fields[1])] = fields[0]
    for owner_dir in root.iterdir():
        known = [repo for (owner, _b), repo in out.items() if owner == owner_dir.name]
        for branch in owner_dir.iterdir() if owner_dir.is_dir() and known else ():
            out.setdefault((owner_dir.name, branch.name), known[0])
    return out


def _urls(root: Path) -> list[str]:
    """Every published file as templates import it: raw and github.com forms, the
    owner in any letter case, with a query string."""
    sources = _sources(root)
    urls = []
    for f in reference_files(root):
        owner, branch, *rest = f.relative_to(root).parts
        repo = sources[(owner, branch)].split("/")[1]
        path = "/".join(rest)
        urls += [f"https://raw.githubusercontent.com/{owner}/{repo}/{branch}/{path}",
                 f"https://raw.githubusercontent.com/{owner.lower()}/{repo}/{branch}/{path}?token=abc",
                 f"https://raw.githubusercontent.com/{owner.upper()}/{repo}/{branch}/{path}",
                 f"https://github.com/{owner.lower()}/{repo}/raw/{branch}/{path}"]
    return urls


def test_an_import_of_any_published_file_resolves_to_the_library():
    from dodas.tosca import imports

    urls = _urls(_root())
    assert len(urls) >= 4 * 30
    assert [u for u in urls if not imports.well_known(u)] == []


@pytest.mark.parametrize("url", [
    "https://github.com/DODAS-TS/dodas-apps/raw/ml_infn/tosca-types/dodas_custom_apps/exp/cms_htc_type.yml",
    "https://raw.githubusercontent.com/INDIGO-DC/tosca-types/refactor_dodas/dodas_types/dodas_custom_apps/htc_type.yml",
])
def test_a_template_importing_a_published_file_validates_offline(cli, tmp_path, url):
    t = tmp_path / "t.yaml"
    t.write_text(textwrap.dedent(f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        imports:
          - types: {url}
        topology_template:
          node_templates:
            k8s:
              type: tosca.nodes.DODAS.FrontEnd.Kubernetes
              requirements:
                - host: vm
            vm:
              type: tosca.nodes.indigo.Compute
              capabilities:
                os: {{properties: {{image: ost://cloud.example.org/abc}}}}
            chart:
              type: tosca.nodes.indigo.Helm.Chart
              properties: {{repository_name: r, repository_url: "https://charts.example.org", name: c}}
              requirements:
                - host: k8s
        """))
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err


UNBUNDLED = """\
tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - extra: https://types.example.org/site/extra_types.yaml
topology_template:
  node_templates:
    thing:
      type: example.nodes.Thing
      properties: {size: 3}
"""


def test_an_unbundled_remote_import_offline_names_the_setting_for_a_copy(cli, tmp_path):
    from support.located import one_error

    t = tmp_path / "t.yaml"
    t.write_text(UNBUNDLED)
    line, col, msg = one_error(cli("validate", str(t), "--offline"), t)
    assert (line, col) == (3, 5)
    assert 'remote import "https://types.example.org/site/extra_types.yaml" could not be fetched' in msg
    assert "import_mirrors in" in msg and "DODAS_IMPORT_MIRRORS" in msg


def test_a_local_copy_serves_an_unbundled_import_offline(cli, tmp_path, monkeypatch):
    copy = tmp_path / "mirror" / "site"
    copy.mkdir(parents=True)
    (copy / "extra_types.yaml").write_text(textwrap.dedent("""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          example.nodes.Thing:
            derived_from: tosca.nodes.Root
            properties:
              size: {type: integer}
        """))
    monkeypatch.setenv("DODAS_IMPORT_MIRRORS", f"https://types.example.org/={tmp_path / 'mirror'}/")
    t = tmp_path / "t.yaml"
    t.write_text(UNBUNDLED)
    r = cli("validate", str(t), "--offline")
    assert r.code == 0, r.err
    (tmp_path / "secret.yaml").write_text((copy / "extra_types.yaml").read_text())
    t.write_text(UNBUNDLED.replace("/site/extra_types.yaml", "/site/../../secret.yaml"))
    r = cli("validate", str(t), "--offline")
    assert r.code == 1 and "outside its local copy's folder" in r.err, r.err
    t.write_text(UNBUNDLED)
    (copy / "extra_types.yaml").unlink()
    r = cli("validate", str(t), "--offline")
    assert r.code == 1 and "does not exist" in r.err and "DODAS_IMPORT_MIRRORS" in r.err


def test_a_template_is_given_only_the_types_it_reaches():
    """tosca-parser validates every type it is handed: a small template gets the
    types it names and theirs, including the node type tosca-parser looks up by
    capability for a requirement that names no node."""
    reached = typelib.reachable({"node_templates": {"c": {"type": "tosca.nodes.indigo.XCache"}}})
    nodes = set(reached["node_types"])
    assert {"tosca.nodes.indigo.XCache", "tosca.nodes.dodas.XRootD.Cache"} <= nodes
    offering = [n for n, t in typelib.sections()["node_types"].items()
                if any(isinstance(c, dict) and c.get("type") == "tosca.capabilities.dodas.XRootD"
                       for c in (t.get("capabilities") or {}).values())]
    assert offering[0] in nodes
    assert len(nodes) < len(typelib.sections()["node_types"]) / 4
