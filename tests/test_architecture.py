"""Dependencies between dodas's packages go one way (docs/ARCHITECTURE.md):

    tosca -> model -> plan -> engine -> providers   (machines)
                                  \\-> configure   (Ansible)
    services -> engine;  cli -> services

The model knows nothing of how a plan is carried out (configure/, providers/,
engine/, services/, cli/); providers and configure do not know each other, and
`engine/` is the one place where they meet. Knowledge several stages share lives
in the model (model/kube.py) or in a neutral top-level module (helm.py,
paths.py, ...), which imports no stage that uses it.

Read from the source with `ast`, every import counts: at module level and inside
functions (the heavy imports are made there). Only imports under
`if TYPE_CHECKING:` are left out: a name used in annotations, never run.

No two modules import each other, directly or around a circle, even inside
packages a rule allows (`test_no_import_cycles`): a circle means neither
module can be understood, tested or moved without the other, and it is how a
rule ends up with two homes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "dodas"
STAGES = ("tosca", "model", "plan", "engine", "providers", "configure", "state", "services", "cli", "server",
          "client", "devissuer", "elastic", "inference")

#: package (or "<top>" for dodas/*.py) -> the packages its modules must not import
FORBIDDEN = {
    "tosca": {"model", "plan", "engine", "providers", "configure", "services", "cli", "server", "elastic"},
    # the model holds elasticity policies itself (model/elastic.py); dodas.elastic reads the model
    "model": {"configure", "providers", "engine", "services", "cli", "server", "elastic"},
    "plan": {"configure", "providers", "engine", "services", "cli", "server", "elastic"},
    "providers": {"configure", "engine", "services", "cli", "server"},
    "configure": {"providers", "engine", "services", "cli", "server"},
    "state": {"configure", "providers", "engine", "services", "cli", "server"},
    # engine/ is allowed both configure/ and providers/: it hands the machines the
    # providers made to the Ansible runs (engine.py); never the faces above it
    "engine": {"services", "cli", "server"},
    "services": {"cli", "server"},
    # the other face: HTTP, tokens and who-may-do-what; every operation through services/
    "server": {"engine", "providers", "configure", "cli"},
    # the face: parsing, rendering and questions; every operation through services/
    "cli": {"engine", "providers", "configure", "state"},
    "<top>": {"configure", "providers", "engine", "services", "cli", "server"},
    # the remote CLI's side of a server: HTTP and tokens only
    "client": {"tosca", "model", "plan", "engine", "providers", "configure", "state", "services", "server"},
    # a stand-alone issuer for trying the server out: it knows nothing of dodas
    "devissuer": {"tosca", "model", "plan", "engine", "providers", "configure", "state", "services", "cli",
                  "server", "client"},
    # a service dodas deploys (TFaaS-compatible inference): it knows nothing of dodas
    "inference": {"tosca", "model", "plan", "engine", "providers", "configure", "state", "services", "cli",
                  "server", "client", "devissuer", "elastic"},
    # elasticity (the policy, workload readers, decisions): reads tosca/ and model/; the
    # autoscaler in services/ uses it, never the reverse
    "elastic": {"plan", "engine", "providers", "configure", "services", "cli", "server", "client"},
}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else "<top>"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, imported dodas module) for every import the module at `path` runs
    (its text, or `source` read as if it were at `path`)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *([base] if base else [])])
            for a in node.names:  # `from dodas import helm` imports the module dodas.helm
                out.append((node.lineno, f"{base}.{a.name}" if (SRC.parent / base.replace(".", "/") / a.name)
                            .with_suffix(".py").exists() or (SRC.parent / base.replace(".", "/") / a.name).is_dir()
                            else base))
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return sorted({(line, m) for line, m in out if m == "dodas" or m.startswith("dodas.")})


def _target(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else "<top>"


def violations() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "__main__.py":  # `python -m dodas`: the command line's entry point
            continue
        pkg = _package(path)
        banned = FORBIDDEN.get(pkg, set())
        for line, module in imports(path):
            if _target(module) in banned:
                found.append(f"{path.relative_to(SRC.parent)}:{line}: {pkg} imports {module}")
    return found


def test_dependencies_go_one_way():
    assert violations() == []


def import_graph() -> dict[str, set[str]]:
    """dodas module -> the dodas modules it imports (as `imports` sees them)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        graph[_module_name(path)] = {m for _, m in imports(path)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import one another around a circle, as one
    such circle (a -> b -> ... -> a), found by Tarjan's strongly connected
    components (iteratively: no recursion limit to meet). Imports of names
    outside `graph` are left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root] & graph.keys())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt] & graph.keys()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph[node]:
                    groups.append(group)
    return [_circle(graph, g) for g in groups]


def _circle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """One circle through a group of mutually importing modules: the shortest way
    back to its first module (by name), found breadth-first."""
    start = min(group)
    came: dict[str, str] = {}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return [*reversed(path), start]
            if nxt not in came:
                came[nxt] = node
                todo.append(nxt)
    return [start, start]  # not reached: a group holds a circle


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "modules that import each other (move what both need to a module beneath them):\n" + \
        "\n".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("edges, expect", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
    ({"a": {"a"}}, [["a", "a"]]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b", "outside"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(edges, expect):
    """The check itself, on made-up imports: a circle of two, of three (with a
    module outside it that imports into it), a module importing itself; none
    where imports only go down."""
    assert cycles(edges) == expect


def test_the_cycle_finder_reads_the_real_imports():
    """The graph the cycle test walks is the real one: a module's function-level
    import is an edge (services/autoscale.py imports deploy inside a function)."""
    graph = import_graph()
    assert "dodas.services.deploy" in graph["dodas.services.autoscale"]
    assert "dodas.yamlsource" in graph["dodas.settings"]


def test_the_neutral_modules_import_nothing_above_them():
    """errors.py is beneath everything; yamlsource.py, the one YAML loader, needs
    only the errors it raises (its limits are handed in: it never reads settings)."""
    assert {m for _, m in imports(SRC / "errors.py")} == set()
    assert {m for _, m in imports(SRC / "yamlsource.py")} == {"dodas.errors"}


def test_every_package_has_a_rule():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(FORBIDDEN), f"packages without a rule: {sorted(packages - set(FORBIDDEN))}"


@pytest.mark.parametrize("source, expect", [
    ("from dodas.configure.kube import map_version\n", ["dodas.configure.kube"]),
    ("def f():\n    from dodas.configure import helm\n", ["dodas.configure.helm"]),
    ("import dodas.providers.base\n", ["dodas.providers.base"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from dodas.providers.base import Machine\n", []),
    ("from ..configure import runner\n", ["dodas.configure.runner"]),
])
def test_the_checker_sees_imports(source, expect):
    """The check itself: imports inside functions count, relative ones are
    resolved, type-only ones do not count."""
    assert [m for _, m in imports(SRC / "model" / "checks.py", source)] == expect


#: what the server's faces (the v1 API, the dashboard, IM's API) may import of
#: dodas beyond dodas.server: errors to answer and the dashboard's sessions (a
#: browser's login, not a deployment). Every operation, and every rule of a
#: shared server, goes through server/operations.py to services/ (tenancy.py
#: holds the rules): never the deployments' state itself.
FACE_ALLOWED = ("dodas.server", "dodas.errors", "dodas.state.web_sessions")


@pytest.mark.parametrize("face", ["routes.py", "web", "im"])
def test_the_server_faces_hold_no_deployment_logic(face):
    where = SRC / "server" / face
    files = [where] if where.is_file() else sorted(where.rglob("*.py"))
    assert files
    wrong = [f"{f.relative_to(SRC)}:{line}: imports {name}" for f in files for line, name in imports(f)
             if name != "dodas" and not name.startswith(FACE_ALLOWED)]
    assert not wrong, "a face calls server/operations.py, not services/ or state/ directly:\n" + "\n".join(wrong)


def test_the_server_reads_no_state_but_through_services():
    """No module of server/ (the faces, the glue, the workers, the metrics)
    touches the deployments' state, the queue or its owners: services/ does
    (tenancy.py the rules, served.py and requested.py the operations, jobs.py
    the work), so that a rule of a shared server has one home. The dashboard's
    login sessions are the one state of the server's own."""
    wrong = [f"{f.relative_to(SRC)}:{line}: imports {name}" for f in sorted((SRC / "server").rglob("*.py"))
             for line, name in imports(f) if _target(name) == "state" and name != "dodas.state.web_sessions"]
    assert not wrong, "server/ reaches state/ directly:\n" + "\n".join(wrong)


def test_the_engine_is_handed_its_configurator():
    """The engine runs operations through the configurator services/ hands it
    (engine/configurator.py), as it makes machines through the provider: it never
    builds the Ansible runner itself."""
    made = [f"{f.relative_to(SRC)}:{n.lineno}" for f in sorted((SRC / "engine").glob("*.py"))
            for n in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
            if (isinstance(n, ast.Name) and n.id == "AnsibleRunner")
            or (isinstance(n, ast.alias) and n.name.endswith("AnsibleRunner"))]
    assert not made, f"engine/ names AnsibleRunner: {made}"


#: what `dodas list`, `status` and `outputs` must not import: the engine, the plan and
#: tosca-parser (a read plans nothing), Ansible, the server and its web framework,
#: Alembic (the schema is checked by its version number) and SQLAlchemy's ORM. (Typer 0.29
#: imports Pydantic to coerce parameters: that cost stays, see docs/BENCHMARKS.md)
READ_ONLY_NEVER = ("dodas.engine", "dodas.plan", "dodas.tosca", "dodas.server", "dodas.providers", "toscaparser",
                   "ansible", "ansible_runner", "fastapi", "starlette", "alembic", "sqlalchemy.orm", "pydantic")
_IMPORTED = """
import json, sys
from dodas.cli import app
sys.argv = ["dodas", *sys.argv[1:]]
try:
    app.main()
except SystemExit as exc:
    code = exc.code
sys.stderr.write("\\nIMPORTED " + json.dumps({"code": code, "modules": sorted(sys.modules)}) + "\\n")
"""


def test_read_only_commands_import_nothing_of_the_pipeline(tmp_path, state_db):
    """`dodas list`, `status` and `outputs` of a deployment (made on the simulated
    provider) read the state and render it: each, in a fresh process, answers
    without importing what deploying needs. On SQLite not even SQLAlchemy: the
    standard library reads the file (state/reads.py)."""
    import json
    import subprocess
    import sys

    from support.livecluster import Dodas, compute_template

    d = Dodas(tmp_path / "home")
    state_db.env(d.env)
    (d.home / "config").mkdir(parents=True)
    (d.home / "config" / "providers.yaml").write_text("providers:\n  - {name: sim, type: simulated, rank: 1}\n")
    t = compute_template(tmp_path / "boxes.yaml", count=2, cpus=1, mem="1 GB", address_output="public_address")
    d.run("up", t, "--name", "boxes", "--provider", "sim", "--quiet")
    never = READ_ONLY_NEVER + (("sqlalchemy",) if state_db.kind == "sqlite" else ())
    for args in (["list"], ["list", "--json"], ["status", "boxes"], ["status", "boxes", "--json"],
                 ["outputs", "boxes"], ["outputs", "boxes", "addresses", "--raw"]):
        r = subprocess.run([sys.executable, "-c", _IMPORTED, *args], env=d.env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        report = json.loads(r.stderr.rsplit("\nIMPORTED ", 1)[1])
        assert report["code"] in (0, None), (args, r.stdout, r.stderr)
        assert "boxes" in r.stdout or "192.0.2." in r.stdout, (args, r.stdout)
        wrong = [m for m in report["modules"] if any(m == n or m.startswith(n + ".") for n in never)]
        assert not wrong, f"dodas {' '.join(args)} imported {wrong}"


def test_the_reads_status_names_are_the_engines():
    from dodas.engine.states import DeploymentStatus
    from dodas.services import read

    assert read.DELETE_COMPLETE == DeploymentStatus.DELETE_COMPLETE.value
