"""What the chart tests share (the helm binary is conftest's fixture): a chart rendered into objects,
and the values files dodas itself writes for a Helm release of a template (with
its generated secrets and deferred attributes resolved as at run time)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from dodas import services
from dodas.configure import helm
from dodas.engine.context import RunContext
from dodas.model.deployment import Instance
from dodas.providers.base import Machine


def render_chart(helm_bin: str, chart: Path, release: str, namespace: str, values: tuple[Path, ...] = (),
                 extra: tuple[str, ...] = ()) -> dict:
    """`helm template` of the chart: {(kind, name): object}."""
    out = subprocess.run([helm_bin, "template", release, str(chart), "--namespace", namespace,
                          *[a for v in values for a in ("--values", str(v))], *extra],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def release_values(tmp_path: Path, template: Path, node: str, inputs: list[str], *, deployment: str = "demo",
                   machines: dict[Instance, Machine] | None = None) -> tuple[list[Path], RunContext, Instance]:
    """The values files dodas writes for the release `node` of `template`, the run
    context they came from and the release's instance (its secrets are there)."""
    plan = services.plan(str(template), inputs)
    n = plan.model.nodes[node]
    ctx = RunContext(plan.model, "dep-1", deployment)
    ctx.machines.update(machines or {})
    inst = Instance(node, 0)
    ctx.ensure_secrets(inst)
    variables = ctx.variables(inst, n, n.operations["configure"].inputs)
    out = helm.plan(variables["dodas_properties"], str(tmp_path), None, "dep-1", variables["chart_values"],
                    variables["secret_values"])
    paths = []
    for f in out["files"] + out["secret_files"]:
        Path(f["path"]).write_text(f["content"])
        paths.append(Path(f["path"]))
    return paths, ctx, inst


def validate_objects(objs: dict, minor: str) -> None:
    """Every rendered object against the strict OpenAPI schema of Kubernetes `minor`
    (kubernetes-validate), the failure naming the object and the path in it."""
    import kubernetes_validate

    for key, obj in objs.items():
        try:
            kubernetes_validate.validate(obj, f"{minor}.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{key} does not match Kubernetes {minor}: {exc.message} at "
                                 f"{list(exc.path)}") from None


#: dodas's own Spark + Jupyter chart
SPARK_CHART = helm.CHARTS / "spark-jupyter"


def render_spark(helm_bin: str, *values: Path, release: str = "spark", extra: tuple[str, ...] = ()) -> dict:
    """The Spark chart rendered in namespace "analysis" with these values files."""
    return render_chart(helm_bin, SPARK_CHART, release, "analysis", values, extra)


def spark_values(tmp_path: Path, template: Path, inputs: list[str], address: str | None = None) -> list[Path]:
    """The values files dodas writes for the template's Spark release, with its
    deferred attributes resolved as at run time."""
    machines = {Instance("k8s_master_server", 0): Machine("srv-1", address, "10.0.0.5")} if address else None
    return release_values(tmp_path, template, "spark", inputs, machines=machines)[0]
