"""dodas's HTCondor chart, its rendered configuration run by HTCondor's real daemons
(as tests/test_xcache_chart.py runs the XCache chart's with real xrootd): the
central manager, schedd and startd pods of `helm template` with the values dodas
writes, each container as its pod spec mounts it (tests/support/condor_pods.py:
the Debian 13 root's HTCondor 23.9 standing in for the images). The startd's
init container signs its scoped token with the command the chart gives it; the
startd then runs with that token alone (no key, and FS cannot reach across pods):
it joins the pool, is refused what its scopes do not grant, and runs a job
submitted in the schedd's pod, whose output comes back."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from support.charts import release_values, render_chart
from support.condor_pods import Pod, free_addresses
from support.htcondor_pool import need_htcondor
from support.paths import TEMPLATES
from support.waiting import wait_until

from dodas.configure import helm
from dodas.providers import htcondor_root

CHART = helm.CHARTS / "htcondor"
TEMPLATE = TEMPLATES / "htcondor-k8s.yaml"
#: hang guards only
TIMEOUT_S = 600.0
pytestmark = pytest.mark.timeout(1800)


def condor(pod: Pod, container: str, *argv: str) -> str:
    r = pod.run(container, *argv)
    assert r.returncode == 0, (argv, r.stdout, r.stderr)
    return r.stdout


def test_the_charts_pods_run_a_job_with_the_startd_on_its_scoped_token(helm_bin, tmp_path, monkeypatch):
    need_htcondor(monkeypatch)
    root = htcondor_root.prepared()
    if root is None:
        pytest.skip("the chart's pods run here from the Debian 13 root (`dodas htcondor-root`)")
    files, _ctx, _inst = release_values(tmp_path, TEMPLATE, "htcondor", ["execute_nodes=1"], deployment="batch")
    objs = render_chart(helm_bin, CHART, "htcondor", "batch", tuple(files))
    cm_ip, schedd_ip, startd_ip = free_addresses(3)
    hosts = {"htcondor-cm.batch.svc": cm_ip}   # the Service's name, as the cluster's DNS answers it
    base = Path(tmp_path / "pods")
    pods = {name: Pod(base, root, objs, f"htcondor-{name}", ip, hosts)
            for name, ip in (("cm", cm_ip), ("schedd", schedd_ip), ("startd", startd_ip))}
    try:
        pods["cm"].start("central-manager")
        pods["schedd"].start("schedd")
        # the startd's pod: its init container signs the scoped token into the shared emptyDir
        startd = pods["startd"]
        init = startd.run("token")
        assert init.returncode == 0, init.stdout + init.stderr
        token = startd.volumes["tokens"] / "dodas-pool"
        assert token.stat().st_mode & 0o077 == 0 and token.read_text().startswith("eyJ")
        mounts = {m["mountPath"] for m in startd.container("startd")["volumeMounts"]}
        assert "/etc/condor/passwords.d" not in mounts, "the startd's container never has the key"
        startd.start("startd")

        # the pool forms: the schedd and the startd in the collector
        def formed() -> bool:
            found = [pods["schedd"].run("schedd", "condor_status", what, "-af", "Name") for what in ("-startd",
                                                                                                  "-schedd")]
            return all(r.returncode == 0 and len(r.stdout.split()) == 1 for r in found)
        try:
            wait_until(formed, "the pool formed", TIMEOUT_S, every=1.0)
        except AssertionError:
            raise AssertionError("\n".join(p.logs() for p in pods.values())) from None
        # the startd authenticates with its token, which grants what an execute node needs and nothing more
        r = startd.run("startd", "condor_ping", "-type", "collector", "-table", "ADVERTISE_STARTD", "ADMINISTRATOR",
                       "DAEMON")
        table = r.stdout
        assert re.search(r"ADVERTISE_STARTD\s.*IDTOKENS.*ALLOW", table), table
        # (the token's scopes leave the other levels to no method at all: the collector refuses them)
        for level in ("ADMINISTRATOR", "DAEMON"):
            assert re.search(rf"{level}\s+FAIL\s", table) and not re.search(rf"{level}\s.*ALLOW", table), table
        assert re.search(r"ALLOW\s+condor@htcondor\.batch", table), table

        # a job submitted in the schedd's pod runs on the startd and returns its output
        job = pods["schedd"].path("schedd", "/tmp/job")
        job.mkdir(mode=0o777)
        job.chmod(0o777)
        (job / "job.sub").write_text(
            "executable = /bin/sh\narguments = \"-c 'echo ran in $_CONDOR_SLOT'\"\ntransfer_executable = false\n"
            "should_transfer_files = YES\noutput = out\nerror = err\nlog = log\nrequest_cpus = 1\n"
            "request_memory = 32\nqueue\n")
        # a user of the submit pod (not root, whom a schedd does not take jobs from)
        out = condor(pods["schedd"], "schedd", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                     "sh", "-c", "cd /tmp/job && condor_submit -terse job.sub")
        cluster = out.split(".")[0].strip()
        finished = lambda: condor(pods["schedd"], "schedd", "condor_history", "-af", "ExitCode",  # noqa: E731
                                  "LastRemoteHost", "-constraint", f"ClusterId == {cluster}").split()
        try:
            history = wait_until(finished, f"job {cluster}.0 done", TIMEOUT_S, every=1.0)
        except AssertionError:
            raise AssertionError("\n".join(p.logs() for p in pods.values())) from None
        assert history[0] == "0", history
        # run by the startd's starter (the slot it names), its output transferred back to the schedd's pod
        assert re.fullmatch(r"ran in slot1_\d+\n", (job / "out").read_text()), (job / "err").read_text()
        assert re.fullmatch(r"slot1_\d+@\S+", history[1]), history
    finally:
        for pod in pods.values():
            pod.stop()
        shutil.rmtree(base, ignore_errors=True)
