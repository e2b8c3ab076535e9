"""A Kubernetes cluster that already exists: Helm releases only, no machines.

The cluster is named as kubectl names it: a kubeconfig file (the provider's
`kubeconfig`, else $KUBECONFIG's first file, else ~/.kube/config) and one of its
contexts (the provider's `context`, else the file's current context). Templates
made only of Helm releases deploy here (the course's "focus just on application
orchestration" scenario); helm runs on this machine against that context.

    providers:
      - name: lab-cluster
        type: kubernetes
        kubeconfig: ~/.kube/config
        context: lab

Every release carries the label dodas-deployment=<id>, so `resources` and
`purge` find a deployment's releases on the cluster even after its state was
lost, which is what makes destroy complete here too.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dodas import helm
from dodas.model.deployment import DeploymentModel
from dodas.providers.base import ComputeRequest, Machine, Provider, ProviderError
from dodas.providers.config import ProviderConfig
from dodas.providers.placement import HELM_TYPE
CHECK_TIMEOUT_S = 30


def find_helm() -> str | None:
    """helm on PATH, else the one the `kubernetes` extra put beside this Python."""
    here = Path(sys.executable).parent / "helm"
    return shutil.which("helm") or (str(here) if here.is_file() and os.access(here, os.X_OK) else None)


def default_kubeconfig() -> str:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    return str(Path.home() / ".kube" / "config")


class KubernetesProvider(Provider):
    host_kind = "kubernetes"
    retry_base = 1.0

    def __init__(self, cfg: ProviderConfig) -> None:
        self.name = cfg.name
        o = cfg.options
        self.kubeconfig = os.path.expanduser(str(o.get("kubeconfig") or default_kubeconfig()))
        self.context: str | None = str(o["context"]) if o.get("context") else None
        self.helm = find_helm()

    # -- what a template may ask of it ------------------------------------------
    def preflight(self, model: DeploymentModel) -> list[str]:
        problems = self.host_problems(model)
        for n in model.nodes.values():
            if n.is_compute:
                problems.append(f'node "{n.name}" ({n.type}) is a machine; provider {self.name} is an existing '
                                "Kubernetes cluster and makes none (a template for it holds only Helm releases)")
            elif not n.derives_from(HELM_TYPE):
                problems.append(f'node "{n.name}" ({n.type}) is not a Helm release; provider {self.name} '
                                "deploys only Helm releases onto an existing cluster")
            elif n.host is not None:
                problems.append(f'node "{n.name}" is hosted on "{n.host}"; on provider {self.name} a Helm '
                                "release goes onto the provider's cluster: remove its host requirement")
        if self.helm is None:
            problems.append("the helm binary is not installed: pip install 'dodas[kubernetes]' (or put helm on PATH)")
        problem = self._context_problem()
        if problem:
            problems.append(problem)
        return problems

    def _context_problem(self) -> str | None:
        try:
            data = yaml.safe_load(Path(self.kubeconfig).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            return f"provider {self.name}: cannot read kubeconfig {self.kubeconfig}: {exc.strerror}"
        except yaml.YAMLError:
            return f"provider {self.name}: kubeconfig {self.kubeconfig} is not valid YAML"
        if not isinstance(data, dict):
            return f"provider {self.name}: kubeconfig {self.kubeconfig} is not a kubeconfig"
        names = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict)]
        wanted = self.context or data.get("current-context")
        if not wanted:
            return (f"provider {self.name}: kubeconfig {self.kubeconfig} has no current context; "
                    f"set `context` (one of: {', '.join(map(str, names)) or 'none'})")
        if wanted not in names:
            return (f'provider {self.name}: kubeconfig {self.kubeconfig} has no context "{wanted}" '
                    f"(it has: {', '.join(map(str, names)) or 'none'})")
        return None

    def controller_variables(self) -> dict[str, Any]:
        return {"dodas_kube": {"helm": self.helm or "helm", "kubeconfig": self.kubeconfig,
                               "context": self.context}}

    def _kube(self) -> helm.Kube:
        return helm.Kube(helm=self.helm or "helm", kubeconfig=self.kubeconfig, context=self.context)

    # -- no machines --------------------------------------------------------------
    async def create(self, req: ComputeRequest) -> Machine:
        raise ProviderError(self.name, f"{req.instance_id}: a kubernetes provider makes no machines")

    async def delete(self, deployment_id: str, instance_id: str, provider_id: str | None) -> None:
        return None

    async def describe(self, deployment_id: str, instance_id: str) -> Machine | None:
        return None

    # -- the cluster ----------------------------------------------------------------
    async def _helm(self, args: list[str], timeout: float) -> str:
        if self.helm is None:
            raise ProviderError(self.name, "the helm binary is not installed: pip install 'dodas[kubernetes]'")
        problem = self._context_problem()
        if problem:
            raise ProviderError(self.name, problem.split(": ", 1)[1])

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        try:
            proc = await asyncio.to_thread(run)
        except subprocess.TimeoutExpired:
            raise ProviderError(self.name, f"the cluster did not answer within {timeout:.0f} s",
                                transient=True) from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            raise ProviderError(self.name, f"helm: {lines[-1] if lines else f'exit code {proc.returncode}'}",
                                transient="unreachable" in proc.stderr)
        return proc.stdout

    async def check(self) -> str:
        await self._helm([self.helm or "helm", "list", "--all-namespaces", "--short", "--max", "1",
                          *self._kube().args()], CHECK_TIMEOUT_S)
        return f"cluster reachable (kubeconfig {self.kubeconfig}, context {self.context or 'current'})"

    async def releases(self, deployment_id: str) -> list[dict[str, Any]]:
        out = await self._helm(helm.list_command(self._kube(), deployment_id), CHECK_TIMEOUT_S)
        try:
            found = json.loads(out or "[]")
        except json.JSONDecodeError:
            raise ProviderError(self.name, "helm list gave output that is not JSON") from None
        return [r for r in found if isinstance(r, dict) and r.get("name")]

    async def resources(self, deployment_id: str) -> list[str]:
        return [f"helm release {r.get('namespace')}/{r['name']}" for r in await self.releases(deployment_id)]

    async def purge(self, deployment_id: str) -> None:
        for r in await self.releases(deployment_id):
            rel = helm.Release(name=r["name"], chart="", namespace=str(r.get("namespace") or "default"),
                               kube=self._kube())
            await self._helm(helm.uninstall_command(rel), 900)
