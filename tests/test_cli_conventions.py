"""The command line's conventions, on the real `dodas` command (a process of its
own, a DODAS_HOME of its own, the simulated provider): inputs from files, pairs
and the environment in a documented precedence; one output for scripts
(`outputs NAME KEY --raw`); `forget`; shell completion; `--json` everywhere,
errors included; `logs --since/--tail`; durations; waiting for a lock; help for
every option; a template without nodes. Every bad input gets its exit code and
changes nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest
from support.livecluster import Dodas, db_rows
from support.waiting import wait_until

NODES = """\
tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    n: {type: integer, default: 2}
    colour: {type: string, default: template}
    size: {type: integer, default: 1}
    admin_token: {type: string, default: s3cr3t-t0ken}
  node_templates:
    box:
      type: tosca.nodes.indigo.Compute
      capabilities:
        scalable: {properties: {count: {get_input: n}}}
        host: {properties: {num_cpus: 1, mem_size: 512 MiB}}
  outputs:
    colour: {value: {get_input: colour}}
    addresses: {value: {get_attribute: [box, public_address]}}
    admin_token: {value: {get_input: admin_token}}
"""

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


@pytest.fixture
def d(tmp_path):
    dodas = Dodas(tmp_path / "home")
    for k in [k for k in dodas.env if k.startswith("DODAS_INPUT_")]:
        del dodas.env[k]
    f = dodas.home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("providers:\n  - {name: sim, type: simulated, rank: 1, create_latency: 0}\n")
    return dodas


@pytest.fixture
def template(tmp_path) -> str:
    t = tmp_path / "boxes.yaml"
    t.write_text(NODES)
    return str(t)


def up(d: Dodas, template: str, name: str, *args: str) -> None:
    d.run("up", template, "--name", name, "--quiet", *args)


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stdout + r.stderr, r.stderr


def refused(d: Dodas, code: int, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command that must fail with `code` and leave the state as it was."""
    before = db_rows(d.home) if (d.home / "data" / "state.db").exists() else None
    saved = d.env
    d.env = {**d.env, **(env or {})}
    try:
        r = d.run(*args, check=False)
    finally:
        d.env = saved
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    no_traceback(r)
    if before is not None:
        assert db_rows(d.home) == before, "a refused command changed the state"
    return r


def plan_inputs(d: Dodas, template: str, *args: str, env: dict | None = None) -> dict:
    saved = d.env
    d.env = {**d.env, **(env or {})}
    try:
        return json.loads(d.run("plan", template, "--json", *args).stdout)["inputs"]
    finally:
        d.env = saved


# -- 1. inputs: environment < files in order < -i ----------------------------------------
def test_inputs_precedence(d, template, tmp_path):
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("colour: one\nsize: 10\n")
    two.write_text("size: 20\n")
    env = {"DODAS_INPUT_colour": "env", "DODAS_INPUT_n": "3", "DODAS_INPUT_size": "5"}
    assert plan_inputs(d, template, env=env) == {"n": 3, "colour": "env", "size": 5, "admin_token": "********"}
    got = plan_inputs(d, template, "-f", str(one), "--inputs", str(two), env=env)
    assert (got["n"], got["colour"], got["size"]) == (3, "one", 20), "a later file wins; files win over env"
    got = plan_inputs(d, template, "-f", str(two), "-f", str(one), "-i", "colour=pair", env=env)
    assert (got["colour"], got["size"]) == ("pair", 10), "-i wins; the order of files matters"
    # only declared names, exactly as declared; others are not inputs
    got = plan_inputs(d, template, env={"DODAS_INPUT_COLOUR": "upper", "DODAS_INPUT_other": "x"})
    assert got["colour"] == "template"
    # validate and up honour the environment too
    d.env["DODAS_INPUT_n"] = "1"
    assert "1 instance," in d.run("validate", template).stdout
    up(d, template, "envy")
    assert len(d.json("status", "envy")["instances"]) == 1


def test_malformed_environment_input_names_the_variable(d, template):
    for cmd in (["validate", template], ["plan", template], ["up", template, "--name", "bad"]):
        r = refused(d, 1, *cmd, env={"DODAS_INPUT_n": "three"})
        assert r.stderr.startswith('<environment DODAS_INPUT_n>:1:1: input "n" must be an integer, got "three"'), \
            r.stderr
    assert d.json("list", "--all") == [], "nothing was made"
    r = refused(d, 1, "validate", template, "--json", env={"DODAS_INPUT_size": "[1, 2"})
    assert json.loads(r.stdout)["errors"][0]["file"] == "<environment DODAS_INPUT_size>"


def test_inputs_file_twice_or_missing(d, template, tmp_path):
    f = tmp_path / "in.yaml"
    f.write_text("size: 3\n")
    r = refused(d, 1, "validate", template, "-f", str(f), "--inputs", str(f))
    assert f'--inputs "{f}" is given twice' in r.stderr
    link = tmp_path / "same.yaml"
    link.symlink_to(f)
    assert "the same file as" in refused(d, 1, "plan", template, "-f", str(f), "-f", str(link)).stderr
    r = refused(d, 1, "plan", template, "-f", str(tmp_path / "nope.yaml"))
    assert "nope.yaml" in r.stderr and "cannot read" in r.stderr


def test_input_options_say_the_precedence(d):
    out = d.run("up", "--help").stdout
    assert "DODAS_INPUT_" in out and "later file wins" in out


# -- 2. outputs NAME KEY [--raw] -------------------------------------------------------
def test_one_output_raw_and_its_errors(d, template):
    up(d, template, "outs", "-i", "colour=blue")
    assert d.run("outputs", "outs", "colour", "--raw").stdout == "blue\n"
    addresses = json.loads(d.run("outputs", "outs", "addresses", "--raw").stdout)
    assert isinstance(addresses, list) and len(addresses) == 2, "not a string: JSON"
    assert d.run("outputs", "outs", "colour").stdout == "colour = blue\n"
    assert d.json("outputs", "outs", "colour")["colour"]["value"] == "blue"
    # a sensitive one only with --show-secrets
    r = refused(d, 1, "outputs", "outs", "admin_token", "--raw")
    assert "sensitive" in r.stderr and "--show-secrets" in r.stderr and "s3cr3t" not in r.stdout + r.stderr
    assert d.run("outputs", "outs", "admin_token", "--raw", "--show-secrets").stdout == "s3cr3t-t0ken\n"
    # an unknown key: did you mean, and the known ones
    r = refused(d, 1, "outputs", "outs", "colur", "--raw")
    assert 'no output "colur"; did you mean "colour"?' in r.stderr
    assert "its outputs are: colour, addresses, admin_token" in r.stderr
    r = refused(d, 1, "outputs", "outs", "colur", "--json")
    assert json.loads(r.stderr)["error"]["exit_code"] == 1 and r.stdout == ""
    assert "KEY" in refused(d, 2, "outputs", "outs", "--raw").stderr
    assert 'no deployment named "nope"' in refused(d, 4, "outputs", "nope", "colour").stderr


# -- 3. forget, list --all ----------------------------------------------------------------
def test_forget_only_a_destroyed_deployment(d, template):
    up(d, template, "gone")
    kept = d.home / "data" / "deployments"
    assert any(kept.iterdir())
    r = refused(d, 6, "forget", "gone")
    assert 'is CREATE_COMPLETE, not destroyed: run "dodas destroy gone" first' in r.stderr
    assert json.loads(refused(d, 6, "forget", "gone", "--json").stderr)["error"]["exit_code"] == 6
    d.run("destroy", "gone", "--yes")
    assert d.json("list") == [], "destroyed deployments are hidden"
    assert [x["status"] for x in d.json("list", "--all")] == ["DELETE_COMPLETE"]
    assert "gone" in d.run("list", "--all").stdout
    assert d.run("logs", "gone").stdout, "its records are still there"
    out = d.run("forget", "gone").stdout
    assert re.match(r"gone: forgotten, its records dropped \(\d+ events?, 1 attempt, 0 instances\)", out), out
    assert d.json("list", "--all") == []
    assert not any(kept.iterdir()), "its kept template is gone too"
    assert all(not rows for table, rows in db_rows(d.home).items() if table != "alembic_version")
    refused(d, 4, "forget", "gone")


# -- 4. completion -----------------------------------------------------------------------
def test_completion_scripts_and_deployment_names(d, template):
    assert "complete -o default -F _dodas_completion dodas" in d.run("completion", "bash").stdout
    assert "compdef _dodas_completion dodas" in d.run("completion", "zsh").stdout
    assert "complete --command dodas" in d.run("completion", "fish").stdout
    assert "bash, zsh, fish" in refused(d, 2, "completion", "tcsh").stderr

    def complete(words: str) -> list[str]:
        env = {**d.env, "_DODAS_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        r = subprocess.run([sys.executable, "-m", "dodas"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        return r.stdout.split()

    assert complete("dodas status ") == [], "no state: nothing offered, and no database made"
    assert not (d.home / "data" / "state.db").exists()
    up(d, template, "first")
    up(d, template, "fish-tank")
    assert complete("dodas status f") == ["first", "fish-tank"]
    assert complete("dodas destroy fi") == ["first", "fish-tank"]
    assert complete("dodas logs fis") == ["fish-tank"]
    assert "destroy" in complete("dodas des")
    d.env["_DODAS_COMPLETE"] = "complete_bash"  # Typer's instruction, as the script it prints sends it
    try:
        env = {**d.env, "COMP_WORDS": "dodas outputs fir", "COMP_CWORD": "2"}
        r = subprocess.run([sys.executable, "-m", "dodas"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        del d.env["_DODAS_COMPLETE"]
    assert r.stdout.split() == ["first"]


# -- 5. --json everywhere, errors as JSON on stderr ---------------------------------------------
def test_json_output_and_json_errors(d, template, tmp_path):
    r = refused(d, 2, "status", "--json")  # a usage error, as JSON too
    assert json.loads(r.stderr) == {"error": {"message": "Missing argument 'NAME'.", "exit_code": 2}}
    assert "Usage: dodas status" in refused(d, 2, "status").stderr
    r = refused(d, 4, "status", "nope", "--json")
    err = json.loads(r.stderr)
    assert err["error"]["exit_code"] == 4 and 'no deployment named "nope"' in err["error"]["message"]
    assert r.stdout == ""
    up(d, template, "js")
    for cmd in (["kubeconfig", "js", "-o", str(tmp_path / "k")], ["spark-conf", "js", "-o", str(tmp_path / "s")]):
        r = refused(d, 1, *cmd, "--json")
        assert json.loads(r.stderr)["error"]["exit_code"] == 1
    assert [p["name"] for p in d.json("providers")][0] == "sim"
    events = [json.loads(line) for line in d.run("logs", "js", "--json").stdout.splitlines()]
    assert events and all(ISO.match(e["time"]) for e in events)
    r = d.run("destroy", "js", "--yes", "--json")
    assert json.loads(r.stdout) == {"name": "js", "status": "DELETE_COMPLETE"}
    # a template error under --json: the report on stdout, the error object on stderr
    r = refused(d, 1, "validate", template, "-i", "n=x", "--json")
    assert json.loads(r.stdout)["valid"] is False
    assert json.loads(r.stderr)["error"]["diagnostics"][0]["file"] == "<command line>"


# -- 6. logs --since / --tail, times with their zone, unknown names --------------------------
def test_logs_since_tail_and_filters(d, template):
    up(d, template, "lg")
    all_lines = d.run("logs", "lg").stdout.splitlines()
    assert len(all_lines) > 4
    for line in all_lines:
        assert ISO.match(line.split(" ", 1)[0]), line
    assert d.run("logs", "lg", "--tail", "2").stdout.splitlines() == all_lines[-2:]
    assert d.run("logs", "lg", "--since", "1h").stdout.splitlines() == all_lines
    assert d.run("logs", "lg", "--since", "2999-01-01T00:00:00+00:00").stdout == ""
    first = all_lines[0].split(" ", 1)[0]
    assert d.run("logs", "lg", "--since", first).stdout.splitlines()[0].split(" ", 1)[0] >= first
    one = d.run("logs", "lg", "box[1]").stdout.splitlines()
    assert one and all(" box[1]: " in line for line in one)
    both = d.run("logs", "lg", "box").stdout.splitlines()
    assert len(both) > len(one)
    r = refused(d, 1, "logs", "lg", "bx")
    assert 'no node or instance "bx"; did you mean "box"?' in r.stderr
    assert "its nodes: box; instances: box[0], box[1]" in r.stderr
    refused(d, 1, "logs", "lg", "box[7]")
    r = refused(d, 2, "logs", "lg", "--since", "yesterday")
    assert '--since: "yesterday" is neither a duration' in r.stderr
    refused(d, 2, "logs", "lg", "--tail", "-1")
    # following: --tail 0 shows none of the old events, then every new one
    proc = d.popen("logs", "lg", "--tail", "0", "--follow")
    followed: list[str] = []
    reader = threading.Thread(target=lambda: followed.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # the follower takes its place at the newest event with its first read of the state
        wait_until(lambda: reading_state(proc, d.home), "the follower's first read of the state")
        up(d, template, "lg")  # a second up: its events arrive in the followed log
        last = d.run("logs", "lg").stdout.splitlines()[-1]
        wait_until(lambda: last in [ln.rstrip("\n") for ln in followed], "the second up's last event, followed")
    finally:
        proc.kill()
        proc.wait()
        reader.join()
    now = d.run("logs", "lg").stdout.splitlines()
    new = now[len(all_lines):]
    followed = [ln.rstrip("\n") for ln in followed]
    # every event after the follower's place, none before the second up (a busy machine
    # may start the follower late: the events it shows are then a shorter end of them)
    assert followed and len(followed) <= len(new) and followed == now[-len(followed):], (followed, now)


def reading_state(proc: subprocess.Popen, home) -> bool:
    """Whether the process has opened the state database (its first read has begun)."""
    import psutil

    try:
        return any(f.path.startswith(str(home / "data" / "state.db")) for f in psutil.Process(proc.pid).open_files())
    except psutil.NoSuchProcess:
        raise AssertionError(f"the follower ended: {proc.stderr.read()}") from None


# -- 7. durations ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["5x", "1h1h", "30m1h", "-5", "m", ""])
def test_a_duration_that_is_not_one(d, template, bad):
    up(d, template, "dur")
    r = refused(d, 2, "destroy", "dur", "--yes", "--lock-timeout", bad)
    assert f'--lock-timeout: "{bad}" is not a duration' in r.stderr
    assert json.loads(refused(d, 2, "destroy", "dur", "--yes", "--lock-timeout", bad, "--json").stderr)[
        "error"]["exit_code"] == 2


# -- 8. locks: waiting, unlock ------------------------------------------------------------------
HOLD = """
import sys, time
from dodas.state import lock
from dodas.state.store import Store
store = Store()
dep = store.get(sys.argv[1])
with store.session() as s:
    lock.acquire(s, s.get(type(dep), dep.id))
print(lock.me(), flush=True)
sys.stdin.readline()  # held until the test says so (or is gone)
with store.session() as s:
    lock.release(s, dep.id)
print("released", flush=True)
time.sleep(600)
"""


def hold(d: Dodas, name: str) -> tuple[subprocess.Popen, str]:
    """Another process holding the deployment's lock until a line on its stdin: (it, its owner string)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, name], env=d.env, stdout=subprocess.PIPE,
                         stdin=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def test_destroy_waits_for_the_lock_then_names_its_holder(d, template):
    up(d, template, "busy")
    holder, owner = hold(d, "busy")
    try:
        started = time.monotonic()
        r = refused(d, 3, "destroy", "busy", "--yes", "--lock-timeout", "2s")
        assert time.monotonic() - started >= 2
        assert f"another dodas (pid {holder.pid} on " in r.stderr and "since" in r.stderr
        assert "waited 2s for it" in r.stderr
        assert refused(d, 3, "destroy", "busy", "--yes").returncode == 3, "without a timeout: at once"
        r = refused(d, 3, "up", template, "--name", "busy", "--lock-timeout", "1s")  # up waits the same way
        assert f"(pid {holder.pid} on " in r.stderr and "waited 1s for it" in r.stderr
    finally:
        holder.kill()
        holder.wait()
    # a holder that finishes while destroy waits
    d.run("unlock", "busy")
    holder, owner = hold(d, "busy")
    try:
        destroy = d.popen("destroy", "busy", "--yes", "--lock-timeout", "10m", "--json")
        wait_until(lambda: reading_state(destroy, d.home), "destroy to ask for the lock")
        holder.stdin.write("release\n")
        holder.stdin.flush()
        out, err = destroy.communicate(timeout=300)
        assert destroy.returncode == 0 and json.loads(out)["status"] == "DELETE_COMPLETE", err
    finally:
        holder.kill()
        holder.wait()


def test_unlock_says_whose_lock_and_refuses_an_unlocked_deployment(d, template):
    up(d, template, "lk")
    r = refused(d, 6, "unlock", "lk")
    assert 'deployment "lk" is not locked: there is nothing to unlock' in r.stderr
    assert json.loads(refused(d, 6, "unlock", "lk", "--json").stderr)["error"]["exit_code"] == 6
    refused(d, 4, "unlock", "nope")
    holder, owner = hold(d, "lk")
    holder.kill()
    holder.wait()  # a dead holder: unlock needs no --force
    out = d.run("unlock", "lk").stdout
    assert out.startswith(f"lk: unlocked (was held by {owner}): pid {holder.pid} on "), out
    assert "holding it since 2" in out
    holder, owner = hold(d, "lk")
    holder.kill()
    holder.wait()
    done = d.json("unlock", "lk")
    assert done["unlocked"] is True and done["holder"]["owner"] == owner and done["holder"]["pid"] == holder.pid
    assert ISO.match(done["holder"]["since"]) and done["holder"]["alive"] is False


# -- 9. help for every option; a template with no nodes; plurals ----------------------------------
def test_every_option_has_help_and_no_type_placeholders(d):
    from dodas.cli.app import _command

    cmd = _command()
    for name, sub in cmd.commands.items():
        for param in sub.params:
            assert (param.help or "").strip(), f"dodas {name}: {param.name} has no help"
        out = d.run(name, "--help").stdout
        for placeholder in ("<bool>", "<str>", "<int>", "<list"):
            assert placeholder not in out, f"dodas {name} --help shows {placeholder}"


@pytest.mark.parametrize("body, line", [
    ("topology_template:\n  node_templates: {}\n", 3),
    ("topology_template:\n  inputs: {a: {type: string, default: x}}\n", 2),
    ("topology_template:\n", 2),
])
def test_a_template_with_no_nodes(d, tmp_path, body, line):
    t = tmp_path / "empty.yaml"
    t.write_text("tosca_definitions_version: tosca_simple_yaml_1_0\n" + body)
    for cmd in (["validate", str(t)], ["plan", str(t)], ["up", str(t)]):
        r = refused(d, 1, *cmd)
        assert re.match(rf"{re.escape(str(t))}:{line}:\d+: the template defines no nodes", r.stderr), r.stderr
    assert d.json("list", "--all") == []


def test_plurals(d, tmp_path):
    t = tmp_path / "one.yaml"
    t.write_text(NODES.replace("default: 2", "default: 1"))
    assert "(1 node, 1 instance, 1 wave)" in d.run("validate", str(t)).stdout
    assert "(1 node, 3 instances, 1 wave)" in d.run("validate", str(t), "-i", "n=3").stdout


def test_duration_parser():
    from dodas.durations import DurationError, format_duration, parse_duration

    assert [parse_duration(x) for x in ("30s", "5m", "1h30m", "2d", "90", "1.5")] == [30, 300, 5400, 172800, 90, 1.5]
    for bad in ("5x", "1h1h", "30m1h", "-5", "", "1h 30m"):
        with pytest.raises(DurationError):
            parse_duration(bad, "--x")
    assert [format_duration(x) for x in (5400, 2.5, 61)] == ["1h30m", "2.5s", "1m1s"]
