"""`dodas` commands forked from a warm interpreter: the real entry point, without paying
Python's start and dodas's imports again for each of the suite's thousand commands.

A command the tests run to its end (`Dodas.run`, `clipair`, the server tests' client) costs
0.4-0.7 s of CPU before it does anything: the interpreter starts, then imports Typer,
SQLAlchemy's ORM, tosca-parser and Ansible's runner. The zygote is one interpreter per test
worker that has imported those once and then only forks: each command is its own process
(its own pid, environment, working directory, standard streams and exit status), running
`python -m dodas`'s own `__main__` through `runpy`, exiting through the interpreter's normal
exit (threads joined, atexit run, streams flushed), as Android's zygote starts apps. What it
does not give a command is a fresh import: the tests of start-up itself (import rules, the
installed wheel, `python -m dodas` without arguments) start their interpreters by hand.
`DODAS_TEST_FRESH=1` makes every command a fresh interpreter again.

Protocol (a Unix socket of the worker's own): the client sends one JSON line (argv, env,
cwd) with its stdin, stdout and stderr as passed descriptors; the zygote answers the child's
pid, then its exit status (negative for a signal, as `subprocess` says it). A client that
gives up kills the child by its pid."""

from __future__ import annotations

import array
import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

#: What a command imports before it does anything; imported once by the zygote.
WARM = ("dodas.cli.app", "dodas.cli.deploy_cli", "dodas.cli.read_cli", "dodas.services.deploy",
        "dodas.services.planning", "dodas.engine.engine", "dodas.tosca.loader", "dodas.state.store",
        "dodas.providers.local", "dodas.configure.runner", "toscaparser.tosca_template",
        "sqlalchemy.orm", "ansible_runner.interface", "httpx", "rich.console")


def _warm() -> None:
    import importlib

    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:  # an extra not installed: the command imports what it needs itself
            pass
    if threading.active_count() != 1:  # forking a process with threads is not safe
        raise RuntimeError("an import started a thread: the zygote cannot fork safely")
    import gc

    gc.collect()
    gc.freeze()  # the collector never walks (and so never copies) the zygote's objects in a child


def _serve(path: str) -> dict[str, Any]:
    """Accept requests until the worker that started us is gone. Returns only in a forked
    child, with the request it is to run."""
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the wakeup fd
    waiting: dict[int, socket.socket] = {}
    while True:
        ready, _, _ = select.select([listener, wake_r], [], [], 1.0)
        if os.getppid() != parent:  # the worker died: nothing will ask again
            os._exit(0)
        if wake_r in ready:
            os.read(wake_r, 512)
        _reap(waiting)
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        request, fds = _receive(conn)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for other in (listener, conn, *waiting.values()):
                other.close()
            os.close(wake_r)
            os.close(wake_w)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            return request
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        waiting[pid] = conn


def _reap(waiting: dict[int, socket.socket]) -> None:
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            except OSError:
                pass
            conn.close()


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    fds = array.array("i")
    data = b""
    while not data.endswith(b"\n"):
        chunk, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(3 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not chunk:
            break
        data += chunk
    return json.loads(data), list(fds)


def main(path: str) -> None:
    """The zygote's own life: warm up, serve; in each child, become `python -m dodas ARGS`."""
    import runpy

    _warm()
    request = _serve(path)
    _join(request.get("cpuacct"))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["dodas", *request["argv"]]
    runpy.run_module("dodas", run_name="__main__", alter_sys=True)


def _cpuacct() -> str | None:
    """This process's cgroup for CPU accounting (cgroup v1), if the machine has one."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpuacct" in controllers.split(","):
                return path
    except OSError:
        pass
    return None


def _join(group: str | None) -> None:
    """A command is counted where the test that ran it is (support/cpu_account.py moves each
    test file's worker into a cgroup of its own; the zygote stays where it started)."""
    if group and group != _cpuacct():
        try:
            Path(f"/sys/fs/cgroup/cpuacct{group}/cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            pass


class Zygote:
    """The client side: `run` is `subprocess.run([python, -m, dodas, *argv], ...)`."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dodas-zygote-")
        self.path = str(Path(self.dir) / "socket")
        tests = str(Path(__file__).resolve().parent.parent)
        code = f"import sys; sys.path.insert(0, {tests!r}); from support.zygote import main; main({self.path!r})"
        self.log = Path(self.dir) / "log"
        with self.log.open("wb") as log:  # never the worker's own streams: xdist talks over them
            self.proc = subprocess.Popen([sys.executable, "-u", "-c", code], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        atexit.register(self.stop)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _connect(self) -> socket.socket:
        from support.waiting import wait_until

        def attempt() -> socket.socket | None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the zygote exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                return None

        return wait_until(attempt, timeout=120, what="the zygote's socket")

    def run(self, argv: list[str], *, env: dict[str, str], cwd: str | None = None, input: str | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            if input is not None:
                stdin.write(input.encode())
                stdin.seek(0)
            conn = self._connect()
            try:
                request = json.dumps({"argv": argv, "env": env, "cwd": cwd or os.getcwd(),
                                      "cpuacct": _cpuacct()}).encode() + b"\n"
                fds = array.array("i", [stdin.fileno(), out.fileno(), err.fileno()])
                conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
                answers = _Answers(conn)
                pid = answers.next(None)["pid"]
                try:
                    code = answers.next(timeout)["status"]
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    answers.next(None)
                    raise subprocess.TimeoutExpired(["dodas", *argv], timeout or 0) from None
            finally:
                conn.close()
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(["dodas", *argv], code, out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))


class _Answers:
    """The zygote's JSON lines, read with a time bound that can be given up and resumed."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn, self.buf = conn, b""

    def next(self, timeout: float | None) -> dict[str, Any]:
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.conn], [], [], timeout)
            if not ready:
                raise TimeoutError
            chunk = self.conn.recv(4096)
            if not chunk:
                raise RuntimeError("the zygote closed the connection without an answer")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


_zygote: Zygote | None = None
_owner = 0


def run_dodas(argv: list[str], *, env: dict[str, str], cwd: str | None = None, input: str | None = None,
              timeout: float | None = None) -> subprocess.CompletedProcess:
    """`python -m dodas ARGV` run to its end, as `subprocess.run(..., capture_output=True,
    text=True)` would, forked from this worker's zygote (a fresh interpreter with
    DODAS_TEST_FRESH=1)."""
    global _zygote, _owner
    if os.environ.get("DODAS_TEST_FRESH") == "1":
        return subprocess.run([sys.executable, "-m", "dodas", *argv], env=env, cwd=cwd, input=input,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    if _zygote is None or _owner != os.getpid() or _zygote.proc.poll() is not None:
        _zygote, _owner = Zygote(), os.getpid()
    return _zygote.run(argv, env=env, cwd=cwd, input=input, timeout=timeout)


def stop() -> None:
    """Stop this worker's zygote, if it started one."""
    if _zygote is not None and _owner == os.getpid():
        _zygote.stop()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stopped with the session (an xdist worker may be ended soon after it reports)."""
    stop()
