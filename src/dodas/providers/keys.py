"""Per-deployment SSH key pairs for cloud machines.

The private key is made here and never leaves this machine: clouds get only the
public half. It is kept in the data directory with mode 0600 (beside the state
database, which is 0600 too), never printed, and removed with the deployment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dodas import paths


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_openssh: str


def private_key_path(dep_id: str) -> Path:
    return paths.data_dir() / "keys" / dep_id


def ensure(dep_id: str) -> KeyPair:
    """The deployment's key pair, made on first use (RSA 3072: every cloud takes it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    priv = private_key_path(dep_id)
    pub = priv.with_suffix(".pub")
    if not priv.exists():
        priv.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        fd = os.open(priv.with_suffix(".part"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        os.replace(priv.with_suffix(".part"), priv)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        pub.write_text(line.decode() + f" dodas-{dep_id}\n")
    return KeyPair(priv, pub.read_text().strip())


def remove(dep_id: str) -> None:
    for p in (private_key_path(dep_id), private_key_path(dep_id).with_suffix(".pub")):
        p.unlink(missing_ok=True)


def cloud_init(deployment_name: str) -> str:
    """User data for every cloud machine: Python for Ansible, and nothing secret."""
    return ("#cloud-config\n"
            f"# dodas deployment {deployment_name}\n"
            "package_update: true\n"
            "packages: [python3, python3-venv]\n")
