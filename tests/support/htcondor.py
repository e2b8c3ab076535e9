"""The HTCondor pool of templates/htcondor.yaml as the tests see it: HTCondor's
configuration language (as much as dodas writes), the pool's tokens checked
independently of dodas, and `Pool`, the pool planned and its configuration
playbooks run in render-only mode (HTCondor's daemons cannot run here)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dodas.configure.runner import CONFIGURE_DIR, Host
from dodas.engine.context import RunContext
from dodas.model.deployment import Instance
from dodas.providers.base import Machine
from support.paths import TEMPLATES


POOL = TEMPLATES / "htcondor.yaml"


POOL_K8S = TEMPLATES / "htcondor-k8s.yaml"


CM_ADDRESS, WN_ADDRESS = "10.0.0.5", "10.0.0.6"


# -- HTCondor's configuration language, as much as dodas writes ------------------------------------
_MACRO = re.compile(r"\$\(([A-Za-z0-9_.]+)\)")


def parse_config(texts: list[str]) -> dict[str, str]:
    """The raw definitions of HTCondor configuration files read in order: `NAME = value`
    (names are case-insensitive, kept upper-case), comments and blank lines skipped,
    a later definition replacing an earlier one; a definition that refers to its own
    name takes the earlier value in (as `DAEMON_LIST = $(DAEMON_LIST), STARTD` does).
    Anything else (metaknobs, `include`, conditionals) is refused: dodas writes none."""
    defs: dict[str, str] = {}
    for text in texts:
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$", s)
            assert m, f"line {n} is not a macro definition: {line!r}"
            name, value = m[1].upper(), m[2].strip()
            value = _MACRO.sub(lambda r: defs.get(name, "") if r[1].upper() == name else r[0], value)
            defs[name] = value
    return defs


def expand(defs: dict[str, str], name: str, depth: int = 0) -> str:
    """A name's value with every $(NAME) expanded (an undefined one is empty, as in HTCondor)."""
    assert depth < 20, f"recursive definition of {name}"
    return _MACRO.sub(lambda r: expand(defs, r[1].upper(), depth + 1), defs.get(name.upper(), ""))


def condor_param(config_dir: Path, names: list[str], tmp_path: Path) -> dict[str, str | None]:
    """The same names as HTCondor's own configuration reader gives them (htcondor2.param,
    the library condor_config_val uses), over the same files."""
    top = tmp_path / f"condor_config-{config_dir.parent.name}"
    top.write_text(f"LOCAL_CONFIG_DIR = {config_dir}\n")
    code = ("import json, sys, htcondor2 as h; "
            "print(json.dumps({n: h.param.get(n) for n in sys.argv[1:]}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDOR_", "_CONDOR_"))}
    r = subprocess.run([sys.executable, "-c", code, *names], env={**env, "CONDOR_CONFIG": str(top)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# -- the pool's tokens, checked independently of dodas's implementation ----------------------------
def verify_token(token: str, key_file: bytes) -> dict[str, Any]:
    """The token's claims if it verifies as HTCondor verifies a POOL token: the key file
    unscrambled (XOR 0xdeadbeef), doubled, HKDF-SHA256(salt "htcondor", info "master jwt")."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from joserfc import jwt
    from joserfc.jwk import OctKey

    pattern = bytes.fromhex("deadbeef")
    key = bytes(b ^ pattern[i % 4] for i, b in enumerate(key_file))
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"htcondor", info=b"master jwt").derive(key + key)
    decoded = jwt.decode(token, OctKey.import_key(derived), algorithms=["HS256"])
    assert decoded.header["kid"] == "POOL"
    return dict(decoded.claims)


def load_token_module():
    import importlib.util
    path = CONFIGURE_DIR / "roles" / "htcondor_config" / "filter_plugins" / "htcondor_idtoken.py"
    spec = importlib.util.spec_from_file_location("htcondor_idtoken", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


# -- running the real playbooks in render-only mode --------------------------------------------------
def run_playbook(playbook: str, variables: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """ansible-playbook (through ansible-runner, as dodas runs it) on this machine with the
    variables dodas gives the operation: what the play reported (`dodas_report`), how many
    tasks changed something, and everything it printed (to look for leaked secrets)."""
    import ansible_runner

    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    run_dir.mkdir(mode=0o700)
    env = {"ANSIBLE_LIBRARY": str(CONFIGURE_DIR / "library"), "ANSIBLE_ROLES_PATH": str(CONFIGURE_DIR / "roles"),
           "ANSIBLE_FILTER_PLUGINS": str(CONFIGURE_DIR / "filter_plugins"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")}
    r = ansible_runner.run(private_data_dir=str(run_dir), quiet=True,
                           playbook=str(CONFIGURE_DIR / "playbooks" / "htcondor" / playbook),
                           inventory={"all": {"hosts": {"h1": {"ansible_connection": "local",
                                                               "ansible_python_interpreter": sys.executable}}}},
                           extravars=variables, envvars=env)
    raw = r.stdout.read()
    assert r.rc == 0, raw[-6000:]
    out: dict[str, Any] = {"_raw": raw, "changed": sum((r.stats or {}).get("changed", {}).values()),
                           "changed_tasks": [], "report": None}
    for e in r.events:
        data = e.get("event_data", {})
        if e.get("event") == "runner_on_ok":
            res = data.get("res", {})
            if data.get("task") == "dodas_report":
                out["report"] = res.get("ansible_facts", {}).get("dodas_report")
            if res.get("changed"):
                out["changed_tasks"].append(data.get("task"))
        raw_event = json.dumps(e, default=str)
        out["_raw"] += raw_event
    # everything ansible-runner kept on disk too
    for f in run_dir.rglob("*"):
        if f.is_file() and f.name != "extravars":
            out["_raw"] += f.read_text(errors="replace")
    return out


def reported(report: dict[str, Any]) -> dict[str, Any]:
    """What the play reported to dodas (its `dodas_report` fact)."""
    assert report["report"] is not None, "no dodas_report"
    return report["report"]


class Pool:
    """htcondor.yaml planned, its operations' variables made by the engine's own RunContext
    for two machines (the pool's master, one execute node), and the three playbooks run
    in render-only mode, each machine's /etc/condor being a directory of its own."""

    def __init__(self, tmp_path: Path, inputs: list[str] | None = None, deployment_id: str = "dep-1") -> None:
        from dodas import services

        self.tmp = tmp_path
        self.plan = services.plan(str(POOL), inputs or [])
        model = self.plan.model
        self.ctx = RunContext(model, deployment_id, "pool1")
        self.machines = {"pool_master": Machine("vm-0", "203.0.113.5", CM_ADDRESS, ssh_user="cloudadm"),
                         "execute_hosts": Machine("vm-1", None, WN_ADDRESS, ssh_user="cloudadm")}
        for name, m in self.machines.items():
            self.ctx.machines[Instance(name, 0)] = m
        for inst in (Instance("central_manager", 0),):
            self.ctx.ensure_secrets(inst)
        self.etc = {name: tmp_path / name / "etc-condor" for name in self.machines}
        for d in self.etc.values():
            (d / "config.d").mkdir(parents=True)
        self.reports: dict[str, dict[str, Any]] = {}

    @property
    def signing_key(self) -> str:
        return self.ctx.secrets[Instance("central_manager", 0)]["signing_key"]

    def variables(self, node: str) -> dict[str, Any]:
        n = self.plan.model.nodes[node]
        inst = Instance(node, 0)
        out = self.ctx.variables(inst, n, n.operations["configure"].inputs)
        host = self.plan.model.host_compute(node)
        out.update({k: v for k, v in Host("h1", Instance(host, 0), self.machines[host]).inventory_vars().items()
                    if k.startswith("dodas_")})
        out.update(dodas_target="all", htcondor_render_only=True, htcondor_config_dir=str(self.etc[host]),
                   htcondor_config_owner=_user())
        return json.loads(json.dumps(out, default=str))

    def run(self, node: str) -> dict[str, Any]:
        report = run_playbook(self.plan.model.nodes[node].operations["configure"].implementation.rsplit("/", 1)[1],
                              self.variables(node), self.tmp)
        self.reports[node] = report
        if node == "central_manager":   # what the engine keeps of the central manager's report
            self.ctx.attributes[Instance(node, 0)] = reported(report)
        return report

    def run_all(self) -> Pool:
        for node in ("central_manager", "schedd", "startd"):
            self.run(node)
        return self

    def config(self, host: str) -> dict[str, str]:
        files = sorted((self.etc[host] / "config.d").glob("*.conf"))
        return parse_config([f.read_text() for f in files])


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


# -- the catalogue ------------------------------------------------------------------------------
def ssh_provider(home: Path) -> None:
    """A pool of three existing hosts (never contacted by plan)."""
    f = home / "config" / "providers.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    hosts = [{"address": f"192.0.2.{10 + i}", "user": "cloudadm", "key": "/dev/null", "num_cpus": 4,
              "mem_mib": 8192} for i in range(3)]
    f.write_text(yaml.safe_dump({"providers": [{"name": "lab", "type": "ssh", "rank": 1, "hosts": hosts}]}))


# -- the roles' configuration, rendered by the real playbooks ---------------------------------------
SEC_METHODS = ("SEC_DEFAULT_AUTHENTICATION_METHODS", "SEC_CLIENT_AUTHENTICATION_METHODS",
               "SEC_DAEMON_AUTHENTICATION_METHODS", "SEC_NEGOTIATOR_AUTHENTICATION_METHODS")


def check_security(defs: dict[str, str], trust_domain: str) -> None:
    """What a shared pool needs: every connection authenticated with FS or IDTOKENS only,
    encrypted and integrity-checked; authorizations only for authenticated identities of
    the pool's own trust domain; nothing anonymous, no host-based trust."""
    assert expand(defs, "TRUST_DOMAIN") == trust_domain
    assert expand(defs, "UID_DOMAIN") == trust_domain
    for knob in ("SEC_DEFAULT_AUTHENTICATION", "SEC_DAEMON_AUTHENTICATION", "SEC_NEGOTIATOR_AUTHENTICATION",
                 "SEC_READ_AUTHENTICATION", "SEC_DEFAULT_ENCRYPTION", "SEC_DEFAULT_INTEGRITY"):
        assert expand(defs, knob) == "REQUIRED", knob
    for knob in SEC_METHODS:
        methods = {m.strip() for m in expand(defs, knob).split(",")}
        assert "IDTOKENS" in methods and methods <= {"FS", "IDTOKENS"}, (knob, methods)
    for name in defs:
        if name.startswith("ALLOW_"):
            for who in (w.strip() for w in expand(defs, name).split(",")):
                user, _, domain = who.partition("@")
                if domain == "matchsession":  # a claim's own session, known to its schedd and startd alone
                    assert user in ("submit-side", "execute-side") and name in ("ALLOW_WRITE", "ALLOW_DAEMON"), who
                    continue
                assert domain in (trust_domain, "password"), (name, who)
                assert user and "/" not in who, (name, who)   # identities, never hosts or networks
    for name in ("DENY_READ", "DENY_WRITE"):
        assert {"anonymous@*", "unauthenticated@*"} <= {w.strip() for w in expand(defs, name).split(",")}
    assert expand(defs, "SEC_TOKEN_POOL_SIGNING_KEY_FILE").endswith("/passwords.d/POOL")
