"""dodas's own XCache chart (cachingondemand), linted and rendered by the real helm
binary with the values dodas itself writes for a release of
tosca.nodes.DODAS.HelmInstall.CachingOnDemand (templates/xcache-k8s.yaml), its
objects validated against the Kubernetes API schemas; and the rendered cache
container run as a process: its xrootd configuration, taken from the rendered
ConfigMap, started with Debian's real xrootd in front of a real origin xrootd that
admits only sss clients, the keytab reaching it through the rendered Secret and
init container, a file read through the cache with xrdcp. Installing the chart
needs a Kubernetes cluster, which these machines cannot run (see the README)."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from support.charts import release_values, render_chart, validate_objects
from support.livecluster import processes_of
from support.paths import TEMPLATES
from support.serverproc import stop_group
from support.waiting import wait_until

from dodas import services
from dodas.configure import helm
from dodas.configure.kube import SUPPORTED

CHART = helm.CHARTS / "cachingondemand"
TEMPLATE = TEMPLATES / "xcache-k8s.yaml"
KEY = "ab" * 32
KEYTAB = f"0 u:xrootd g:xrootd n:dodas N:1 c:1700000000 e:0 f:0 k:{KEY}"


def render(helm_bin: str, *values: Path, release: str = "cache", extra: tuple[str, ...] = ()) -> dict:
    return render_chart(helm_bin, CHART, release, "data", values, extra)


def dodas_values(tmp_path: Path, inputs: list[str], template: Path = TEMPLATE, node: str = "cache") -> list[Path]:
    """The values files dodas writes for the template's CachingOnDemand release."""
    return release_values(tmp_path, template, node, inputs)[0]


def config_lines(objs: dict, key: str = "xcache.cfg", release: str = "cache") -> list[str]:
    text = objs[("ConfigMap", f"{release}-config")]["data"][key]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_chart_lints_strictly(helm_bin):
    r = subprocess.run([helm_bin, "lint", "--strict", str(CHART), "--set", "origin.host=origin.example.org"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 chart(s) failed" in r.stdout
    # without an origin there is nothing to cache: said, not rendered
    r = subprocess.run([helm_bin, "template", "c", str(CHART)], capture_output=True, text=True)
    assert r.returncode != 0 and "origin.host (the XRootD server the cache reads from) is required" in r.stderr


def test_rendered_with_dodas_values(helm_bin, tmp_path):
    files = dodas_values(tmp_path, ["origin_host=xrootd.example.org", "origin_port=1095", "cache_servers=3",
                                    "cache_size_gb=20", "cache_ram_gb=4", "high_water_mark=0.9",
                                    "low_water_mark=0.75", f"origin_sss_secret={KEYTAB}"])
    objs = render(helm_bin, *files, release="cachingondemand")
    name = "cachingondemand"
    assert set(objs) == {("ConfigMap", f"{name}-config"), ("Secret", f"{name}-sss"),
                         ("StatefulSet", f"{name}-server"), ("Service", f"{name}-servers"), ("Service", name),
                         ("Pod", f"{name}-test")}
    assert objs[("Pod", f"{name}-test")]["metadata"]["annotations"]["helm.sh/hook"] == "test", "only for helm test"
    cfg = config_lines(objs, release=name)
    for line in ("pss.origin xrootd.example.org:1095", "xrd.port 31494 if exec xrootd", "ofs.osslib libXrdPss.so",
                 "pss.cachelib libXrdPfc.so", "oss.localroot /data/xrd", "pfc.ram 4g", "pfc.blocksize 1m",
                 # 0.75 and 0.9 of 20 GiB, in MiB
                 "pfc.diskusage 0.90 0.95 files 7680m 15360m 18432m purgeinterval 60", "all.export /"):
        assert line in cfg, (line, cfg)
    assert not [line for line in cfg if line.startswith(("all.manager", "all.role"))], "standalone"
    assert not [line for line in cfg if line.startswith("pss.config")], "streams 0: XRootD's default"
    sts = objs[("StatefulSet", f"{name}-server")]["spec"]
    assert sts["replicas"] == 3 and sts["serviceName"] == f"{name}-servers"
    (claim,) = sts["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "cache" and claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    pod = sts["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    (c,) = pod["containers"]
    assert c["command"] == ["xrootd", "-c", "/etc/xrootd/dodas/xcache.cfg", "-n", "server"]
    assert {"name": "cache", "mountPath": "/data/xrd"} in c["volumeMounts"]
    assert c["readinessProbe"]["tcpSocket"]["port"] == "xrootd" and c["livenessProbe"]["tcpSocket"]["port"] == "xrootd"
    assert c["ports"] == [{"name": "xrootd", "containerPort": 31494}]
    svc = objs[("Service", name)]["spec"]
    assert svc["type"] == "NodePort" and svc["ports"][0]["nodePort"] == 31494
    assert svc["selector"]["app.kubernetes.io/component"] == "server"
    # the origin's key: in the Secret only, copied 0600 by the init container, named in the environment
    secret = objs[("Secret", f"{name}-sss")]
    assert base64.b64decode(secret["data"]["keytab"]).decode() == KEYTAB + "\n"
    assert yaml.safe_load(files[-1].read_text()) == {"origin": {"sssKeytab": KEYTAB}}, "written as a secret file"
    assert KEY not in files[0].read_text()
    assert KEY not in yaml.safe_dump({k: v for k, v in objs.items() if k[0] != "Secret"}), "nowhere else"
    (init,) = pod["initContainers"]
    assert "chmod 0600 /var/run/xrootd/sss.keytab" in init["command"][-1]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"XrdSecPROTOCOL": "sss", "XrdSecSSSKT": "/var/run/xrootd/sss.keytab"}
    # one image everywhere, the value's
    images = {x["image"] for x in pod["containers"] + pod["initContainers"]}
    assert images == {"opensciencegrid/xcache:23-release"}


def test_without_a_keytab_there_is_no_secret(helm_bin, tmp_path):
    objs = render(helm_bin, *dodas_values(tmp_path, ["origin_host=xrootd.example.org"]))
    assert not [k for k in objs if k[0] == "Secret"]
    pod = objs[("StatefulSet", "cache-server")]["spec"]["template"]["spec"]
    assert "initContainers" not in pod and "env" not in pod["containers"][0]
    assert "pfc.diskusage 0.90 0.95 files 4096m 8192m 9728m purgeinterval 60" in config_lines(objs), "of 10 GiB"


def test_the_plan_does_not_show_the_keytab(cli):
    r = cli("plan", str(TEMPLATE), "-i", "origin_host=xrootd.example.org", "-i", f"origin_sss_secret={KEYTAB}",
            "--json")
    assert r.code == 0, r.err
    assert KEY not in r.out and KEY not in r.err


def test_redirector_mode(helm_bin, tmp_path):
    """cache_redirector given (DODAS's shape): a redirector (xrootd + cmsd, manager)
    in front of the servers, whose cmsd subscribes to it; clients go to it."""
    tmpl = tmp_path / "redir.yaml"
    tmpl.write_text(TEMPLATE.read_text().replace("check_path: { get_input: check_path }",
                                                 "check_path: { get_input: check_path }\n"
                                                 "        cache_redirector: 192.0.2.7\n        streams: 8"))
    objs = render(helm_bin, *dodas_values(tmp_path, ["origin_host=xrootd.example.org"], template=tmpl))
    assert ("Deployment", "cache-redirector") in objs and ("Service", "cache-redirector") in objs
    cfg = config_lines(objs)
    assert "all.role server" in cfg and "all.manager cache-redirector:31113" in cfg
    assert cfg[cfg.index("if exec cmsd"):cfg.index("else")] == ["if exec cmsd", "all.export / stage r/o"]
    assert "pss.config streams 8" in cfg and cfg.count("fi") == 1
    red = config_lines(objs, "redirector.cfg")
    assert {"all.role manager", "xrd.port 31494 if exec xrootd", "xrd.port 31113 if exec cmsd"} <= set(red)
    pod = objs[("StatefulSet", "cache-server")]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["xrootd", "cmsd"]
    assert pod["containers"][1]["command"][0] == "cmsd"
    rd = objs[("Deployment", "cache-redirector")]["spec"]["template"]["spec"]
    assert [c["command"][0] for c in rd["containers"]] == ["xrootd", "cmsd"]
    assert objs[("Service", "cache")]["spec"]["selector"]["app.kubernetes.io/component"] == "redirector"
    assert objs[("Service", "cache-redirector")]["spec"]["type"] == "ClusterIP", "cmsd stays inside"
    # subscribing to a redirector elsewhere: no redirector of the chart's own
    objs = render(helm_bin, extra=("--set", "origin.host=o", "--set", "redirector.subscribeTo=redir.example.org"))
    assert ("Deployment", "cache-redirector") not in objs
    assert "all.manager redir.example.org:31113" in config_lines(objs)
    objs = render(helm_bin, extra=("--set", "origin.host=o", "--set", "service.type=ClusterIP"))
    assert "nodePort" not in objs[("Service", "cache")]["spec"]["ports"][0]


@pytest.mark.parametrize("setting, message", [
    ("cache.highWatermark=1.5", "cache.highWatermark: Must be less than or equal to 1"),
    ("cache.lowWatermark=0", "cache.lowWatermark: Must be greater than 0"),
    ("cache.lowWatermark=0.97", "cache.lowWatermark (0.97) must be below cache.highWatermark (0.95)"),
    ("cache.sizeGi=-5", "cache.sizeGi: Must be greater than or equal to 1"),
    ("cache.ramGi=0", "cache.ramGi: Must be greater than or equal to 1"),
    ("cache.replicas=-1", "cache.replicas: Must be greater than or equal to 0"),
    ("cache.blockSize=lots", "cache.blockSize: Does not match pattern"),
    ("ports.xrootd=80", "ports.xrootd: Must be greater than or equal to 1024"),
    ("service.type=LoadBalancer", "service.type: service.type must be one of the following"),
    ("origin.sssKeytab=hunter2", "origin.sssKeytab: Does not match pattern"),
    ("origin.host=a b", "origin.host: Does not match pattern"),
    ("cache.size=1", "cache: Additional property size is not allowed"),
])
def test_values_schema_refuses_bad_values(helm_bin, tmp_path, setting, message):
    # in a values file, read as YAML (--set would make 1.5 a string)
    key, value = setting.split("=", 1)
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(helm.expand({"origin.host": "o", key: yaml.safe_load(value)})))
    r = subprocess.run([helm_bin, "template", "c", str(CHART), "--values", str(tmp_path / "v.yaml")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and message in r.stderr, r.stderr


@pytest.mark.parametrize("inputs, message", [
    (["high_water_mark=1.5"], "high_water_mark"),
    (["cache_size_gb=-1"], "cache_size_gb"),
    (["cache_port=80"], "cache_port"),
])
def test_the_template_refuses_bad_inputs_at_plan_time(inputs, message):
    with pytest.raises(Exception, match=message):
        services.plan(str(TEMPLATE), ["origin_host=xrootd.example.org", *inputs])


def test_without_an_origin_the_chart_says_so(helm_bin, tmp_path):
    """The catalogue template plans without inputs (as every catalogue template);
    with no origin given, helm refuses the release before anything is made."""
    files = dodas_values(tmp_path, [])
    r = subprocess.run([helm_bin, "template", "c", str(CHART), *[a for f in files for a in ("--values", str(f))]],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "origin.host (the XRootD server the cache reads from) is required" in r.stderr


def test_no_bitnami_anywhere():
    for f in CHART.rglob("*"):
        if f.is_file():
            assert "bitnami" not in f.read_text().lower(), f


@pytest.mark.parametrize("minor", [f"{a}.{b}" for a, b in SUPPORTED])
def test_rendered_objects_match_the_kubernetes_api(helm_bin, tmp_path, minor):
    """Every object, with every option on, validates against the strict OpenAPI
    schema of each Kubernetes release the roles install (kubernetes-validate)."""
    files = dodas_values(tmp_path, ["origin_host=xrootd.example.org", f"origin_sss_secret={KEYTAB}",
                                    "check_path=/store/test/file.root"])
    objs = render(helm_bin, *files, extra=("--set", "redirector.enabled=true", "--set", "cache.storageClass=fast",
                                           "--set", "imagePullSecrets[0].name=registry", "--set",
                                           "cache.nodeSelector.disk=ssd", "--set", "cache.streams=4",
                                           "--kube-version", minor))
    assert ("Deployment", "cache-redirector") in objs
    # and the other shape: inside the cluster only, subscribed to a redirector elsewhere, no keytab
    other = render(helm_bin, extra=("--set", "origin.host=o", "--set", "service.type=ClusterIP", "--set",
                                    "redirector.subscribeTo=redir.example.org", "--kube-version", minor))
    objs.update({(k, f"{n} (ClusterIP)"): o for (k, n), o in other.items()})
    validate_objects(objs, minor)


# -- the rendered cache container, run as a process with Debian's xrootd ------------------------------------

def _free_port(lo: int = 30000, hi: int = 32767) -> int:
    for _ in range(200):
        port = secrets.randbelow(hi - lo) + lo
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port")


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"xrootd exited {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}: {log.read_text(errors='replace')[-3000:]}")


class Processes:
    """Processes started for a test, each in a session of its own, marked in their
    environment (DODAS_MACHINE=<tmp_path>) so that none can be left behind unseen.
    xrootd refuses uid 0: as root, each runs as the pod's uid in a user namespace
    (the files the test made, root's, are that uid's there)."""

    def __init__(self, root: Path, uid: int, gid: int) -> None:
        self.root, self.uid, self.gid, self.procs = root, uid, gid, []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        if os.geteuid() == 0:
            argv = ["unshare", "--user", f"--map-user={self.uid}", f"--map-group={self.gid}", *argv]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env, "DODAS_MACHINE": str(self.root)}
        out = open(log, "w")  # closed with the process
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             cwd=self.root)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            stop_group(p)


@pytest.fixture
def procs(tmp_path):
    if not (shutil.which("xrootd") and shutil.which("cmsd") and shutil.which("xrdcp")):
        pytest.skip("Debian's xrootd-server and xrootd-client are not installed (apt-get install xrootd-server "
                    "xrootd-client)")
    p = Processes(tmp_path, 10940, 10940)
    # the pods' directories: a short path, as XRootD's admin sockets are under it
    p.pods = Path(tempfile.mkdtemp(prefix="xc-"))
    yield p
    p.stop()
    shutil.rmtree(p.pods, ignore_errors=True)
    assert processes_of(tmp_path) == {}, "every process the test started is gone"


def start_origin(procs: Processes, root: Path) -> tuple[int, bytes]:
    """A tiny data server exporting /data (one file), admitting only sss clients
    with KEYTAB's key."""
    port = _free_port(40000, 60000)
    origin = root / "origin"
    (origin / "data").mkdir(parents=True)
    (origin / "adm").mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (origin / "data" / "file.bin").write_bytes(payload)
    keytab = origin / "sss.keytab"
    keytab.write_text(KEYTAB + "\n")
    keytab.chmod(0o600)
    (origin / "origin.cfg").write_text(
        f"xrd.port {port}\nall.export /data\noss.localroot {origin}\nall.adminpath {origin}/adm\n"
        f"all.pidpath {origin}/adm\nxrootd.seclib libXrdSec.so\nsec.protocol sss -s {keytab}\n"
        "sec.protbind * only sss\n")
    o = procs.start(["xrootd", "-c", str(origin / "origin.cfg"), "-n", "origin"], {}, root / "origin.log")
    _wait_port(port, o, root / "origin.log")
    return port, payload


def start_pod(procs: Processes, objs: dict, kind_name: tuple[str, str], root: Path,
              config: dict[str, str] | None = None) -> dict[str, Path]:
    """One pod of a rendered StatefulSet or Deployment, doing what a kubelet does:
    a directory per volume (the ConfigMap's and the Secret's files in theirs, the
    Secret's group readable as under fsGroup), the init containers run to the end,
    then every container started with its command and environment, the mount paths
    in them (and in the configuration files) being the pod's directories. `config`:
    the ConfigMap's files as given instead (a test's stand-ins for pod addresses)."""
    spec = objs[kind_name]["spec"]["template"]["spec"]
    pod = procs.pods / kind_name[1]
    volumes = {v["name"]: v for v in spec["volumes"]}
    claims = [c["metadata"]["name"] for c in objs[kind_name]["spec"].get("volumeClaimTemplates", [])]
    mounts = {name: pod / name for name in [*volumes, *claims]}
    for d in mounts.values():
        d.mkdir(parents=True)
    for name, v in volumes.items():
        if "secret" in v:
            for key, b64 in objs[("Secret", v["secret"]["secretName"])]["data"].items():
                (mounts[name] / key).write_bytes(base64.b64decode(b64))
                (mounts[name] / key).chmod(0o440)

    def pod_paths(text: str, container: dict) -> str:
        where = {m["mountPath"]: str(mounts[m["name"]]) for m in container["volumeMounts"]}
        pattern = "|".join(re.escape(m) for m in sorted(where, key=len, reverse=True))
        return re.sub(rf"(?<![\w/.-])({pattern})(?=[/\s\"']|$)", lambda m: where[m.group(1)], text, flags=re.M)

    for init in spec.get("initContainers", []):
        r = subprocess.run([pod_paths(a, init) for a in init["command"]], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    for c in spec["containers"]:
        for m in c["volumeMounts"]:
            if m["name"] in volumes and "configMap" in volumes[m["name"]]:
                cm = volumes[m["name"]]["configMap"]["name"]
                for key, text in (config or objs[("ConfigMap", cm)]["data"]).items():
                    (mounts[m["name"]] / key).write_text(pod_paths(text, c))
        env = {e["name"]: pod_paths(e["value"], c) for e in c.get("env", [])}
        procs.start([pod_paths(a, c) for a in c["command"]], env, root / f"{kind_name[1]}-{c['name']}.log")
    return mounts


def xrdcp(url: str, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["xrdcp", "--force", url, str(out)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


def logs(root: Path) -> str:
    return "\n".join(f"== {f.name}\n{f.read_text(errors='replace')[-2000:]}" for f in sorted(root.glob("*.log")))


def test_rendered_cache_reads_through_from_a_real_origin(helm_bin, tmp_path, procs):
    origin_port, payload = start_origin(procs, tmp_path)
    cache_port = _free_port()
    files = dodas_values(tmp_path, ["origin_host=127.0.0.1", f"origin_port={origin_port}",
                                    f"origin_sss_secret={KEYTAB}", f"cache_port={cache_port}",
                                    "cache_size_gb=1", "check_path=/data/file.bin"])
    objs = render(helm_bin, *files)
    security = objs[("StatefulSet", "cache-server")]["spec"]["template"]["spec"]["securityContext"]
    procs.uid, procs.gid = security["runAsUser"], security["runAsGroup"]
    mounts = start_pod(procs, objs, ("StatefulSet", "cache-server"), tmp_path)
    assert (mounts["run"] / "sss.keytab").stat().st_mode & 0o777 == 0o600, "the init container's copy"
    _wait_port(cache_port, procs.procs[-1], tmp_path / "cache-server-xrootd.log")
    # xrootd read the purge as the chart meant it: the cache's files from 0.95 down to 0.80 of 1 GiB
    mib = 2**20
    effective = f"files {409 * mib} {819 * mib} {972 * mib} purgeinterval 60"
    # xrootd logs its cache configuration once it has read it, which may be after it listens
    wait_until(lambda: effective in (tmp_path / "cache-server-xrootd.log").read_text(),
               "pfc.diskusage as xrootd took it, in its log")

    # without the key the origin refuses; through the cache, the origin's bytes, twice, the second from its disk
    r = xrdcp(f"root://127.0.0.1:{origin_port}//data/file.bin", tmp_path / "x", XrdSecPROTOCOL="sss")
    assert r.returncode != 0, "the origin admits only sss clients with its key"
    for attempt in (1, 2):
        out = tmp_path / f"read{attempt}"
        r = xrdcp(f"root://127.0.0.1:{cache_port}//data/file.bin", out)
        assert r.returncode == 0, r.stderr + logs(tmp_path)
        assert out.read_bytes() == payload
        if attempt == 1:
            assert (mounts["cache"] / "data" / "file.bin").is_file()
            assert (mounts["cache"] / "data" / "file.bin.cinfo").is_file()
            (tmp_path / "origin" / "data" / "file.bin").write_bytes(b"changed at the origin")
    # the second read came from the cache's disk: the origin's file had changed meanwhile
    assert (tmp_path / "read2").read_bytes() == payload
    assert KEY not in " ".join(str(p.args) for p in procs.procs), "the key is not on a command line"

    # the chart's own `helm test` script, against this cache (the Service name being this address)
    (t,) = objs[("Pod", "cache-test")]["spec"]["containers"]
    script = t["args"][0].replace("root://cache:", "root://127.0.0.1:").replace("/tmp/read", str(tmp_path / "t"))
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "DODAS_MACHINE": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"read {len(payload)} bytes of /data/file.bin through the cache" in r.stdout


def test_rendered_redirector_sends_clients_to_a_cache(helm_bin, tmp_path, procs):
    """Redirector mode: the redirector's xrootd and cmsd, and a cache server's
    xrootd and cmsd (which subscribes to the redirector), as rendered; a read at
    the redirector is sent to the cache, which reads from the origin. Pods have
    addresses of their own and these processes one: the redirector's xrootd port
    and the service names are the only things the test changes in the rendered
    configuration."""
    origin_port, payload = start_origin(procs, tmp_path)
    cache_port, cmsd_port, redirector_port = _free_port(), _free_port(), _free_port()
    objs = render(helm_bin, extra=("--set", "origin.host=127.0.0.1", "--set", f"origin.port={origin_port}",
                                   "--set", f"origin.sssKeytab={KEYTAB}", "--set", "redirector.enabled=true",
                                   "--set", f"ports.xrootd={cache_port}", "--set", f"ports.cmsd={cmsd_port}"))
    security = objs[("StatefulSet", "cache-server")]["spec"]["template"]["spec"]["securityContext"]
    procs.uid, procs.gid = security["runAsUser"], security["runAsGroup"]
    config = {k: v.replace(f"cache-redirector:{cmsd_port}", f"127.0.0.1:{cmsd_port}")
              for k, v in objs[("ConfigMap", "cache-config")]["data"].items()}
    config["redirector.cfg"] = config["redirector.cfg"].replace(f"xrd.port {cache_port} if exec xrootd",
                                                                f"xrd.port {redirector_port} if exec xrootd")
    start_pod(procs, objs, ("Deployment", "cache-redirector"), tmp_path, config)
    for port, log in ((redirector_port, "cache-redirector-xrootd"), (cmsd_port, "cache-redirector-cmsd")):
        _wait_port(port, procs.procs[-1], tmp_path / f"{log}.log")
    mounts = start_pod(procs, objs, ("StatefulSet", "cache-server"), tmp_path, config)
    _wait_port(cache_port, procs.procs[-2], tmp_path / "cache-server-xrootd.log")
    # the server's cmsd logs in to the redirector's; the redirector then sends clients to the cache
    deadline = time.monotonic() + 60
    while True:
        r = xrdcp(f"root://127.0.0.1:{redirector_port}//data/file.bin", tmp_path / "read")
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert r.returncode == 0, r.stderr + logs(tmp_path)
    assert (tmp_path / "read").read_bytes() == payload
    assert (mounts["cache"] / "data" / "file.bin").is_file(), "read through the cache server"
