#!/usr/bin/python
"""Ansible module: run a long-lived service detached from Ansible, and stop it.

dodas services (Spark master and workers, JupyterLab) must outlive both the
ansible-playbook run and the dodas process, without needing root or systemd,
so that the same roles work on the local provider and on any SSH host. The
service runs in a session of its own; its pid and process group are recorded in
`<instance_dir>/services/<name>.json`, which is what `stopped` and `dodas status`
use. Every process gets DODAS_MACHINE=<instance_dir> in its environment, so that
a machine's processes can be found even if that file is lost.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dodas_service
short_description: Start or stop a detached, recorded service for dodas
options:
  name: {type: str, required: true}
  state: {type: str, choices: [started, stopped], default: started}
  instance_dir: {type: path, required: true}
  command: {type: list, elements: str}
  env: {type: dict, default: {}}
  secret_env: {type: dict, default: {}, no_log: true}
  restart: {type: bool, default: false}
  wait_port: {type: int}
  wait_host: {type: str}
  wait_url: {type: str}
  timeout: {type: int, default: 180}
"""


#: The only variables a service inherits from the host: where it runs and as whom.
#: Everything else (PATH, JAVA_HOME, ...) is given by the play, so that nothing of
#: dodas's own environment (DODAS_DB_URL, AWS_*, OS_*, tokens) or of Ansible's
#: reaches a service, its children (Spark executors, notebook kernels) or its jobs.
INHERITED = ("HOME", "USER", "LOGNAME", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def service_env(given, secret, machine_dir):
    """The complete environment of a service: explicit, never the module's own."""
    env = {k: os.environ[k] for k in INHERITED if os.environ.get(k)}
    env.update({"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    env.update({k: str(v) for k, v in given.items()})
    env.update({k: str(v) for k, v in secret.items()})
    env["DODAS_MACHINE"] = machine_dir  # finds the machine's processes (see dodas.procs)
    return env


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _tail(path, n=25):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 8192))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


def _stop(record, grace=15.0):
    pgid, pid = record.get("pgid"), record.get("pid")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (OSError, TypeError):
            pass
        deadline = time.time() + (grace if sig == signal.SIGTERM else 5)
        while time.time() < deadline:
            if not _alive(pid) and not _group_alive(pgid):
                return
            time.sleep(0.1)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (OSError, TypeError):
        return False


def _ready(p):
    if p.get("wait_url"):
        try:
            with urllib.request.urlopen(p["wait_url"], timeout=2) as resp:
                return resp.status < 500
        except Exception:  # noqa: BLE001 - not yet
            return False
    if p.get("wait_port"):
        try:
            with socket.create_connection((p.get("wait_host") or "127.0.0.1", p["wait_port"]), timeout=2):
                return True
        except OSError:
            return False
    return True


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["started", "stopped"], default="started"),
        instance_dir=dict(type="path", required=True),
        command=dict(type="list", elements="str"),
        env=dict(type="dict", default={}),
        secret_env=dict(type="dict", default={}, no_log=True),
        restart=dict(type="bool", default=False),
        wait_port=dict(type="int"), wait_host=dict(type="str"), wait_url=dict(type="str"),
        timeout=dict(type="int", default=180),
    ), required_if=[("state", "started", ["command"])])
    p = module.params
    sdir = os.path.join(p["instance_dir"], "services")
    os.makedirs(sdir, exist_ok=True)
    rec_file = os.path.join(sdir, p["name"] + ".json")
    log = os.path.join(sdir, p["name"] + ".log")
    record = None
    if os.path.exists(rec_file):
        try:
            with open(rec_file) as fh:
                record = json.load(fh)
        except ValueError:
            record = None
    running = bool(record and _alive(record["pid"]))

    if p["state"] == "stopped":
        if record:
            _stop(record)
            os.unlink(rec_file)
        module.exit_json(changed=running, name=p["name"])

    if running and not p["restart"]:
        module.exit_json(changed=False, pid=record["pid"], pgid=record["pgid"], log=log, name=p["name"])
    if record:
        _stop(record)
        os.unlink(rec_file)

    env = service_env(p["env"], p["secret_env"], os.path.dirname(os.path.normpath(p["instance_dir"])))
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(p["command"], cwd=p["instance_dir"], env=env, stdin=devnull, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    record = {"pid": proc.pid, "pgid": proc.pid, "started_at": time.time(), "log": log,
              "command": p["command"][0]}
    with open(rec_file + ".part", "w") as fh:
        json.dump(record, fh)
    os.replace(rec_file + ".part", rec_file)

    deadline = time.time() + p["timeout"]
    while True:
        if proc.poll() is not None:
            os.unlink(rec_file)
            module.fail_json(msg="%s exited with status %s right after start; last lines of %s:\n%s"
                             % (p["name"], proc.returncode, log, _tail(log)), log=log)
        if _ready(p):
            break
        if time.time() > deadline:
            _stop(record)
            os.unlink(rec_file)
            module.fail_json(msg="%s did not become ready within %ss; last lines of %s:\n%s"
                             % (p["name"], p["timeout"], log, _tail(log)), log=log)
        time.sleep(0.2)
    time.sleep(0.3)  # a service that dies right after binding its port is not started
    if proc.poll() is not None:
        os.unlink(rec_file)
        module.fail_json(msg="%s exited with status %s right after start; last lines of %s:\n%s"
                         % (p["name"], proc.returncode, log, _tail(log)), log=log)
    module.exit_json(changed=True, pid=proc.pid, pgid=proc.pid, log=log, name=p["name"])


if __name__ == "__main__":
    main()
