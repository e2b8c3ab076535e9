"""The wheel is what users install: it carries every file dodas reads from its own
directory, and it works without the source tree.

The rest of the suite imports dodas from src/ (an editable install), where a file the
package data leaves out goes unnoticed. Here the wheel is built from the repository's
files (as a release is) with bytecode beside them (as a used tree has), installed, not
editable, into a new virtual environment, and used from there: its CLI, the type
library, the migrations, the playbooks with their roles and module library, the charts
and the dashboard.

The new environment gets no copy of the dependencies (installing them again would take
minutes): a .pth file adds this environment's site-packages after its own, so the
libraries are shared but the only dodas it can import is the wheel's, which every
check asserts (and PYTHONPATH, which may name src/, is not passed on).
"""

from __future__ import annotations

import compileall
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: this environment's executables: ansible-playbook and helm come with the test extra
BIN = Path(sys.executable).parent
#: what setuptools says when the package data is declared wrongly
SETUPTOOLS_WARNING = re.compile(r"would be ignored|Setuptools\w*Warning|_Warning:")


@dataclass
class Built:
    wheel: Path
    log: str
    tracked: list[str]  # the package's files in git, relative to src/


@dataclass
class Installed:
    prefix: Path  # the virtual environment
    python: Path
    dodas: Path  # its console script
    home: Path  # DODAS_HOME of every command run here
    tracked: list[str]

    def env(self) -> dict[str, str]:
        """This session's environment without what could point Python at src/ or at
        another dodas state (PYTHONPATH, DODAS_*)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP") and not k.startswith("DODAS_")}
        env["DODAS_HOME"] = str(self.home)
        return env

    def run(self, *cmd: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(c) for c in cmd], env=self.env(), cwd=self.home, input=stdin,
                              capture_output=True, text=True)

    def python_json(self, code: str, data: object = None) -> object:
        """Run `code` with the installed dodas (stdin: `data` as JSON); what it prints, as JSON."""
        r = self.run(self.python, "-c", code, stdin=json.dumps(data))
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout)


def _tracked() -> list[str]:
    """The package's files as the repository holds them, relative to src/."""
    r = subprocess.run(["git", "ls-files", "-z", "src/dodas"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"git ls-files failed (the wheel is checked against it): {r.stderr}"
    files = sorted(p.removeprefix("src/") for p in r.stdout.split("\0") if p)
    assert files, "git ls-files src/dodas listed nothing"
    return files


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    work = tmp_path_factory.mktemp("wheel")
    project, dist = work / "project", work / "dist"
    tracked = _tracked()
    for rel in ["pyproject.toml", "README.md", *(f"src/{f}" for f in tracked)]:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, project / rel)
    # a tree dodas has run from holds __pycache__ directories (configure/ included):
    # they must not reach the wheel, nor make setuptools warn
    compileall.compile_dir(project / "src", quiet=1, force=True)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                        "--no-cache-dir", "-w", str(dist), str(project)], capture_output=True, text=True)
    log = r.stdout + r.stderr
    assert r.returncode == 0, f"building the wheel failed (setuptools>=77 comes with the test extra):\n{log}"
    wheels = list(dist.glob("dodas-*.whl"))
    assert len(wheels) == 1, log
    return Built(wheels[0], log, tracked)


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Installed:
    prefix = tmp_path_factory.mktemp("installed").resolve() / "venv"  # as dodas's paths, resolved
    venv.EnvBuilder(with_pip=False).create(prefix)
    python = prefix / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                        "--no-index", str(built.wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # the libraries of this environment, searched after the new one's own site-packages;
    # a plain path line: the .pth files in there (the editable dodas's among them) are not read
    shared = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    Path(purelib, "dodas-test-shared-libraries.pth").write_text("\n".join(shared) + "\n")
    home = prefix.parent / "home"
    home.mkdir()
    return Installed(prefix, python, prefix / "bin" / "dodas", home, built.tracked)


def test_the_wheel_holds_every_file_of_the_package_and_nothing_else(built):
    with zipfile.ZipFile(built.wheel) as z:
        shipped = {n for n in z.namelist() if not n.split("/")[0].endswith(".dist-info")}
    missing = sorted(set(built.tracked) - shipped)
    extra = sorted(shipped - set(built.tracked))
    assert not missing, f"in git but not in the wheel (declare them in [tool.setuptools.package-data]): {missing}"
    assert not extra, f"in the wheel but not in git: {extra}"
    assert "dodas/configure/charts/spark-jupyter/.helmignore" in shipped


def test_building_the_wheel_draws_no_setuptools_warning(built):
    warned = [line for line in built.log.splitlines() if SETUPTOOLS_WARNING.search(line)]
    assert not warned, "\n".join(warned)


def test_what_runs_is_the_installed_wheel_with_all_its_files(installed):
    found = installed.python_json(
        "import json, sys, importlib.resources as r, dodas\n"
        "root = r.files('dodas')\n"
        "missing = [f for f in json.load(sys.stdin) if not root.joinpath(*f.split('/')[1:]).is_file()]\n"
        "print(json.dumps({'file': dodas.__file__, 'missing': missing}))\n", installed.tracked)
    here = Path(found["file"]).resolve()
    assert here.is_relative_to(installed.prefix), f"dodas was imported from {here}, not the wheel"
    assert not here.is_relative_to(ROOT), here
    assert found["missing"] == [], "installed without these files"


def test_the_cli_runs_from_the_wheel(installed):
    r = installed.run(installed.dodas, "--help")
    assert r.returncode == 0 and "validate" in r.stdout, r.stdout + r.stderr
    r = installed.run(installed.dodas, "types")  # the type library, read from the installed package
    assert r.returncode == 0 and "tosca.nodes.DODAS.HelmInstall.Spark" in r.stdout, r.stdout + r.stderr
    # the server's catalogue is the installed package's templates, and each validates from there
    catalogue = Path(str(installed.python_json(
        "import json; from dodas.server.config import default_catalogue; print(json.dumps(str(default_catalogue())))")))
    assert catalogue.is_relative_to(installed.prefix), catalogue
    shipped = sorted(p.name for p in catalogue.glob("*.yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "templates").glob("*.yaml")), shipped
    r = installed.run(installed.dodas, "validate", catalogue / "spark-jupyter.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_installed_migrations_make_the_state_database(installed):
    r = installed.run(installed.dodas, "list", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout) == []  # a read makes no database
    r = installed.run(installed.dodas, "forget", "nothing")  # opens the state to write: made and migrated
    assert r.returncode == 4, r.stdout + r.stderr
    heads = [m.group(1) for f in installed.tracked if f.startswith("dodas/state/migrations/versions/")
             for m in [re.search(r'^revision = "(\w+)"', (ROOT / "src" / f).read_text(), re.M)] if m]
    dbs = list(installed.home.rglob("state.db"))
    assert len(dbs) == 1, dbs
    with sqlite3.connect(dbs[0]) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(max(heads),)]


def test_the_installed_playbooks_roles_and_modules_pass_ansible(installed, tmp_path):
    configure = Path(str(installed.python_json(
        "import json; from dodas.configure.runner import CONFIGURE_DIR; print(json.dumps(str(CONFIGURE_DIR)))")))
    assert configure.is_relative_to(installed.prefix), configure
    playbooks = sorted((configure / "playbooks").rglob("*.yml"))
    assert len(playbooks) > 10, playbooks
    # one ansible-playbook for them all: a playbook importing every one
    everything = tmp_path / "everything.yml"
    everything.write_text("".join(f"- ansible.builtin.import_playbook: {json.dumps(str(p))}\n" for p in playbooks))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n")
    env = {**installed.env(), "ANSIBLE_LIBRARY": str(configure / "library"),
           "ANSIBLE_ROLES_PATH": str(configure / "roles"), "ANSIBLE_FILTER_PLUGINS": str(configure / "filter_plugins"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    r = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory), "-e",
                        "dodas_target=all", str(everything)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_installed_charts_pass_helm_lint(installed):
    charts = Path(str(installed.python_json(
        "import json; from dodas.helm import CHARTS; print(json.dumps(str(CHARTS)))")))
    assert charts.is_relative_to(installed.prefix), charts
    assert (charts / "spark-jupyter" / ".helmignore").is_file()
    names = sorted(p.parent.name for p in charts.glob("*/Chart.yaml"))
    assert names == sorted({f.split("/")[3] for f in installed.tracked if f.startswith("dodas/configure/charts/")})
    for name in names:
        r = installed.run(BIN / "helm", "lint", "--strict", charts / name)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"


def test_the_dashboard_serves_its_pages_and_static_files(installed):
    pages = installed.python_json("""
import asyncio, json
import httpx
from dodas.server.app import create_app
from dodas.server.config import ServerConfig

async def main():
    app = create_app(ServerConfig(), start_workers=False)  # no issuer: this machine's user, on loopback
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                 follow_redirects=True) as c:  # through the sign-in, keeping its cookie
        got = {}
        for url in ("/web/static/dashboard.css", "/web/static/dashboard.js", "/web/static/icons/spark.svg",
                    "/web/deployments", "/web/catalogue", "/web/signed-out"):
            r = await c.get(url)
            got[url] = [r.status_code, r.url.path, r.text[:200]]
        return got

print(json.dumps(asyncio.run(main())))
""")
    assert isinstance(pages, dict)
    for url, (status, landed, start) in pages.items():
        assert (status, landed) == (200, url), f"{url}: {status} at {landed}: {start}"
    assert pages["/web/deployments"][2].lower().startswith("<!doctype html>")
    assert "<svg" in pages["/web/static/icons/spark.svg"][2]
