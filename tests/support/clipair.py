"""The same `dodas` command run twice on one deployment: through a real `dodas
server` (DODAS_SERVER, a user's token, a client home with no state of its own)
and locally on the server's own home (its state read directly), to compare
what each prints, in text and JSON, and how each exits."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.issuer import token
from support.server import TIMEOUT_S, Server, clean_env
from support.zygote import run_dodas


@dataclass
class Pair:
    server: Server
    #: the client's directory: its DODAS_HOME when remote, the working directory of both
    client: Path
    user: str = "alice"
    #: the remote runs' DODAS_HOME (default: the client's directory)
    remote_home: Path | None = None

    def env(self, remote: bool) -> dict[str, str]:
        env = clean_env((self.remote_home or self.client) if remote else self.server.home)
        if remote:
            env["DODAS_SERVER"] = self.server.url
            env["DODAS_TOKEN"] = token(self.server.issuer, self.user)
        return env

    def run(self, remote: bool, *args: str) -> subprocess.CompletedProcess:
        return run_dodas(list(args), env=self.env(remote), cwd=str(self.client), timeout=TIMEOUT_S * 4)

    def remote(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(True, *args)

    def local(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(False, *args)

    def popen(self, remote: bool, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dodas", *args], env=self.env(remote), cwd=self.client,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def shown(r: subprocess.CompletedProcess) -> tuple[int, str, str]:
    """What a user sees of a run: its exit code, its output and its errors."""
    return r.returncode, r.stdout, r.stderr
