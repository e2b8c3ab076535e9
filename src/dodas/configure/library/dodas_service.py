#!/usr/bin/python
"""Ansible module: run a long-lived service detached from Ansible, and stop it.

dodas services (Spark master and workers, JupyterLab) must outlive both the
ansible-playbook run and the dodas process, without needing root or systemd,
so that the same roles work on the local provider and on any SSH host. The
service runs in a session of its own; its pid, start time and process group are
recorded in `<instance_dir>/services/<name>.json`, which is what `stopped` and
`dodas status` use. Every process gets DODAS_MACHINE=<machine dir> in its
environment, so that a machine's processes can be found even if that file is lost.

A pid alone is not a process: once the service is gone the kernel may give its
pid (and so its process group id) to an unrelated program. The start time (field
22 of /proc/PID/stat, clock ticks since boot: hosts need not have psutil) is kept
with the pid, and nothing is taken for the service, or signalled, unless both
match. A group whose leader is gone is stopped member by member, and only members
that carry this machine's DODAS_MACHINE marker.

Two runs may reach the same service at once: a dodas killed mid-run leaves its
module running on the host (its SSH master outlives it), and the next `up`
configures the instance again. Each service's start or stop therefore holds a
lock on the host (flock on `services/<name>.lock`, dropped by the kernel when
the module ends however it ends): the second waits, then finds the service the
first started and keeps it, instead of both starting one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse
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
  ports: {type: list, elements: int, default: []}
  timeout: {type: int, default: 180}
  unprivileged:
    type: bool
    default: false
    description: >
      For programs that refuse to run as root (xrootd, cmsd): when the module runs
      as root, the service runs in a user namespace of its own as an ordinary uid
      mapped to root's (util-linux unshare), so it keeps the files of the user who
      deployed it and has no capability outside that namespace.
"""


#: The only variables a service inherits from the host: where it runs and as whom.
#: Everything else (PATH, JAVA_HOME, ...) is given by the play, so that nothing of
#: dodas's own environment (DODAS_DB_URL, AWS_*, OS_*, tokens) or of Ansible's
#: reaches a service, its children (Spark executors, notebook kernels) or its jobs.
INHERITED = ("HOME", "USER", "LOGNAME", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
UNPRIVILEGED_ID = 1000  # the uid and gid a root-refusing service sees itself as


def service_env(given, secret, machine_dir):
    """The complete environment of a service: explicit, never the module's own."""
    env = {k: os.environ[k] for k in INHERITED if os.environ.get(k)}
    env.update({"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"})
    env.update({k: str(v) for k, v in given.items()})
    env.update({k: str(v) for k, v in secret.items()})
    env["DODAS_MACHINE"] = machine_dir  # finds the machine's processes (see dodas.procs)
    return env


def _stat(pid):
    """(state, pgid, start time) of a process from /proc/PID/stat, or None."""
    try:
        with open("/proc/%d/stat" % int(pid)) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2]), fields[19]
    except (OSError, IndexError, ValueError, TypeError):
        return None


def _known(start):
    """Whether a recorded start time is there (records written before it was kept have none)."""
    return bool(start) and str(start) not in ("?", "None", "none", "null")


def _alive(pid, start=None):
    """Whether the process runs and, when its start time is recorded, is the same one."""
    st = _stat(pid)
    if st is None:
        return False
    return st[0] not in ("Z", "X") and (not _known(start) or st[2] == str(start))


def _signal(pid, start, sig):
    """Send `sig` to pid only if it is still the process that started at `start`.

    Through a pidfd where the kernel has them: the descriptor is opened before the
    start time is checked, so the signal cannot reach a process that took the pid
    in between."""
    fd = None
    pidfd_open = getattr(os, "pidfd_open", None)
    send = getattr(signal, "pidfd_send_signal", None)
    if pidfd_open and send:
        try:
            fd = pidfd_open(pid)
        except OSError:
            fd = None
    try:
        if not _alive(pid, start):
            return
        if fd is not None:
            send(fd, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)


def _marked_members(pgid, mark):
    """(pid, start) of the live processes of group `pgid` that carry `mark` in their environment."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        st = _stat(entry)
        if st is None or st[1] != pgid or st[0] in ("Z", "X"):
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if mark in env:
            out.append((int(entry), st[2]))
    return out


def _tail(path, n=25):
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 8192))
            return "\n".join(fh.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


def _stop(record, mark, grace=15.0):
    """Stop a recorded service and its process group, by identity.

    While the leader (a session leader, which cannot leave its group) is the
    recorded process, the group id is still the service's and the whole group is
    signalled. Once the leader is gone the group id may be reused by anyone: then
    only members carrying this machine's marker are signalled, one by one."""
    try:
        pid, pgid = int(record.get("pid")), int(record.get("pgid"))
    except (TypeError, ValueError):
        return
    start = record.get("start")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_group(pid, pgid, start, mark, sig)
        deadline = time.time() + (grace if sig == signal.SIGTERM else 5)
        while time.time() < deadline:
            if not _alive(pid, start) and not _marked_members(pgid, mark):
                return
            time.sleep(0.1)


def _signal_group(pid, pgid, start, mark, sig):
    st = _stat(pid)
    if pid == pgid and _alive(pid, start) and st is not None and st[1] == pgid:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass
        return
    for member, member_start in _marked_members(pgid, mark):
        _signal(member, member_start, sig)


def _listen_address(hexaddr):
    """The address of a /proc/net/tcp{,6} entry ("0100007F" -> "127.0.0.1"); an IPv4
    address on an IPv6 socket (Java listens so) as the IPv4 address it is."""
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:])
    return socket.inet_ntop(socket.AF_INET6, raw)


def _listening_inodes(address, port):
    """The socket inodes listening on (address, port) or on every address at that port."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "0A":
                continue
            hexaddr, hexport = parts[1].rsplit(":", 1)
            if int(hexport, 16) == port and _listen_address(hexaddr) in (address, "0.0.0.0", "::"):
                inodes.add("socket:[%s]" % parts[9])
    return inodes


def _port_user(inodes):
    """"pid N (COMMAND)" of a process of this user holding one of the sockets, when /proc tells."""
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % entry)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (entry, fd)) in inodes:
                    with open("/proc/%s/comm" % entry) as fh:  # its name only: a command line may hold secrets
                        return "pid %s (%s)" % (entry, fh.read().strip())
            except OSError:
                continue
    return None


def _ports_taken(host, ports):
    """A message for each port of `ports` that another program already holds on `host`."""
    problems = []
    for port in ports:
        port = int(port)
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        except OSError as exc:
            problems.append("port %d on %s cannot be checked: %s" % (port, host, exc))
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT of our own is no conflict
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                continue  # not an address of this host (a NAT'd public one): cannot be checked here
            if exc.errno == errno.EADDRINUSE:
                listening = _listening_inodes(sockaddr[0], port)
                if not listening and os.path.exists("/proc/net/tcp"):
                    continue  # only connections of a service just stopped linger there: no listener
                who = _port_user(listening)
                problems.append("port %d on %s is already in use by another program%s"
                                % (port, host, " (%s)" % who if who else ""))
            else:
                problems.append("port %d on %s cannot be used: %s" % (port, host, exc.strerror))
        finally:
            sock.close()
    return problems


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


def _service_host(p):
    """Where the service listens: wait_host, else wait_url's host, else every address."""
    if p.get("wait_host"):
        return p["wait_host"]
    if p.get("wait_url"):
        host = urllib.parse.urlsplit(p["wait_url"]).hostname
        if host:
            return host
    return "0.0.0.0"


def _write(rec_file, record):
    with open(rec_file + ".part", "w") as fh:
        json.dump(record, fh)
    os.replace(rec_file + ".part", rec_file)


class _Waited(Exception):
    pass


def _lock(module, path, timeout):
    """Hold the service's lock for the rest of this module run (the kernel drops
    it when the process ends), waiting up to `timeout` seconds for another run."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def expired(_signum, _frame):
        raise _Waited()
    before = signal.signal(signal.SIGALRM, expired)
    signal.alarm(max(1, int(timeout)))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except _Waited:
        module.fail_json(msg="another run has been starting or stopping this service for %ss (it holds %s): "
                             "let it end, then run again" % (int(timeout), path))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    return fd


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
        ports=dict(type="list", elements="int", default=[]),
        timeout=dict(type="int", default=180),
        unprivileged=dict(type="bool", default=False),
    ), required_if=[("state", "started", ["command"])])
    p = module.params
    sdir = os.path.join(p["instance_dir"], "services")
    os.makedirs(sdir, exist_ok=True)
    rec_file = os.path.join(sdir, p["name"] + ".json")
    _lock(module, os.path.join(sdir, p["name"] + ".lock"), p["timeout"] + 120)
    log = os.path.join(sdir, p["name"] + ".log")
    machine_dir = os.path.dirname(os.path.normpath(p["instance_dir"]))
    mark = ("DODAS_MACHINE=" + machine_dir).encode()
    record = None
    if os.path.exists(rec_file):
        try:
            with open(rec_file) as fh:
                record = json.load(fh)
        except ValueError:
            record = None
    running = bool(record and _alive(record.get("pid"), record.get("start")))

    if p["state"] == "stopped":
        if record:
            _stop(record, mark)
            os.unlink(rec_file)
        module.exit_json(changed=running, name=p["name"])

    if running and not p["restart"]:
        module.exit_json(changed=False, pid=record["pid"], pgid=record["pgid"], start=record.get("start") or "",
                         log=log, name=p["name"])
    if record:
        _stop(record, mark)
        os.unlink(rec_file)

    host = _service_host(p)
    taken = _ports_taken(host, p["ports"])
    if taken:
        module.fail_json(msg="%s cannot start: %s; stop that program or change the port"
                         % (p["name"], "; ".join(taken)))

    env = service_env(p["env"], p["secret_env"], machine_dir)
    command = list(p["command"])
    if p["unprivileged"] and os.geteuid() == 0:
        # unshare execs the program: the recorded pid is the service's own
        command = ["unshare", "--user", "--map-user=%d" % UNPRIVILEGED_ID, "--map-group=%d" % UNPRIVILEGED_ID,
                   "--"] + command
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(command, cwd=p["instance_dir"], env=env, stdin=devnull, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    # the start time is read while the child is ours and unreaped: its pid cannot have been reused yet
    start = _stat(proc.pid)
    record = {"pid": proc.pid, "pgid": proc.pid, "start": start[2] if start else "", "started_at": time.time(),
              "log": log, "command": p["command"][0]}
    _write(rec_file, record)

    deadline = time.time() + p["timeout"]
    while True:
        if proc.poll() is not None:
            os.unlink(rec_file)
            module.fail_json(msg="%s exited with status %s right after start; last lines of %s:\n%s"
                             % (p["name"], proc.returncode, log, _tail(log)), log=log)
        if _ready(p):
            break
        if time.time() > deadline:
            _stop(record, mark)
            os.unlink(rec_file)
            module.fail_json(msg="%s did not become ready within %ss; last lines of %s:\n%s"
                             % (p["name"], p["timeout"], log, _tail(log)), log=log)
        time.sleep(0.2)
    time.sleep(0.3)  # a service that dies right after binding its port is not started
    if proc.poll() is not None:
        os.unlink(rec_file)
        module.fail_json(msg="%s exited with status %s right after start; last lines of %s:\n%s"
                         % (p["name"], proc.returncode, log, _tail(log)), log=log)
    module.exit_json(changed=True, pid=proc.pid, pgid=proc.pid, start=record["start"], log=log, name=p["name"])


if __name__ == "__main__":
    main()
