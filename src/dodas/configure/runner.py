"""Running TOSCA lifecycle operations with Ansible, one ansible-playbook per batch.

A batch is every operation the engine wants run now (say, `start` on 20 Spark
workers). It becomes one generated playbook that imports each operation's
playbook once per node, with `dodas_target` naming an inventory group of the
hosts concerned, so Ansible fans out over hosts itself (forks) instead of dodas
starting one ansible-playbook per instance. Per-instance values (operation
inputs, addresses of related instances) are host variables under
`dodas_ops[<play key>]`, and the wrapper maps them to plain variable names, so
the playbooks read `{{ spark_port }}` like any Ansible playbook would.

Events are streamed to a callback as they happen and never written to disk
(ansible-runner keeps an event on disk only if the handler says so). The private
data directory holds the inventory (and so any generated token): it is made 0700,
removed after every run, and what a crashed run left is removed by the next one
(`remove_leftovers`, called under the deployment lock). ansible-playbook gets an
explicit environment: Ansible's settings and a few variables of the session
(`PASSED_THROUGH`), never the rest of dodas's environment (cloud credentials,
DODAS_DB_URL, tokens), which would otherwise reach every module and be written
into the run's artifacts.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dodas import ssh_access
from dodas.configure import connections
from dodas.model.deployment import Instance
from dodas.redact import redact
from dodas.ssh_access import Endpoint

if TYPE_CHECKING:  # a type only: configure takes the machines it is given, and imports no provider
    from dodas.providers.base import Machine

CONFIGURE_DIR = Path(__file__).resolve().parent
#: what ansible-playbook inherits from dodas's environment: who and where the user
#: is, the locale, the SSH agent (keys of the ssh provider's hosts) and proxies
PASSED_THROUGH = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM",
                  "SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                  "NO_PROXY")
#: called with (instance or None, phase, message, level)
EventSink = Callable[[Instance | None, str, str, str], None]


def host_name(compute: Instance | None) -> str:
    """The inventory name of a machine: its path component ("worker-3"), or
    "controller" for this machine (no component is called that: it has no index)."""
    from dodas import paths
    return paths.instance_component(compute.id) if compute is not None else "controller"


@dataclass
class Host:
    """An inventory host: one compute instance (or the controller itself)."""

    name: str
    compute: Instance | None
    machine: Machine | None
    #: the bastion this host is reached through (engine/access.py), or None
    jump: Endpoint | None = None

    def inventory_vars(self, jump_config: Path | None = None) -> dict[str, Any]:
        """Ansible's connection to the host (its public address when it has one,
        else its private one, through the jump host defined in `jump_config`) and
        the addresses the roles use (services bind and talk on the private one)."""
        m = self.machine
        if m is None:  # hostless operations run on this machine
            return {"ansible_connection": "local", "ansible_python_interpreter": _python(),
                    "dodas_address": "127.0.0.1", "dodas_facts": {"local": True}}
        out: dict[str, Any] = {"ansible_host": m.public_address or m.private_address,
                               "dodas_address": m.private_address or m.public_address,
                               "dodas_public_address": m.public_address, "dodas_facts": m.facts}
        if m.connection == "local":
            out.update(ansible_connection="local", ansible_python_interpreter=m.facts.get("python") or _python())
        else:
            out.update(ansible_connection="ssh", ansible_user=m.ssh_user, ansible_port=m.ssh_port)
            if m.ssh_key_file:
                out["ansible_ssh_private_key_file"] = m.ssh_key_file
            if self.jump is not None:
                if jump_config is None:
                    raise ValueError("a host behind a bastion needs the jump hosts' ssh_config")
                out["ansible_ssh_common_args"] = " ".join(ssh_access.jump_options(jump_config, self.jump))
            out["ansible_python_interpreter"] = m.facts.get("python") or "/usr/bin/python3"
        return out


@dataclass
class Play:
    """One operation of one node, on the hosts of that node's instances."""

    node: str
    operation: str
    implementation: str
    #: inventory host name -> (software instance, variables for it)
    targets: dict[str, tuple[Instance, dict[str, Any]]] = field(default_factory=dict)


@dataclass
class RunResult:
    failures: dict[Instance, str] = field(default_factory=dict)
    reports: dict[Instance, dict[str, Any]] = field(default_factory=dict)
    #: what tasks named "dodas_secret_report" set (a kubeconfig): kept apart, never logged
    secret_reports: dict[Instance, dict[str, Any]] = field(default_factory=dict)
    ok: set[Instance] = field(default_factory=set)


def _python() -> str:
    import sys
    return sys.executable


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _plays_in(path: str) -> int:
    """How many plays a playbook file holds (for telling which play an event is in)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return 1
    return len(data) if isinstance(data, list) else 1


class AnsibleRunner:
    def __init__(self, workdir: Path, sink: EventSink, forks: int = 10, run_mark: str = "") -> None:
        self.workdir = workdir
        self.run_mark = run_mark
        self.sink = sink
        self.forks = max(1, forks)

    def run(self, phase: str, hosts: dict[str, Host], plays: list[Play]) -> RunResult:
        """Run the plays in order in one ansible-playbook; blocking (call it in a thread)."""
        import ansible_runner.interface

        result = RunResult()
        plays = [p for p in plays if p.targets]
        if not plays:
            return result
        for p in plays:
            if not Path(p.implementation).is_file():
                for inst, _ in p.targets.values():
                    result.failures[inst] = (f"operation {p.operation} of node {p.node}: playbook "
                                             f"{p.implementation} does not exist")
                return result
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        private = Path(tempfile.mkdtemp(prefix=f"ansible-{phase}-", dir=self.workdir))
        try:
            inventory, wrapper, sequence = self._generate(hosts, plays, private)
            state = _EventState(self, plays, sequence, result, phase)
            envvars = self._env(private)
            r = ansible_runner.interface.init_runner(
                private_data_dir=str(private), playbook=str(wrapper), inventory=inventory,
                envvars=envvars, quiet=True, event_handler=state.handle,
                forks=self.forks, ident="run")
            r.config.env = _explicit(r.config.env, envvars)
            r.run()
            if r.rc != 0:
                # Ansible ends a playbook when every host of a play has failed, so
                # instances of later plays may never have run: they did not succeed.
                tail = "" if result.failures else ": " + _tail_stdout(private)
                for n, p in enumerate(plays):
                    for host, (inst, _) in p.targets.items():
                        if inst not in result.failures and (n, host) not in state.seen:
                            result.failures[inst] = (f"operation {p.operation} did not run: ansible-playbook "
                                                     f"stopped (status {r.rc}){tail}")
        finally:
            shutil.rmtree(private, ignore_errors=True)
        return result

    def close(self) -> None:
        """End the SSH connections this deployment's runs kept open between plays
        (configure/connections.py). Call only while holding the deployment lock."""
        if self.run_mark:
            connections.close(self.run_mark)

    def remove_leftovers(self) -> None:
        """Remove what runs that did not end (dodas killed) left behind: their
        inventories hold secrets. Call only while holding the deployment lock."""
        if not self.workdir.is_dir():
            return
        from dodas import paths

        for entry in self.workdir.iterdir():
            if entry.name.startswith("ansible-"):
                paths.remove_tree(entry, self.workdir)

    def _generate(self, hosts: dict[str, Host], plays: list[Play],
                  private: Path) -> tuple[dict[str, Any], Path, list[tuple[int, Play]]]:
        jumps = [h.jump for h in hosts.values() if h.jump is not None]
        config = ssh_access.write_jump_config(private / "ssh", jumps) if jumps else None
        host_vars: dict[str, dict[str, Any]] = {name: h.inventory_vars(config) for name, h in hosts.items()}
        groups: dict[str, dict[str, Any]] = {}
        wrapper: list[dict[str, Any]] = []
        sequence: list[tuple[int, Play]] = []
        for n, p in enumerate(plays):
            key = f"p{n}_{_safe(p.node)}_{_safe(p.operation)}"
            groups[key] = {"hosts": {h: {} for h in p.targets}}
            names: set[str] = set()
            for host, (_inst, variables) in p.targets.items():
                host_vars[host].setdefault("dodas_ops", {})[key] = variables
                names.update(variables)
            mapped = {k: "{{ dodas_ops['%s']['%s'] }}" % (key, k) for k in sorted(names)}
            wrapper.append({"import_playbook": p.implementation,
                            "vars": {"dodas_target": key, **mapped}})
            sequence.extend((n, p) for _ in range(_plays_in(p.implementation)))
        inventory = _write_inventory(private, {"all": {"hosts": host_vars, "children": groups}})
        path = private / "project" / "dodas-batch.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(wrapper, sort_keys=False))
        return inventory, path, sequence

    def _env(self, private: Path) -> dict[str, str]:
        bindir = str(Path(_python()).parent)  # ansible-playbook lives beside dodas's Python
        env = {
            "PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "DODAS_RUN": self.run_mark,  # finds this run's processes if dodas dies (see procs.py)
            "ANSIBLE_LIBRARY": str(CONFIGURE_DIR / "library"),
            "ANSIBLE_ROLES_PATH": str(CONFIGURE_DIR / "roles"),
            "ANSIBLE_FILTER_PLUGINS": str(CONFIGURE_DIR / "filter_plugins"),
            # the filters import dodas: the one these playbooks and filters are part of,
            # not whichever another path of the interpreter would find first
            "PYTHONPATH": str(CONFIGURE_DIR.parent.parent),
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "true",
            "ANSIBLE_DEPRECATION_WARNINGS": "false",
            "ANSIBLE_SYSTEM_WARNINGS": "false",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "true",
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_GATHERING": "explicit",
            # host keys: learnt on first contact into dodas's own file, checked after
            "ANSIBLE_SSH_CONTROL_PATH_DIR": connections.control_dir(self.run_mark),
            "ANSIBLE_SSH_ARGS": " ".join(["-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
                                          "-o", "ServerAliveInterval=15", *ssh_access.common_options()]),
        }
        if os.environ.get("DODAS_ANSIBLE_VERBOSITY"):
            env["ANSIBLE_VERBOSITY"] = os.environ["DODAS_ANSIBLE_VERBOSITY"]
        return env


class _EventState:
    """Follows ansible-runner's events: which play is running, what failed where."""

    def __init__(self, runner: AnsibleRunner, plays: list[Play], sequence: list[tuple[int, Play]],
                 result: RunResult, phase: str) -> None:
        self.runner = runner
        self.sequence = sequence
        self.result = result
        self.phase = phase
        self.play_no = -1
        #: (play number, host) pairs that ran at least one task
        self.seen: set[tuple[int, str]] = set()

    def current(self) -> Play | None:
        if 0 <= self.play_no < len(self.sequence):
            return self.sequence[self.play_no][1]
        return None

    def _secret_report(self, inst: Instance, op: str, res: dict[str, Any], secret: Any) -> None:
        """A secret a play reported (a kubeconfig): registered for masking at once,
        kept in the result only (never sent to the sink), and taken out of the event,
        which dodas keeps nowhere anyway. A no_log report arrives censored: Ansible
        gives callbacks nothing of it, so it can never reach dodas; that is a
        failure of the instance, not a silent loss."""
        from dodas.redact import register

        if isinstance(secret, dict):
            register(*(v for v in secret.values() if isinstance(v, str)))
            self.result.secret_reports.setdefault(inst, {}).update(secret)
        elif res.get("censored"):
            msg = ("task 'dodas_secret_report' is no_log, so Ansible hid what it reported from dodas: "
                   "a secret report must not be no_log (dodas keeps it out of events and logs itself)")
            self.result.failures.setdefault(inst, msg)
            self.runner.sink(inst, op, msg, "error")
        res.pop("ansible_facts", None)

    def handle(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.play_no += 1
            return False
        play = self.current()
        host = data.get("host")
        if play is None or host not in play.targets:
            return False
        inst = play.targets[host][0]
        task = data.get("task") or ""
        if kind.startswith("runner_on_") and kind != "runner_on_start":
            self.seen.add((self.sequence[self.play_no][0], host))
        op = play.operation
        if kind == "runner_on_ok":
            res = data.get("res") or {}
            report = (res.get("ansible_facts") or {}).get("dodas_report")
            secret = (res.get("ansible_facts") or {}).get("dodas_secret_report")
            if task == "dodas_report" and isinstance(report, dict):
                self.result.reports.setdefault(inst, {}).update(report)
            elif task == "dodas_secret_report":
                self._secret_report(inst, op, res, secret)
            else:
                self.runner.sink(inst, op, f"{task}: {'changed' if res.get('changed') else 'ok'}", "debug")
            self.result.ok.add(inst)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            msg = _failure_text(task, data.get("res") or {})
            self.result.failures.setdefault(inst, msg)
            self.runner.sink(inst, op, msg, "error")
        elif kind == "runner_on_unreachable":
            res = data.get("res") or {}
            msg = f"host unreachable during {task}: {res.get('msg', '')}".strip()
            self.result.failures.setdefault(inst, msg)
            self.runner.sink(inst, op, msg, "error")
        elif kind == "runner_on_start" and not task.startswith("dodas_"):  # dodas's own report steps are no news
            self.runner.sink(inst, op, f"{task}", "debug")
        return False  # never keep events (they may quote variables) on disk


def _explicit(env: dict[str, str], ours: dict[str, str]) -> dict[str, str]:
    """The runner's environment without what it copied from dodas's own: keep what
    dodas sets, what the runner itself set or changed (its callback plugin, its
    PYTHONPATH), and the few variables passed through."""
    return {k: v for k, v in env.items()
            if k in ours or k in PASSED_THROUGH or k not in os.environ or os.environ[k] != v}


def _failure_text(task: str, res: dict[str, Any]) -> str:
    if res.get("censored"):
        return f"task {task!r} failed (its output is hidden because it handles a secret)"
    failed_items = [r for r in (res.get("results") or []) if isinstance(r, dict) and r.get("failed")]
    if failed_items:  # a loop: Ansible's own message only says "One or more items failed"
        return "\n".join(_failure_text(f"{task}" + (f" ({r['_ansible_item_label']})" if r.get("_ansible_item_label")
                                                     else ""), r) for r in failed_items)
    lines = [f"task {task!r} failed: {res.get('msg') or 'no message'}"]
    for key in ("stderr_lines", "stdout_lines"):
        tail = [ln for ln in (res.get(key) or []) if ln][-15:]
        if tail:
            lines.append("\n".join(tail))
    if res.get("module_stderr"):
        lines.append(str(res["module_stderr"])[-1500:])
    return redact("\n".join(lines))


def _tail_stdout(private: Path) -> str:
    f = private / "artifacts" / "run" / "stdout"
    try:
        return redact("\n".join(f.read_text(errors="replace").splitlines()[-20:]))
    except OSError:
        return "(no output)"


class _Unsafe(str):
    """A string Ansible must use as it is, never as a template."""


class _InventoryDumper(yaml.SafeDumper):
    pass


_InventoryDumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v)))


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unsafe(v) for v in value]
    return value


def _write_inventory(private: Path, inventory: dict[str, Any]) -> str:
    """The inventory as YAML, every value dodas passes through tagged !unsafe.

    Operation inputs and properties come from templates and users: a value such
    as a Helm values file may contain `{{ }}`, which Ansible would otherwise
    evaluate as its own template, with its own variables. Connection settings
    stay plain."""
    for hv in inventory["all"]["hosts"].values():
        for key in ("dodas_ops", "dodas_facts"):
            if key in hv:
                hv[key] = _unsafe(hv[key])
    path = private / "inventory" / "hosts.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.dump(inventory, fh, Dumper=_InventoryDumper, sort_keys=False)
    return str(path)
