"""How dodas reaches machines over SSH: directly, or through a bastion.

One home for what every SSH connection dodas makes shares (Ansible's, the ssh
provider's, the engine's waits): dodas's own known_hosts file (host keys learnt on
first contact, checked afterwards, forgotten when a cloud machine is deleted), the
options, and the jump through a bastion.

A jump is written as an ssh_config `Host` block in a private file and named with
`ProxyJump`: ssh hands `-F FILE` (never `-o` options) to the process it starts for
the first hop, so only a config file makes the bastion hop check its host key
against dodas's file and log in with the right key, as the second hop does.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dodas import paths


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in."""

    address: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None

    @property
    def alias(self) -> str:
        """A stable ssh_config name for this endpoint used as a jump host."""
        digest = hashlib.sha256(f"{self.user}@{self.address}:{self.port}".encode()).hexdigest()[:12]
        return f"dodas-jump-{digest}"

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "user": self.user, "key_file": self.key_file}

    @classmethod
    def from_options(cls, where: str, options: Any) -> Endpoint:
        """From a provider option such as `bastion: {address, port, user, key}`."""
        if not isinstance(options, dict) or not options.get("address"):
            raise ValueError(f"{where} needs an address (and optionally port, user, key)")
        key = options.get("key") or options.get("key_file")
        try:
            port = int(options.get("port", 22))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: port must be a number, not {options.get('port')!r}") from None
        return cls(str(options["address"]), port, str(options["user"]) if options.get("user") else None,
                   os.path.expanduser(str(key)) if key else None)


def known_hosts_file() -> Path:
    """dodas's own known_hosts: never the user's, so that what dodas learns about
    machines it made (and forgets when it deletes them) stays apart."""
    f = paths.data_dir() / "ssh" / "known_hosts"
    f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f


def common_options() -> list[str]:
    """Options of every connection and hop: no prompts, host keys learnt on first
    contact into dodas's file and checked from then on."""
    return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known_hosts_file()}", "-o", "ConnectTimeout=10"]


def jump_config(jumps: list[Endpoint]) -> str:
    """The ssh_config text that defines each jump host by its alias."""
    blocks = []
    for j in dict.fromkeys(jumps):
        lines = [f"Host {j.alias}", f"  HostName {j.address}", f"  Port {j.port}", "  BatchMode yes",
                 "  StrictHostKeyChecking accept-new", f"  UserKnownHostsFile {known_hosts_file()}",
                 "  ConnectTimeout 10"]
        if j.user:
            lines.append(f"  User {j.user}")
        if j.key_file:
            lines += [f"  IdentityFile {j.key_file}", "  IdentitiesOnly yes"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_jump_config(directory: Path, jumps: list[Endpoint]) -> Path:
    """Write the jump hosts' ssh_config (0600) into a private directory."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = jump_config(jumps)
    # named by content and replaced atomically: waits side by side share it safely
    f = directory / f"ssh_config-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if not f.exists():
        tmp = directory / f".{f.name}.{os.getpid()}.{id(text)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, f)
    return f


def jump_options(config: Path, jump: Endpoint) -> list[str]:
    """What a connection through `jump` adds to its command line."""
    return ["-F", str(config), "-o", f"ProxyJump={jump.alias}"]


def ssh_command(target: Endpoint, jump: Endpoint | None = None, config: Path | None = None) -> list[str]:
    """`ssh ... user@address` for `target`, through `jump` (whose block `config` holds)."""
    args = ["ssh", *common_options(), "-p", str(target.port)]
    if jump is not None:
        if config is None:
            raise ValueError("a jump needs the ssh_config that defines it")
        args += jump_options(config, jump)
    if target.key_file:
        args += ["-i", target.key_file, "-o", "IdentitiesOnly=yes"]
    return [*args, f"{target.user}@{target.address}" if target.user else target.address]


def login(target: Endpoint, jump: Endpoint | None, workdir: Path,
          timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `true` on the target (through the jump): did the login work?"""
    config = write_jump_config(workdir, [jump]) if jump is not None else None
    return subprocess.run([*ssh_command(target, jump, config), "true"], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


async def wait_for_login(target: Endpoint, jump: Endpoint | None, workdir: Path, timeout: float) -> str | None:
    """Log in until it works (a new machine's sshd starts late, cloud-init installs
    the key later still). None when it worked, else the last reason, after `timeout`."""
    deadline = time.monotonic() + timeout
    reason = "no answer"
    while True:
        try:
            r = await asyncio.to_thread(login, target, jump, workdir, 30)
            if r.returncode == 0:
                return None
            lines = [ln.strip() for ln in r.stderr.strip().splitlines() if ln.strip()]
            refused = host_key_problem(lines)
            if refused:  # a key that differs from the one learnt is never waited out
                return refused
            reason = lines[-1] if lines else f"ssh exited with {r.returncode}"
        except subprocess.TimeoutExpired:
            reason = "the login did not finish within 30s"
        if time.monotonic() >= deadline:
            return reason
        await asyncio.sleep(2)


def host_key_problem(stderr_lines: list[str]) -> str | None:
    """ssh's refusal of a host whose key differs from the one dodas learnt (on
    either hop), as one sentence naming the host; None if that is not the error."""
    if not any("host key verification failed" in ln.lower() or "identification has changed" in ln.lower()
               for ln in stderr_lines):
        return None
    named = next((ln for ln in stderr_lines if ln.lower().startswith("host key for ")), None)
    offending = next((ln for ln in stderr_lines if "offending" in ln.lower()), None)
    detail = named or next((ln for ln in stderr_lines if "host key" in ln.lower()), "host key verification failed")
    return (f"host key verification failed: {detail.rstrip('.')}" + (f" ({offending.rstrip('.')})" if offending
                                                                      else "")
            + "; if the machine was really replaced, remove its line from dodas's known_hosts "
            f"({known_hosts_file()})")


def forget_host_keys(addresses: list[tuple[str, int]]) -> None:
    """Remove the host keys of deleted machines from dodas's known_hosts: a cloud
    gives their addresses (a floating IP) to other machines next, whose keys differ."""
    f = known_hosts_file()
    if not f.exists():
        return
    with open(f.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for address, port in dict.fromkeys(addresses):
            if not address:
                continue
            name = address if port == 22 else f"[{address}]:{port}"
            subprocess.run(["ssh-keygen", "-R", name, "-f", str(f)], capture_output=True, stdin=subprocess.DEVNULL)
        old = f.with_name(f.name + ".old")  # ssh-keygen's backup: it would keep the keys
        if old.exists():
            old.unlink()
