"""The development issuer's signing keys. NOT FOR PRODUCTION.

One RSA key signs; the key set published at /jwks also keeps the keys it
replaced (`rotate`), as real issuers do during a rollover, so that tokens
signed just before a rotation still validate. A key given with `--key-file`
must be a PEM private key readable by its owner only (0600): a key others can
read signs tokens anyone could forge.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

ALG = "RS256"


def new_pem() -> bytes:
    """A fresh 2048-bit RSA private key, PEM (PKCS#8)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path: Path, pem: bytes) -> None:
    """Write a private key 0600 from its creation (never briefly readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def read_private(path: Path) -> bytes:
    """The PEM in `path`, refused when group or others may read it."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"{path}: the key file is readable by others (mode {stat.S_IMODE(mode):o}): "
                             f"chmod 600 it")
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the key file: {exc.strerror}") from None


def _import(pem: bytes) -> RSAKey:
    try:
        key = RSAKey.import_key(pem, {"use": "sig", "alg": ALG})
    except Exception as exc:  # noqa: BLE001 - any parse failure is "not an RSA private key"
        raise ValueError(f"the key is not an RSA private key in PEM ({type(exc).__name__})") from None
    if not key.is_private:
        raise ValueError("the key file holds a public key: the issuer needs the private key to sign")
    key.ensure_kid()
    return key


class SigningKeys:
    """The current signing key and the published set (current plus retired)."""

    def __init__(self, pem: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self.current = _import(pem or new_pem())
        self._published: list[RSAKey] = [self.current]

    @classmethod
    def from_file(cls, path: Path | None) -> SigningKeys:
        """Load `path` (0600), create it when missing; without a path, a key for this run only."""
        if path is None:
            return cls()
        if not path.exists():
            write_private(path, new_pem())
        return cls(read_private(path))

    def rotate(self, pem: bytes | None = None) -> str:
        """Sign with a new key from now on; the old one stays published. Returns the new kid."""
        key = _import(pem or new_pem())
        with self._lock:
            self._published = [key, *self._published][:3]
            self.current = key
        return str(key.kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self._published]}

    def public(self, kid: str | None) -> RSAKey | None:
        return next((k for k in self._published if k.kid == kid), None)
