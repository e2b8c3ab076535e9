"""Safe by default: a careless or hostile template, inputs file or `-i` value gets a
located error, never a hang, a memory blow-up, a look at other files, a playbook
from elsewhere, or its own secrets echoed back.

Cases that hung or ate memory before they were refused run in a child process with
an address-space limit and a CPU-time limit (support/limited.py): a busy machine
slows the child down but cannot make it fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from pathlib import Path

import pytest
from support.limited import run_limited
from support.located import located
from support.paths import ROOT, SPARK, TEMPLATES

from dodas import services

#: written into files that dodas must never quote
SECRET = "Zq9-SECRET-LINE-7f3"


def line_of(path: Path, needle: str) -> int:
    return next(n for n, ln in enumerate(path.read_text().splitlines(), 1) if needle in ln)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def boxes(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "t.yaml", "tosca_definitions_version: tosca_simple_yaml_1_0\n"
                 "topology_template:\n  node_templates:\n" + textwrap.indent(textwrap.dedent(body), "    "))


# -- 1. instance counts ----------------------------------------------------------
def test_a_billion_workers_from_an_input_are_refused_at_the_count():
    r = run_limited("validate", str(SPARK), "-i", "number_of_workers=1000000000")
    (file, line, col, msg), = located(r.returncode, r.stdout, r.stderr, SPARK)
    assert (line, col) == (line_of(SPARK, "count: { get_input: number_of_workers }"), 32)
    assert 'node "worker_hosts": count 1000000000 (from input "number_of_workers")' in msg
    assert "limit of 1000 instances per node" in msg and "DODAS_MAX_INSTANCES_PER_NODE" in msg


def test_a_count_in_the_template_over_the_limit_is_located(cli, tmp_path):
    t = boxes(tmp_path, """\
        box:
          type: tosca.nodes.indigo.Compute
          capabilities:
            scalable: {properties: {count: 1001}}
        """)
    r = cli("validate", str(t))
    (_f, line, col, msg), = located(r.code, r.out, r.err, t)
    assert (line, col) == (line_of(t, "count: 1001"), 40)
    assert msg.startswith('node "box": count 1001 is more than the limit of 1000') and "input" not in msg


def test_the_deployment_total_counts_software_once_per_host_instance(cli, tmp_path):
    """800 + 800 machines are within the limit; with what they host, 3200 instances are not."""
    t = boxes(tmp_path, """\
        a:
          type: tosca.nodes.indigo.Compute
          capabilities: {scalable: {properties: {count: 800}}}
        b:
          type: tosca.nodes.indigo.Compute
          capabilities: {scalable: {properties: {count: 800}}}
        sa: {type: tosca.nodes.SoftwareComponent, requirements: [{host: a}]}
        sb: {type: tosca.nodes.SoftwareComponent, requirements: [{host: b}]}
        """)
    r = cli("validate", str(t))
    (_f, line, _c, msg), = located(r.code, r.out, r.err, t)
    assert line == line_of(t, "count: 800")
    assert "the deployment would have 3200 instances, more than the limit of 2500" in msg
    assert "DODAS_MAX_INSTANCES" in msg and 'node "a" 800, node "b" 800' in msg
    t.write_text(t.read_text().replace("    sb: ", "    # sb: "))
    r = cli("validate", str(t))
    assert r.code == 0 and "2400 instances" in r.out, r.err


def test_limits_come_from_config_yaml_and_the_environment_wins(cli, dodas_home, monkeypatch):
    write(dodas_home / "config" / "config.yaml", """\
        limits:
          max_instances_per_node: 3
          max_instances: 20
        """)
    r = cli("validate", str(SPARK), "-i", "number_of_workers=4")
    (_f, _l, _c, msg), = located(r.code, r.out, r.err, SPARK)
    assert "limit of 3 instances per node" in msg and str(dodas_home / "config" / "config.yaml") in msg
    assert cli("validate", str(SPARK), "-i", "number_of_workers=3").code == 0
    monkeypatch.setenv("DODAS_MAX_INSTANCES_PER_NODE", "4")
    assert cli("validate", str(SPARK), "-i", "number_of_workers=4").code == 0
    monkeypatch.setenv("DODAS_MAX_INSTANCES", "5")
    r = cli("validate", str(SPARK), "-i", "number_of_workers=3")
    (_f, _l, _c, msg), = located(r.code, r.out, r.err, SPARK)
    assert "more than the limit of 5" in msg and 'node "worker_hosts" 3 (from input "number_of_workers")' in msg


def test_a_malformed_config_file_is_a_located_error(cli, dodas_home):
    cfg = write(dodas_home / "config" / "config.yaml", """\
        limits:
          max_instances: lots
          max_nodes: 3
        """)
    r = cli("validate", str(SPARK))
    errors = located(r.code, r.out, r.err, cfg)
    assert [(e[1], e[2]) for e in errors] == [(2, 18), (3, 3)]
    assert "limits.max_instances must be a whole number >= 1" in errors[0][3]
    assert 'unknown limit "max_nodes"' in errors[1][3]
    cfg.write_text("limits: [1, 2\n")
    r = cli("validate", str(SPARK))
    (_f, line, _c, msg), = located(r.code, r.out, r.err, cfg)
    assert line == 2 and "invalid YAML" in msg


def test_a_malformed_limit_in_the_environment_is_refused(cli, monkeypatch):
    monkeypatch.setenv("DODAS_MAX_INSTANCES", "many")
    r = cli("validate", str(SPARK))
    assert r.code == 1 and "DODAS_MAX_INSTANCES must be a whole number" in r.err and "Traceback" not in r.err


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_benchmarks_largest_templates_fit_the_default_limits(tmp_path):
    """bench_engine deploys 1000 instances of one node; bench_plan plans 1000 hosts with a worker each."""
    p = services.plan(_bench("bench_engine").template(tmp_path, 1000))
    assert len(p.instances) == 1000
    t = tmp_path / "plan1000.yaml"
    t.write_text(_bench("bench_plan").make_template(1000))
    assert len(services.plan(str(t), offline=True).instances) == 2000


# -- 2. YAML limits -----------------------------------------------------------------
LAUGHS = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
HOSTILE_YAML = {
    "recursive alias": ("description: &r [*r]\n", 2, "recursive alias"),
    "recursive merge key": ("metadata: &m {x: {<<: *m}}\n", 2, "recursive alias"),
    "billion laughs": ("metadata:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                       + textwrap.indent(LAUGHS, "  "), 8, "more than 500000 values"),
    "deep lists": ("description: " + "[" * 990 + "]" * 990 + "\n", 2, "nesting deeper than 100 levels"),
    "deep mappings": ("metadata:\n" + "".join(" " * (2 + i) + f"k{i}:\n" for i in range(990)) + "  " * 0
                      + " " * 992 + "x\n", 102, "nesting deeper than 100 levels"),
    "deep alias": ("metadata:\n  a: &a " + "[" * 60 + "]" * 60 + "\n  b: " + "[" * 60 + "*a" + "]" * 60 + "\n",
                   4, "expands to nesting deeper than 100 levels"),
    "integer of 5000 digits": ("description: " + "7" * 5000 + "\n", 2, "this value cannot be read"),
    "month 13": ("description: 2024-13-01\n", 2, "this value cannot be read"),
}


@pytest.mark.parametrize("name", list(HOSTILE_YAML))
def test_hostile_yaml_in_a_template_is_a_located_error(tmp_path, name):
    body, line, words = HOSTILE_YAML[name]
    t = tmp_path / "t.yaml"
    t.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\n" + body)
    r = run_limited("validate", str(t))
    (_f, got_line, _c, msg), = located(r.returncode, r.stdout, r.stderr, t)
    assert got_line == line and words in msg, msg


def test_yaml_limits_hold_for_inputs_files_and_command_line_values(tmp_path):
    f = tmp_path / "in.yaml"
    f.write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + LAUGHS + "number_of_workers: 2\n")
    r = run_limited("validate", str(SPARK), "--inputs", str(f))
    (_f, line, _c, msg), = located(r.returncode, r.stdout, r.stderr, f)
    assert line == 6 and "more than 500000 values" in msg
    r = run_limited("validate", str(SPARK), "-i", "worker_cpus=2", "-i", "number_of_workers=&r [*r]")
    (_f, line, col, msg), = located(r.returncode, r.stdout, r.stderr, "<command line>")
    assert (line, col) == (1, 2) and 'input "number_of_workers" cannot be read: recursive alias' in msg


def test_files_over_the_size_limit_are_refused_unread(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DODAS_MAX_FILE_BYTES", "5000")
    big = tmp_path / "big.yaml"
    big.write_text(SPARK.read_text() + "#" * 5000 + "\n")
    r = cli("validate", str(big))
    (_f, line, col, msg), = located(r.code, r.out, r.err, big)
    assert (line, col) == (1, 1) and msg == ("template is larger than 5000 bytes (limits.max_file_bytes in "
                                             f"{Path(os.environ['DODAS_HOME']) / 'config' / 'config.yaml'}, "
                                             "or DODAS_MAX_FILE_BYTES)")
    f = tmp_path / "in.yaml"
    f.write_text("number_of_workers: 2\n" + "#" * 5000 + "\n")
    r = cli("validate", str(SPARK), "--inputs", str(f))
    (_f, _l, _c, msg), = located(r.code, r.out, r.err, f)
    assert msg.startswith("inputs file is larger than 5000 bytes")
    assert cli("validate", str(SPARK)).code == 0  # 4 kB: within


def test_a_file_name_with_a_nul_character_is_a_located_error(tmp_path):
    """Not from the command line (an argument cannot hold one), but from a caller of the services."""
    from dodas.errors import TemplateError

    with pytest.raises(TemplateError, match="cannot read inputs file: a NUL character in the name"):
        services.plan(str(SPARK), inputs_file=str(tmp_path / "in\0.yaml"))


def test_a_file_that_never_ends_is_refused():
    r = run_limited("validate", "/dev/zero")
    (_f, _l, _c, msg), = located(r.returncode, r.stdout, r.stderr, "/dev/zero")
    assert msg.startswith("template is larger than")


def test_up_of_an_existing_deployment_reads_its_new_template_within_the_limit(tmp_path):
    """`up` on a deployment that exists first looks at the template's inputs: that
    read is bounded too."""
    import hashlib

    from dodas.state.store import Store

    text = SPARK.read_text()
    Store().create("zero", "local", str(SPARK), text, hashlib.sha256(text.encode()).hexdigest(), {},
                   "CREATE_COMPLETE")
    r = run_limited("up", "/dev/zero", "--name", "zero", "-q")
    (_f, _l, _c, msg), = located(r.returncode, r.stdout, r.stderr, "/dev/zero")
    assert msg.startswith("template is larger than")


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.yaml")), ids=lambda p: p.name)
def test_the_real_templates_still_load(template):
    pairs = ["server_image=ost://cloud.example.org/img"] if template.name == "spark-k8s.yaml" else []
    assert services.plan(str(template), pairs, offline=True).instances


def test_anchors_and_merge_keys_still_work(tmp_path):
    t = boxes(tmp_path, """\
        a:
          type: tosca.nodes.indigo.Compute
          capabilities:
            host: {properties: &size {num_cpus: 2, mem_size: 2 GB}}
        b:
          type: tosca.nodes.indigo.Compute
          capabilities:
            host: {properties: {<<: *size, num_cpus: 4}}
        """)
    nodes = services.plan(str(t)).model.nodes
    assert (nodes["a"].compute.num_cpus, nodes["a"].compute.mem_mib) == (2, 1907)
    assert (nodes["b"].compute.num_cpus, nodes["b"].compute.mem_mib) == (4, 1907)


# -- 3. imports never quote other files -----------------------------------------------
NOT_TOSCA = {
    "passwd lines": (f"root:{SECRET}:0:0:root:/root:/bin/bash\nbin:x:1:1::/:{SECRET}\n", "not a YAML mapping"),
    "mapping": (f"{SECRET}_password: {SECRET}\n", "it has no tosca_definitions_version"),
    "list": (f"- {SECRET}\n- {SECRET}\n", "not a YAML mapping"),
    "syntax error": (f"a: 1\nb: [{SECRET}, \n", "invalid YAML at line"),
    "undefined alias": (f"a: *{SECRET}\n", "invalid YAML at line 1"),
    "duplicate key": (f"{SECRET}: 1\n{SECRET}: 2\n", "a duplicate key at line 2"),
    "strange version": (f"tosca_definitions_version: {SECRET}\n", "tosca_definitions_version is not one of"),
    "strange section": (f"tosca_definitions_version: tosca_simple_yaml_1_0\n'{SECRET} x': 1\n",
                        "a top-level section that TOSCA does not define"),
    "tab": (f"a:\n\t{SECRET}: 1\n", "invalid YAML at line 2"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\xff\xfe" + SECRET.encode() + b"\x00\x00", "it is not UTF-8 text"),
    "alias bomb": ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + LAUGHS + f"{SECRET}: 1\n", "more than 500000 values"),
    "huge": (f"# {SECRET}\n" * 500_000, "it is larger than 4194304 bytes"),
}


def import_template(tmp_path: Path, ref: str) -> Path:
    return write(tmp_path / "tpl" / "t.yaml", f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        imports:
          - {ref}
        topology_template:
          node_templates:
            box: {{type: tosca.nodes.indigo.Compute}}
        """)


@pytest.mark.parametrize("name", list(NOT_TOSCA))
def test_an_import_that_is_not_tosca_is_named_never_quoted(cli, tmp_path, name):
    content, reason = NOT_TOSCA[name]
    other = tmp_path / "elsewhere" / "file"
    other.parent.mkdir()
    other.write_bytes(content if isinstance(content, bytes) else content.encode())
    t = import_template(tmp_path, str(other))
    r = cli("validate", str(t))
    (_f, line, col, msg), = located(r.code, r.out, r.err, t)
    assert (line, col) == (3, 5)
    assert msg.startswith(f'imported file "{other}" is not a TOSCA document: ') and reason in msg, msg
    assert SECRET not in r.out + r.err


def test_importing_etc_shadow_shows_none_of_it(cli, tmp_path):
    if not os.access("/etc/shadow", os.R_OK):  # as root (and so in CI) it is readable: the case that matters
        if os.environ.get("CI"):
            pytest.fail("/etc/shadow must be readable here (CI runs as root)")
        pytest.skip("/etc/shadow is not readable here")
    t = import_template(tmp_path, "/etc/shadow")
    r = cli("validate", str(t))
    (_f, line, _c, msg), = located(r.code, r.out, r.err, t)
    assert line == 3 and msg.startswith('imported file "/etc/shadow" is not a TOSCA document: ')
    for entry in Path("/etc/shadow").read_text(errors="replace").splitlines():
        fields = entry.split(":")
        assert entry not in r.err and (len(fields) < 2 or len(fields[1]) < 4 or fields[1] not in r.err)


def test_a_nested_import_is_checked_and_reported_at_its_own_entry(cli, tmp_path):
    secret = write(tmp_path / "elsewhere" / "notes.txt", f"password: {SECRET}\n")
    types = write(tmp_path / "tpl" / "types.yaml", f"""\
        tosca_definitions_version: tosca_simple_yaml_1_0
        imports:
          - {secret}
        """)
    t = import_template(tmp_path, "types.yaml")
    r = cli("validate", str(t))
    (_f, line, col, msg), = located(r.code, r.out, r.err, types)
    assert (line, col) == (3, 5) and f'imported file "{secret}" is not a TOSCA document' in msg
    assert SECRET not in r.out + r.err


def test_imports_that_form_a_cycle_are_refused_where_the_cycle_closes(cli, tmp_path):
    write(tmp_path / "tpl" / "a.yaml", "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - b.yaml\n")
    b = write(tmp_path / "tpl" / "b.yaml", "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - a.yaml\n")
    t = import_template(tmp_path, "a.yaml")
    r = cli("validate", str(t))
    (_f, line, col, msg), = located(r.code, r.out, r.err, b)
    assert (line, col) == (3, 5) and msg == 'imports form a cycle: "a.yaml" is imported again by a file it imports ' \
                                           "(2 files in the cycle)"
    b.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\n")  # a diamond is no cycle
    write(tmp_path / "tpl" / "c.yaml", "tosca_definitions_version: tosca_simple_yaml_1_0\nimports: [a.yaml, b.yaml]\n")
    t.write_text(t.read_text().replace("  - a.yaml", "  - c.yaml\n  - b.yaml"))
    assert cli("validate", str(t)).code == 0


@pytest.mark.parametrize("ref", ["rel\\0x.yaml", "/etc/\\0x", "https://example.org/\\0x.yaml"])
def test_an_import_with_a_nul_character_is_refused(cli, tmp_path, ref):
    t = import_template(tmp_path, f'"{ref}"')
    r = cli("validate", str(t))
    (_f, line, col, msg), = located(r.code, r.out, r.err, t)
    assert (line, col, msg) == (3, 5, "an import cannot contain a NUL character")


def test_an_import_of_a_device_or_directory_is_not_read(cli, tmp_path):
    for ref in ("/dev/zero", str(tmp_path)):
        t = import_template(tmp_path, ref)
        r = cli("validate", str(t))
        (_f, line, _c, msg), = located(r.code, r.out, r.err, t)
        assert line == 3 and msg == f'imported file "{ref}" is not a regular file'


def test_a_valid_imported_type_file_still_works(tmp_path):
    write(tmp_path / "tpl" / "types.yaml", """\
        tosca_definitions_version: tosca_simple_yaml_1_0
        node_types:
          my.nodes.Box:
            derived_from: tosca.nodes.indigo.Compute
        """)
    t = import_template(tmp_path, "types.yaml")
    t.write_text(t.read_text().replace("tosca.nodes.indigo.Compute", "my.nodes.Box"))
    assert services.plan(str(t)).model.nodes["box"].type == "my.nodes.Box"


# -- 4. playbooks from elsewhere ----------------------------------------------------
PLAYBOOK = '- hosts: "{{ dodas_target }}"\n  gather_facts: false\n  tasks: []\n'


def playbook_template(tmp_path: Path, impl: str, *, own_type: bool = False) -> Path:
    if own_type:
        head = f"""\
            node_types:
              my.nodes.App:
                derived_from: tosca.nodes.SoftwareComponent
                interfaces:
                  Standard:
                    start: {{implementation: "{impl}"}}
            """
        node = "app: {type: my.nodes.App, requirements: [{host: box}]}"
    else:
        head = ""
        node = f"""\
            app:
              type: tosca.nodes.SoftwareComponent
              requirements: [{{host: box}}]
              interfaces:
                Standard:
                  start:
                    implementation: "{impl}"
            """
    text = ("tosca_definitions_version: tosca_simple_yaml_1_0\n" + textwrap.dedent(head)
            + "topology_template:\n  node_templates:\n    box: {type: tosca.nodes.indigo.Compute}\n"
            + textwrap.indent(textwrap.dedent(node), "    "))
    return write(tmp_path / "tpl" / "t.yaml", text)


def _outside(tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "elsewhere" / "pb.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(PLAYBOOK)
    link = tmp_path / "tpl" / "link.yml"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(out)
    return {"absolute path": str(out), "relative path with ..": "../elsewhere/pb.yml",
            "symbolic link": "link.yml", "https URL": "https://example.org/pb.yml",
            "bundled name with ..": "playbooks/../../../../../../../../../../etc/hostname"}


@pytest.mark.parametrize("case", ["absolute path", "relative path with ..", "symbolic link", "https URL",
                                  "bundled name with .."])
def test_a_playbook_from_elsewhere_is_refused_unless_allowed(cli, tmp_path, case):
    """plan (and up) refuse it; validate reports it, naming the flag they will need (issue 26)."""
    impl = _outside(tmp_path)[case]
    t = playbook_template(tmp_path, impl)
    r = cli("plan", str(t))
    (_f, line, col, msg), = located(r.code, r.out, r.err, t)
    assert (line, col) == (line_of(t, "implementation:"), 29)
    assert msg.startswith(f'node "app" operation "start": playbook "{impl}" is ')
    assert "--allow-external-playbooks" in msg
    r = cli("validate", str(t))
    assert r.code == 0, r.err
    assert f"{t}:{line}:{col}: warning: {msg}; dodas plan and up refuse this until then" in r.err
    r = cli("validate", str(t), "--strict")
    (_f, sline, scol, smsg), = located(r.code, r.out, r.err, t)
    assert (sline, scol) == (line, col) and "--allow-external-playbooks" in smsg
    r = cli("validate", str(t), "--allow-external-playbooks")
    assert r.code == 0 and "warning" not in r.err, r.err


def test_a_playbook_name_with_a_nul_character_is_refused(cli, tmp_path):
    t = playbook_template(tmp_path, "pb\\0.yml")
    for flag in ((), ("--allow-external-playbooks",)):
        r = cli("validate", str(t), *flag)
        (_f, line, _c, msg), = located(r.code, r.out, r.err, t)
        assert line == line_of(t, "implementation:") and msg.endswith("cannot contain a NUL character")


def test_a_type_of_the_template_naming_a_playbook_elsewhere_is_refused_where_the_type_says_so(cli, tmp_path):
    impl = _outside(tmp_path)["absolute path"]
    t = playbook_template(tmp_path, impl, own_type=True)
    r = cli("plan", str(t))
    (_f, line, _c, msg), = located(r.code, r.out, r.err, t)
    assert line == line_of(t, "implementation:")
    assert msg.startswith(f'type "my.nodes.App" operation "start": playbook "{impl}" is outside')
    assert cli("plan", str(t), "--allow-external-playbooks").code == 0


@pytest.mark.parametrize("where", ["same directory", "subdirectory", "bundled"])
def test_playbooks_next_to_the_template_or_bundled_are_allowed(tmp_path, where):
    name = {"same directory": "pb.yml", "subdirectory": "plays/pb.yml", "bundled": "playbooks/spark/install.yml"}
    impl = name[where]
    if where != "bundled":
        write(tmp_path / "tpl" / impl, PLAYBOOK)
    t = playbook_template(tmp_path, impl)
    op = services.plan(str(t)).model.nodes["app"].operations["start"]
    from dodas import paths
    base = paths.PLAYBOOKS_DIR if where == "bundled" else t.parent
    assert op.implementation == os.path.realpath(base / impl)


def test_up_refuses_an_external_playbook_before_making_anything_and_passes_the_flag_on(cli, tmp_path):
    impl = _outside(tmp_path)["absolute path"]
    t = playbook_template(tmp_path, impl)
    r = cli("up", str(t), "--name", "ext", "-q")
    (_f, _l, _c, msg), = located(r.code, r.out, r.err, t)
    assert "--allow-external-playbooks" in msg
    assert "ext" not in [d["name"] for d in json.loads(cli("list", "--json").out)]
    # with the flag, the playbook is accepted: what stops this up is the count, found in the same pass
    t.write_text(t.read_text().replace("box: {type: tosca.nodes.indigo.Compute}", "box: {type: tosca.nodes.indigo."
                                       "Compute, capabilities: {scalable: {properties: {count: 5000}}}}"))
    r = cli("up", str(t), "--name", "ext", "-q", "--allow-external-playbooks")
    (_f, _l, _c, msg), = located(r.code, r.out, r.err, t)
    assert "count 5000 is more than the limit" in msg


def test_a_deployment_made_with_external_playbooks_can_still_be_read(cli, tmp_path):
    """Reading a deployment re-plans its stored template, and runs no playbook: what
    `up --allow-external-playbooks` accepted stays readable (outputs, status)."""
    import hashlib

    from dodas.state.store import Store

    t = playbook_template(tmp_path, _outside(tmp_path)["absolute path"])
    text = t.read_text()
    Store().create("ext", "local", str(t), text, hashlib.sha256(text.encode()).hexdigest(), {}, "CREATE_COMPLETE")
    r = cli("outputs", "ext", "--json")
    assert r.code == 0 and json.loads(r.out) == {}, r.err


# -- 5. secret inputs ----------------------------------------------------------------
SECRETS_TEMPLATE = """\
    tosca_definitions_version: tosca_simple_yaml_1_0
    topology_template:
      inputs:
        db_password: {type: string, constraints: [{min_length: 40}]}
        api_key: {type: integer, metadata: {sensitive: true}}
        plain: {type: integer, default: 1}
      node_templates:
        box: {type: tosca.nodes.indigo.Compute}
    """
#: a secret by its type: a data type of the template's own, derived from one whose name says so
SECRET_TYPE_TEMPLATE = """\
    tosca_definitions_version: tosca_simple_yaml_1_0
    data_types:
      my.datatypes.ApiSecret:
        derived_from: tosca.datatypes.Root
        properties: {key: {type: string}}
      my.datatypes.Login:
        derived_from: my.datatypes.ApiSecret
    topology_template:
      inputs:
        vault: {type: my.datatypes.Login}
      node_templates:
        box: {type: tosca.nodes.indigo.Compute}
    """


@pytest.mark.parametrize("template, pair, words", [
    (SECRETS_TEMPLATE, f"db_password={SECRET}",
     'input "db_password" violates constraint min_length: 40 (its value is not shown'),
    (SECRETS_TEMPLATE, f"api_key={SECRET}",
     'input "api_key" must be an integer (its value is not shown: the input is a secret)'),
    (SECRET_TYPE_TEMPLATE, f"vault={SECRET}", 'must be of type "my.datatypes.Login"'),
], ids=["by name", "by metadata", "by type"])
def test_a_secret_input_is_never_echoed(cli, tmp_path, template, pair, words):
    t = write(tmp_path / "s.yaml", template)
    r = cli("validate", str(t), "-i", pair)
    errors = located(r.code, r.out, r.err)
    assert any(words in e[3] for e in errors), r.err
    assert SECRET not in r.out + r.err


def test_a_secret_from_an_inputs_file_is_never_echoed(cli, tmp_path):
    t = write(tmp_path / "s.yaml", SECRETS_TEMPLATE)
    f = write(tmp_path / "in.yaml", f"api_key: {SECRET}\ndb_password: [{SECRET}]\n")
    r = cli("validate", str(t), "--inputs", str(f))
    errors = located(r.code, r.out, r.err, f)
    assert [e[1] for e in errors] == [1, 2]
    assert SECRET not in r.out + r.err


def test_a_sensitive_input_is_masked_in_the_plan(cli, tmp_path):
    t = write(tmp_path / "s.yaml", SECRETS_TEMPLATE)
    key = "918273645546372819"
    r = cli("plan", str(t), "--json", "-i", f"api_key={key}", "-i", f"db_password={SECRET * 3}")
    assert r.code == 0, r.err
    assert key not in r.out + r.err and SECRET not in r.out + r.err
    assert json.loads(r.out)["inputs"]["api_key"] == "********"
    assert cli("plan", str(t), "-i", "plain=x").err.count('must be an integer, got "x"') == 1  # others still shown
