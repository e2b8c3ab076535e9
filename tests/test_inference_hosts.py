"""The inference service (templates/tfaas.yaml) on machines dodas did not start
itself: a real OpenSSH server in a network namespace (tests/support/netns.py, sshd.py) stands for
an SSH host or a cloud VM. Its `python` fact names this machine's environment (the
namespace shares this machine's files), which has the ml extra, so the
inference_runtime role uses it; its other branch (python3-venv from the
distribution, the ml extra's libraries from PyPI into /opt/dodas/inference) needs
the internet and root on a real VM: here it is linted (test_playbooks.py), its
list of libraries checked against pyproject.toml, and its copy of dodas's
inference package run in a bare virtual environment."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from support.inference import LABELS, SAMPLE, upload_form
from support.livecluster import Dodas, environ_of, kill_leftovers, processes_of
from support.netns import make_lab, need_netns
from support.paths import ROOT
from support.sshd import Sshd, client_key, need_openssh

from dodas.configure.runner import CONFIGURE_DIR

WORKDIR = Path("/var/tmp/dodas")
ROLE = CONFIGURE_DIR / "roles" / "inference_runtime"
INFERENCE = ROOT / "src" / "dodas" / "inference"


def _requirements(lines: list[str]) -> list[str]:
    """Requirement lines as packaging writes them (spaces and quotes the same)."""
    from packaging.requirements import Requirement

    return [str(Requirement(ln)) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()


def _extra(project: dict, name: str) -> list[str]:
    """An extra's requirement lines, with the extras of dodas it names (dodas[api]) spelt out."""
    from packaging.requirements import Requirement

    lines: list[str] = []
    for line in project["optional-dependencies"][name]:
        req = Requirement(line)
        if req.name == project["name"]:
            for extra in sorted(req.extras):
                lines += _extra(project, extra)
        else:
            lines.append(line)
    return lines


def test_the_roles_libraries_follow_pyproject():
    """What the role pip-installs is taken from pyproject.toml, versions included (the
    ml extra, and psutil, a dependency of dodas itself), and covers every library the
    inference package imports, directly or as a dependency of one it names (starlette
    comes with fastapi, keras with TensorFlow: as this environment's metadata says)."""
    import ast
    from importlib import metadata

    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement as requirement
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(_requirements(_extra(project, "ml") + project["dependencies"]))
    ours = _requirements((ROLE / "files" / "requirements.txt").read_text().splitlines())
    assert [r for r in ours if r not in declared] == [], "the role's list differs from pyproject.toml"
    assert "psutil>=5.9" in ours and any(r.startswith("tensorflow-cpu") for r in ours)
    # what those requirements bring here (the markers of this machine), dependencies included
    todo = [requirement(r) for r in ours]
    brought: set[str] = set()
    while todo:
        req = todo.pop()
        if (req.marker and not req.marker.evaluate({"extra": ""})) or _name(req.name) in brought:
            continue
        brought.add(_name(req.name))
        try:
            todo += [requirement(r) for r in metadata.requires(req.name) or []]
        except metadata.PackageNotFoundError:
            pass
    imported = set()
    for p in INFERENCE.glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    imported -= set(sys.stdlib_module_names) | {"__future__"}
    assert imported >= {"fastapi", "numpy", "psutil", "onnxruntime", "tensorflow"}, imported
    by_module = metadata.packages_distributions()
    missing = {m for m in imported if not {_name(d) for d in by_module.get(m, [m])} & brought}
    assert missing == set(), f"the inference package imports {missing}: not in the role's list"


def test_the_inference_package_is_shipped_whole_and_runs_alone(tmp_path):
    """The role's package.yml copies dodas/__init__.py and dodas/inference/*.py into a
    virtual environment: in one that has nothing else (no dodas, no libraries) the
    service's command line answers and its standard-library modules import; a
    module the environment has from an older dodas is removed; a second run
    changes nothing."""
    # the role ships modules only: the package must have nothing else
    assert {p.name for p in INFERENCE.iterdir() if p.name != "__pycache__" and p.suffix != ".py"} == set()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    stale = Path(purelib) / "dodas" / "inference" / "old_module.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    pb = tmp_path / "ship.yml"
    pb.write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - ansible.builtin.include_role:
                name: inference_runtime
                tasks_from: package
              vars:
                inference_runtime_venv: {venv}
                inference_runtime_become: false
        """))
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    h1: {ansible_connection: local, "
                   f"ansible_python_interpreter: {sys.executable}}}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(ANSIBLE_ROLES_PATH=str(CONFIGURE_DIR / "roles"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_NOCOLOR="1")
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    for run in (1, 2):
        r = subprocess.run([playbook, "-i", str(inv), str(pb)], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        changed = int(re.search(r"changed=(\d+)", r.stdout).group(1))
        assert (changed > 0) if run == 1 else (changed == 0), r.stdout
    assert not stale.exists()
    shipped = Path(purelib) / "dodas"
    assert sorted(p.name for p in (shipped / "inference").glob("*.py")) == sorted(p.name
                                                                               for p in INFERENCE.glob("*.py"))
    for p in INFERENCE.glob("*.py"):
        assert (shipped / "inference" / p.name).read_bytes() == p.read_bytes()
    assert (shipped / "__init__.py").read_bytes() == (ROOT / "src" / "dodas" / "__init__.py").read_bytes()
    r = subprocess.run([py, "-m", "dodas.inference", "--help"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "--token-file" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([py, "-c", "import dodas, dodas.inference.auth, dodas.inference.bundle, dodas.inference.params;"
                        "print(dodas.__file__)"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == str(shipped / "__init__.py"), r.stdout + r.stderr
    # the role's probe finds the package there but not the libraries: on the local
    # provider (which never installs) that is an error naming them and the extra
    probe = tmp_path / "probe.yml"
    probe.write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          roles:
            - role: inference_runtime
              vars:
                dodas_facts: {{local: true, python: {py}}}
        """))
    r = subprocess.run([playbook, "-i", str(inv), str(probe)], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "lacks fastapi uvicorn numpy psutil onnxruntime tensorflow python-multipart" in r.stdout, r.stdout
    assert "pip install 'dodas[ml]'" in r.stdout, r.stdout


@pytest.fixture
def host(tmp_path):
    """One host on its own network namespace, reached only through its veth, with sshd."""
    need_openssh()
    need_netns()
    lab = make_lab(0)
    server = None
    try:
        server = Sshd(tmp_path, "inference", [(lab.public_address, 22)], lab.public_ns)
        yield {"lab": lab, "key": str(client_key(tmp_path))}
    finally:
        if server:
            server.stop()
        lab.remove()


def test_tfaas_template_on_an_ssh_host(host, trained, tmp_path):
    lab = host["lab"]
    d = Dodas(tmp_path / "home")
    cfg = d.home / "config" / "providers.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(yaml.safe_dump({"providers": [{"name": "lab", "type": "ssh", "rank": 1, "hosts": [
        {"address": lab.public_address, "user": "root", "key": host["key"], "num_cpus": 1, "mem_mib": 2048,
         "python": sys.executable}]}]}))
    dep_id = None
    try:
        d.run("up", str(ROOT / "templates" / "tfaas.yaml"), "--name", "tfaas", "--max-providers", "1")
        st = d.json("status", "tfaas")
        dep_id = st["id"]
        assert st["status"] == "CREATE_COMPLETE" and st["provider"] == "lab", st
        outs = d.json("outputs", "tfaas", "--show-secrets")
        url, token = outs["url"]["value"], outs["token"]["value"]
        assert url == f"http://{lab.public_address}:8083"
        assert len(token) >= 32
        auth = {"Authorization": f"Bearer {token}"}

        # one process on the host, run by the host's Python; the token only in a 0600 file
        procs = processes_of(WORKDIR / dep_id)
        assert len(procs) == 1, procs
        pid, cmd = next(iter(procs.items()))
        assert cmd.split()[:3] == [sys.executable, "-m", "dodas.inference"], cmd
        assert token not in cmd and not any(token in v for v in environ_of(pid).values())
        token_files = list((WORKDIR / dep_id).rglob("inference/token"))
        assert len(token_files) == 1 and stat.S_IMODE(token_files[0].stat().st_mode) == 0o600

        # a model uploaded and asked for a prediction from here, through the host's network
        r = upload_form(url, "tiny", trained["dir"] / "model.onnx", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["format"] == "onnx"
        ask = {"keys": ["a", "b", "c", "d"], "values": SAMPLE, "model": "tiny"}
        r = httpx.post(url + "/json", json=ask, headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        assert np.allclose(r.json(), trained["expected"], atol=1e-5), (r.json(), trained["expected"])
        r = httpx.post(url + "/json", json=ask, headers=auth, params={"labels": "true"}, timeout=60)
        assert [c["label"] for c in r.json()] == LABELS
        # without the token, or with another, nothing
        assert httpx.post(url + "/json", json=ask, timeout=60).status_code == 401
        assert httpx.post(url + "/json", json=ask, headers={"Authorization": "Bearer " + "x" * 43},
                          timeout=60).status_code == 401
        assert upload_form(url, "intruder", trained["dir"] / "model.onnx", headers={}).status_code == 401
        assert httpx.get(url + "/models", timeout=60).status_code == 401
        assert [m["name"] for m in httpx.get(url + "/models", headers=auth, timeout=60).json()] == ["tiny"]

        # `up` again: the same token, one service, the model kept. (Whether it reconfigures
        # depends on the bundled roles' digest, which others' edits of this tree change.)
        d.run("up", str(ROOT / "templates" / "tfaas.yaml"), "--name", "tfaas")
        assert d.json("outputs", "tfaas", "--show-secrets")["token"]["value"] == token
        assert len(processes_of(WORKDIR / dep_id)) == 1
        r = httpx.post(url + "/json", json=ask, headers=auth, timeout=60)
        assert r.status_code == 200 and np.allclose(r.json(), trained["expected"], atol=1e-5), r.text

        d.run("destroy", "tfaas", "--yes")
        assert processes_of(WORKDIR / dep_id) == {}
        assert not (WORKDIR / dep_id).exists() or not any((WORKDIR / dep_id).iterdir())  # the instance's files gone
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/status", timeout=5)
    finally:
        if dep_id:
            kill_leftovers(WORKDIR / dep_id)
            if (WORKDIR / dep_id).is_dir() and not any((WORKDIR / dep_id).iterdir()):
                (WORKDIR / dep_id).rmdir()  # the provider leaves the deployment's empty directory
