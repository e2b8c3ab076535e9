"""The pods of dodas's HTCondor chart as process trees on this machine, for the test
that runs the chart's rendered configuration with HTCondor's real daemons.

A container is a private mount namespace whose root is an overlay of the Debian 13
root `dodas htcondor-root` prepares (standing in for the image: HTCondor 23.9's
package, its own condor_config and config.d) with a writable layer of its own,
and its volumes mounted where the rendered pod spec mounts them: the ConfigMap's
files (subPath), the pool's Secret (0600) and emptyDirs, shared by the pod's
containers as in Kubernetes. Each pod has its own loopback address (its network),
its own /tmp (so FS authentication works inside a pod and never between pods, as
in a cluster) and an /etc/hosts naming the central manager's Service at that
pod's address (the cluster's DNS). What runs is the container's command when the
spec has one (the startd's init container), else `condor_master -f`, as the
images' entrypoints start it.

A command run in a running container (`kubectl exec`) enters that container's
mount namespace and root: it never mounts a second overlay on the container's
writable layer. Two overlays sharing an upperdir/workdir are undefined behaviour,
and in practice the second mount empties the workdir under the first, so every
later copy-up in the running container fails (the schedd's master, slow to
start on a busy machine, could then not create /var/log/condor/MasterLog)."""

from __future__ import annotations

import base64
import os
import random
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from support.waiting import wait_until

#: in the namespace: the overlay, /proc and /dev, each volume at its mount path, then the command chrooted
_ENTER = r"""
set -e
root=$1; upper=$2; work=$3; merged=$4; shift 4
mount -t overlay overlay -o "lowerdir=$root,upperdir=$upper,workdir=$work" "$merged"
mount --bind /proc "$merged/proc"
mount --bind /dev "$merged/dev"
while [ "$1" != "--" ]; do
  src=$1; dst=$2; ro=$3; shift 3
  if [ -d "$src" ]; then mkdir -p "$merged$dst"; else mkdir -p "$(dirname "$merged$dst")"; touch "$merged$dst"; fi
  mount --bind "$src" "$merged$dst"
  if [ "$ro" = ro ]; then mount -o remount,bind,ro "$merged$dst"; fi
done
shift
exec chroot "$merged" "$@"
"""
#: `kubectl exec`: in the container's namespace and root (nsenter -r leaves the cwd outside it)
_EXEC = 'cd / && exec "$@"'


def free_addresses(n: int, port: int = 9618) -> list[str]:
    """`n` loopback addresses of one /24 on which `port` can be bound (each pod's own)."""
    for _ in range(200):
        net = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}"
        found = []
        for host in range(1, n + 1):
            with socket.socket() as s:
                try:
                    s.bind((f"{net}.{host}", port))
                except OSError:
                    break
            found.append(f"{net}.{host}")
        if len(found) == n:
            return found
    raise AssertionError(f"no {n} free loopback addresses for port {port}")


class Pod:
    """One pod of a rendered Deployment: its volumes in `base`, its containers' processes."""

    def __init__(self, base: Path, root: Path, objs: dict, deployment: str, address: str,
                 hosts: dict[str, str]) -> None:
        self.base = base / deployment
        self.root = root
        self.spec = objs[("Deployment", deployment)]["spec"]["template"]["spec"]
        self.address = address
        self.procs: list[subprocess.Popen] = []
        #: each started container's main process, once it runs chrooted in its overlay
        self.running: dict[str, subprocess.Popen] = {}
        self.marker = f"DODAS_TEST_POD={self.base}"
        self.volumes: dict[str, Path] = {}
        for vol in self.spec["volumes"]:
            d = self.base / "volumes" / vol["name"]
            d.mkdir(parents=True)
            if "configMap" in vol:
                for key, text in objs[("ConfigMap", vol["configMap"]["name"])]["data"].items():
                    (d / key).write_text(text)
            elif "secret" in vol:
                d.chmod(0o755)
                for key, text in objs[("Secret", vol["secret"]["secretName"])]["data"].items():
                    (d / key).write_bytes(base64.b64decode(text))
                    (d / key).chmod(vol["secret"].get("defaultMode", 0o644))
            self.volumes[vol["name"]] = d
        self.hosts = "127.0.0.1 localhost\n" + "".join(f"{ip} {name}\n" for name, ip in hosts.items())

    def container(self, name: str) -> dict:
        return next(c for c in [*self.spec.get("initContainers", []), *self.spec["containers"]] if c["name"] == name)

    def _argv(self, container: dict, command: list[str]) -> list[str]:
        """A new container: its layer (made once) and its namespace, `command` chrooted in its overlay."""
        assert container["name"] not in self.running, f"{container['name']} already runs on its layer"
        layer = self.base / "containers" / container["name"]
        upper, work, merged = layer / "upper", layer / "work", layer / "merged"
        if not upper.exists():
            for d in (upper, work, merged):
                d.mkdir(parents=True)
            (upper / "etc" / "condor").mkdir(parents=True)
            (upper / "etc" / "hosts").write_text(self.hosts)
            # the pod's network: its own address (a pod has one interface besides loopback)
            (upper / "etc" / "condor" / "condor_config.local").write_text(
                f"# the pod's network (written by the test, as a cluster gives a pod its address):\n"
                f"# its one address; the other pods' addresses are this host's too, which a pod's are not\n"
                f"NETWORK_INTERFACE = {self.address}\nBIND_ALL_INTERFACES = FALSE\nENABLE_IPV6 = FALSE\n"
                f"# one kernel holds every pod here: a master must not take another pod's daemons for its own\n"
                f"SEC_USE_FAMILY_SESSION = FALSE\n")
            (upper / "tmp").mkdir(mode=0o1777)
            (upper / "tmp").chmod(0o1777)
        mounts: list[str] = []
        for m in container.get("volumeMounts", []):
            src = self.volumes[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
            mounts += [str(src), m["mountPath"], "ro" if m.get("readOnly") else "rw"]
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _ENTER, "enter",
                str(self.root), str(upper), str(work), str(merged), *mounts, "--", *command]

    def path(self, container: str, path: str) -> Path:
        """A file a container wrote in its own layer (e.g. its /tmp)."""
        return self.base / "containers" / container / "upper" / path.lstrip("/")

    def logs(self, lines: int = 15) -> str:
        """The last lines of each daemon's log and of the containers' output: what a failing test shows."""
        out = []
        for f in sorted([*self.base.glob("containers/*/upper/var/log/condor/*Log"), *self.base.glob("*.out")]):
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"== {f.relative_to(self.base)}\n" + "\n".join(tail))
        return "\n".join(out)

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "DODAS_TEST_POD": str(self.base)}

    def run(self, container: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`kubectl exec` in a started container (in its namespace, on its one overlay), or the init
        container's command when `argv` is empty."""
        c = self.container(container)
        if container in self.running:
            main = self.running[container]
            assert argv and main.poll() is None, (
                f"{container} of {self.base.name} exited ({main.returncode}):\n{self.logs()}")
            command = ["nsenter", "--target", str(main.pid), "--mount", "--root", "--", "sh", "-c", _EXEC,
                       "exec", *argv]
        else:
            command = self._argv(c, list(argv) or [*c.get("command", []), *c.get("args", [])])
        return subprocess.run(command, env=self._env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self, container: str) -> None:
        """The container's main process: HTCondor's master in the foreground, as the images run it.
        Returns once that process runs chrooted in its overlay (unshare, sh and chroot exec into it,
        so its pid is the one to enter), as a container is running before anything execs in it."""
        c = self.container(container)
        with (self.base / f"{container}.out").open("w") as log:
            main = subprocess.Popen(self._argv(c, c.get("command") or ["condor_master", "-f"]),
                                    env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(main)
        merged = os.path.realpath(self.base / "containers" / container / "merged")

        def chrooted() -> bool:
            assert main.poll() is None, f"{container} of {self.base.name} exited ({main.returncode}):\n{self.logs()}"
            try:
                return os.readlink(f"/proc/{main.pid}/root") == merged
            except OSError:
                return False
        wait_until(chrooted, f"{container} of {self.base.name} in its overlay", 300)
        self.running[container] = main

    def stop(self) -> None:
        """The masters told to shut down (SIGTERM: their daemons first), then whatever is left of the pod."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        left = lambda: [pid for pid in _pids() if _has(pid, self.marker)]  # noqa: E731
        for pid in left():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not left(), f"the processes of {self.base.name} gone", 60)
        shutil.rmtree(self.base, ignore_errors=True)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _has(pid: int, needle: str) -> bool:
    try:
        return (needle + "\0").encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
