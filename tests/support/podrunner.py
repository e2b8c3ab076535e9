"""Run the containers of a rendered chart as processes on this machine, doing for
them what a kubelet does, so that the chart's own commands, arguments and
environment are exercised without a Kubernetes cluster (none can run here).

What stands in for what, and nothing more:
- a pod is a loopback address of its own (127.79.N.x) and a directory per volume
  (emptyDir); SPARK_LOCAL_IP is that address, as a pod's network namespace would
  give it only that one; `--ip=0.0.0.0` binds that address for the same reason;
- the pod runs as uid 185 (the chart says so); when these tests run as root,
  JupyterLab is told `--allow-root`, the only flag added to a chart's command;
- the image is the Spark of the pyspark wheel laid out as /opt/spark is in the
  official image (bin, jars, python/lib, python/pyspark), the Java dodas finds,
  and this environment's Python (which has JupyterLab already: init containers,
  which pip-install it in the real pod, are not run);
- env values, `fieldRef: status.podIP`, `secretKeyRef` into the rendered Secrets,
  and `$(VAR)` expansion in commands, as the kubelet does;
- a Service name is resolved to the address of a pod its selector matches (DNS).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPARK_IN_IMAGE = "/opt/spark"


def spark_home(root: Path) -> Path:
    """The pyspark wheel's Spark, laid out as in the official image."""
    import pyspark

    wheel = Path(pyspark.__file__).parent
    home = root / "opt-spark"
    (home / "python").mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", wheel / "bin"), ("jars", wheel / "jars"), ("python/lib", wheel / "python" / "lib"),
                         ("python/pyspark", wheel)):
        if not (home / link).exists():
            (home / link).symlink_to(target)
    return home


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    ip: str
    proc: subprocess.Popen | None = None
    dirs: dict[str, Path] = field(default_factory=dict)


class PodRunner:
    def __init__(self, objects: dict[tuple[str, str], Any], root: Path, java_home: str, net: int) -> None:
        self.objects = objects
        self.root = root
        self.java_home = java_home
        self.spark = spark_home(root)
        self.net = net
        self.pods: list[Pod] = []

    # -- what the kubelet resolves ---------------------------------------------
    def _secret(self, name: str, key: str) -> str:
        return base64.b64decode(self.objects[("Secret", name)]["data"][key]).decode()

    def service_ip(self, name: str) -> str:
        selector = self.objects[("Service", name)]["spec"]["selector"]
        for pod in self.pods:
            if all(pod.labels.get(k) == v for k, v in selector.items()):
                return pod.ip
        raise AssertionError(f"no pod behind service {name}")

    def _names(self, text: str) -> str:
        """Service names (as DNS would resolve them) and image paths, in a value."""
        for kind, name in self.objects:
            if kind == "Service":
                try:
                    ip = self.service_ip(name)
                except AssertionError:
                    continue
                text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?=:\d)", ip, text)
        return text

    def _paths(self, text: str, pod: Pod) -> str:
        for mount, d in sorted(pod.dirs.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(mount, str(d))
        return text.replace(SPARK_IN_IMAGE, str(self.spark))

    # -- pods ----------------------------------------------------------------------
    def start(self, deployment: str, index: int = 0) -> Pod:
        spec = self.objects[("Deployment", deployment)]["spec"]["template"]
        labels = spec["metadata"]["labels"]
        pod = Pod(f"{deployment}-{index}", labels, f"127.79.{self.net}.{len(self.pods) + 1}")
        self.pods.append(pod)
        (c,) = spec["spec"]["containers"]
        for v in spec["spec"].get("volumes", []):
            pod.dirs[v["name"]] = self.root / pod.name / v["name"]
            pod.dirs[v["name"]].mkdir(parents=True, exist_ok=True)
        pod.dirs = {m["mountPath"]: pod.dirs[m["name"]] for m in c.get("volumeMounts", [])}
        self._run(pod, c.get("command", []) + c.get("args", []), c.get("env", []))
        return pod

    def run_pod(self, kind_name: tuple[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
        """A bare Pod (a helm test hook) to completion."""
        spec = self.objects[kind_name]["spec"]
        (c,) = spec["containers"]
        pod = Pod(kind_name[1], self.objects[kind_name]["metadata"].get("labels", {}),
                  f"127.79.{self.net}.{len(self.pods) + 1}")
        env = self._env(pod, c.get("env", []))
        argv = [self._paths(self._names(_expand(a, env)), pod) for a in c.get("command", []) + c.get("args", [])]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

    def _env(self, pod: Pod, entries: list[dict[str, Any]]) -> dict[str, str]:
        python_bin = str(Path(sys.executable).parent)
        env = {"PATH": f"{python_bin}:{self.java_home}/bin:/usr/bin:/bin", "JAVA_HOME": self.java_home,
               "SPARK_HOME": str(self.spark), "SPARK_LOCAL_IP": pod.ip, "LANG": "C.UTF-8",
               "DODAS_MACHINE": f"{self.root}/{pod.name}"}
        for e in entries:
            if "value" in e:
                value = _expand(str(e["value"]), env)
            elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "status.podIP":
                value = pod.ip
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                value = self._secret(ref["name"], ref["key"])
            env[e["name"]] = self._paths(self._names(value), pod)
        return env

    def _run(self, pod: Pod, argv: list[str], env_entries: list[dict[str, Any]]) -> None:
        env = self._env(pod, env_entries)
        argv = [self._paths(self._names(_expand(a, env)), pod).replace("--ip=0.0.0.0", f"--ip={pod.ip}")
                for a in argv]
        if os.geteuid() == 0:
            argv = [a.replace("--no-browser", "--no-browser --allow-root") for a in argv]
        log = open(self.root / f"{pod.name}.log", "w")  # closed with the process
        pod.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=self.root / pod.name if (self.root / pod.name).is_dir() else self.root)

    def logs(self, pod: Pod) -> str:
        return (self.root / f"{pod.name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for pod in self.pods:
            if pod.proc and pod.proc.poll() is None:
                try:
                    os.killpg(pod.proc.pid, signal.SIGTERM)
                    pod.proc.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(pod.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        shutil.rmtree(self.spark, ignore_errors=True)


def _expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` as the kubelet expands it in commands and env values."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)
