"""dodas's own HTCondor chart (issue 16, item 5), linted and rendered by the real
helm binary with the values dodas itself writes for a release of
tosca.nodes.DODAS.HelmInstall.HTCondor, every object validated against the
Kubernetes API schemas; its HTCondor configuration read as on VMs
(tests/test_htcondor.py's parser). Installing it needs a Kubernetes cluster,
which these machines cannot run."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml
from support.charts import release_values, render_chart, validate_objects
from support.htcondor import check_security, expand, parse_config
from support.paths import TEMPLATES

from dodas.configure import helm
from dodas.configure.kube import SUPPORTED

CHART = helm.CHARTS / "htcondor"
TEMPLATE = TEMPLATES / "htcondor-k8s.yaml"


def render(helm_bin: str, *values: Path, extra: tuple[str, ...] = ()) -> dict:
    return render_chart(helm_bin, CHART, "htcondor", "batch", values, extra)


def dodas_values(tmp_path: Path, inputs: list[str]) -> tuple[list[Path], str]:
    """The values files dodas writes for the template's release, and the generated key."""
    paths, ctx, inst = release_values(tmp_path, TEMPLATE, "htcondor", inputs, deployment="batch")
    return paths, ctx.secrets[inst]["signing_key"]


def pod(objs: dict, name: str) -> dict:
    return objs[("Deployment", name)]["spec"]["template"]["spec"]


def test_chart_lints_strictly(helm_bin):
    r = subprocess.run([helm_bin, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


def test_rendered_with_dodas_values(helm_bin, tmp_path):
    files, key = dodas_values(tmp_path, ["execute_nodes=4"])
    objs = render(helm_bin, *files)
    assert set(objs) == {("Secret", "htcondor-pool"), ("ConfigMap", "htcondor-config"), ("Service", "htcondor-cm"),
                         ("Deployment", "htcondor-cm"), ("Deployment", "htcondor-schedd"),
                         ("Deployment", "htcondor-startd")}
    # the execute nodes: a Deployment the elasticity readers scale, with the template's count
    startd = objs[("Deployment", "htcondor-startd")]
    assert startd["spec"]["replicas"] == 4
    assert startd["metadata"]["labels"]["app.kubernetes.io/component"] == "startd"
    # the generated key: in the Secret only, mounted 0600 by the central manager and the schedd
    assert len(key) >= 32
    assert base64.b64decode(objs[("Secret", "htcondor-pool")]["data"]["POOL"]).decode() == key
    assert key not in yaml.safe_dump({k: v for k, v in objs.items() if k[0] != "Secret"})
    for name in ("htcondor-cm", "htcondor-schedd", "htcondor-startd"):
        (vol,) = [v for v in pod(objs, name)["volumes"] if v["name"] == "pool-key"]
        assert vol["secret"] == {"secretName": "htcondor-pool", "defaultMode": 0o600}
    # the startd's container (where jobs run) never mounts the key: its init container signs a token
    spec = pod(objs, "htcondor-startd")
    assert "pool-key" not in {m["name"] for m in spec["containers"][0]["volumeMounts"]}
    init = spec["initContainers"][0]
    assert "pool-key" in {m["name"] for m in init["volumeMounts"]}
    script = init["command"][-1]
    assert "condor_token_create -key POOL" in script and "umask 077" in script
    for authz in ("READ", "ADVERTISE_STARTD", "ADVERTISE_MASTER"):
        assert f"-authz {authz}" in script
    assert "-authz ADMINISTRATOR" not in script and "-authz DAEMON" not in script
    assert {"name": "tokens", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}} in spec["volumes"]
    # the configuration: the pool's security as on VMs, the collector the central manager's Service
    cfg = objs[("ConfigMap", "htcondor-config")]["data"]
    for role, daemons in (("central_manager", ["MASTER", "COLLECTOR", "NEGOTIATOR"]), ("schedd", ["MASTER", "SCHEDD"]),
                          ("startd", ["MASTER", "STARTD"])):
        defs = parse_config([cfg["10-dodas-pool.conf"], cfg[f"20-dodas-{role}.conf"]])
        check_security(defs, "htcondor.batch")
        assert expand(defs, "COLLECTOR_HOST") == "htcondor-cm.batch.svc:9618"
        assert [d.strip() for d in expand(defs, "DAEMON_LIST").split(",")] == daemons
    assert objs[("Service", "htcondor-cm")]["spec"]["type"] == "ClusterIP", "the pool stays inside the cluster"
    # a new configuration restarts the pods
    sums = {objs[("Deployment", n)]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for n in ("htcondor-cm", "htcondor-schedd", "htcondor-startd")}
    assert len(sums) == 1


def test_plain_helm_install_generates_a_key(helm_bin):
    """Without dodas (plain `helm install`), the chart makes a random key itself."""
    keys = [base64.b64decode(render(helm_bin)[("Secret", "htcondor-pool")]["data"]["POOL"]).decode()
            for _ in range(2)]
    assert keys[0] != keys[1] and all(len(k) == 64 and k.isalnum() for k in keys)


def test_flocking_and_trust_domain_values(helm_bin):
    objs = render(helm_bin, extra=("--set", "schedd.flockTo={cms-pool.example.org:9618,vocms0207.cern.ch}",
                                   "--set", "pool.trustDomain=cms.example.org"))
    cfg = objs[("ConfigMap", "htcondor-config")]["data"]
    defs = parse_config([cfg["10-dodas-pool.conf"], cfg["20-dodas-schedd.conf"]])
    assert expand(defs, "FLOCK_TO") == "cms-pool.example.org:9618, vocms0207.cern.ch"
    check_security(defs, "cms.example.org")
    assert "condor@cms.example.org" in pod(objs, "htcondor-startd")["initContainers"][0]["command"][-1]


@pytest.mark.parametrize("setting,message", [
    ("startd.replicas=-1", "startd.replicas"),
    ("pool.signingKey=short", "pool.signingKey"),
    ("schedd.flockTo={http://x/}", "schedd.flockTo"),
    ("pool.trustDomain=a b", "pool.trustDomain"),
    ("startd.typo=1", "typo"),
])
def test_values_schema_refuses_bad_values(helm_bin, setting, message):
    r = subprocess.run([helm_bin, "template", "h", str(CHART), "--set", setting], capture_output=True, text=True)
    assert r.returncode != 0 and message in r.stderr, r.stderr


@pytest.mark.parametrize("minor", [f"{a}.{b}" for a, b in SUPPORTED])
def test_rendered_objects_match_the_kubernetes_api(helm_bin, tmp_path, minor):
    """Every object, with every option on, validates against the strict OpenAPI schema of
    each Kubernetes release the roles install (kubernetes-validate)."""
    files, _ = dodas_values(tmp_path, [])
    objs = render(helm_bin, *files, extra=("--set", "imagePullSecrets[0].name=registry", "--set",
                                           "startd.nodeSelector.disk=ssd", "--set",
                                           "schedd.flockTo={cms-pool.example.org:9618}", "--kube-version", minor))
    validate_objects(objs, minor)
