"""HTTPS with client certificates, as TFaaS's clients authenticate (CMS users
send their grid certificate; RFC 3820 proxies are refused by OpenSSL's default
checks). uvicorn verifies the certificate against the client CA but does not put
it in the ASGI scope, so a subclass of its HTTP protocol reads the verified peer
certificate when the connection is made and adds its subject DN to the
connection's `state` (uvicorn copies that into every request's scope).
Certificates are optional at the handshake: clients with a bearer token and no
certificate still connect.

DNs are compared in OpenSSL's slash form (`/DC=ch/DC=cern/OU=Users/CN=alice`),
the form grid users write; RFC 4514 text (`CN=alice,OU=Users,DC=cern,DC=ch`) is
accepted in the allow-list and turned into it."""

from __future__ import annotations

import re
import ssl
import stat
from pathlib import Path
from typing import Any

#: the key of the peer's subject DN in a request's scope["state"]
PEER_DN = "dodas_tls_peer_dn"

#: getpeercert()'s long attribute names, as the slash form writes them
SHORT = {"countryName": "C", "stateOrProvinceName": "ST", "localityName": "L", "organizationName": "O",
         "organizationalUnitName": "OU", "commonName": "CN", "domainComponent": "DC", "emailAddress": "emailAddress",
         "userId": "UID", "serialNumber": "serialNumber"}


class TLSError(RuntimeError):
    """The TLS files cannot be used; the message says which and why."""


def subject_dn(cert: dict[str, Any]) -> str:
    """The slash form of a certificate's subject, as `SSLSocket.getpeercert()` gives it."""
    parts = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            parts.append(f"{SHORT.get(key, key)}={value}")
    return "/" + "/".join(parts)


def normalise_dn(text: str) -> str:
    """A DN as written in the allow-list, in slash form (RFC 4514 text reversed)."""
    text = text.strip()
    if text.startswith("/"):
        return "/" + "/".join(p.strip() for p in text[1:].split("/"))
    parts = [p.strip().replace("\\,", ",") for p in re.split(r"(?<!\\),", text)]
    return "/" + "/".join(reversed(parts))


def read_allow_list(path: Path) -> list[str]:
    """The DNs in a file, one a line (blank lines and `#` comments skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TLSError(f"cannot read the DN allow-list {path}: {exc.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if line and not line.startswith("#"):
            if "=" not in line:
                raise TLSError(f"{path}:{n}: {line!r} is not a DN (like /DC=org/CN=alice)")
            out.append(normalise_dn(line))
    return out


def check_files(cert: Path, key: Path, client_ca: Path | None) -> None:
    """Refuse missing files, and a key others may read (as the token file is refused)."""
    for what, path in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", client_ca)):
        if path is not None and not path.is_file():
            raise TLSError(f"{what} {path}: no such file")
    mode = key.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TLSError(f"the TLS key {key} is readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca))
    except (ssl.SSLError, ValueError) as exc:
        raise TLSError(f"the TLS files do not load: {exc}") from None


def peer_protocol() -> type:
    """uvicorn's HTTP protocol, reading the verified client certificate's DN on connection."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class PeerCertProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            ssl_object = transport.get_extra_info("ssl_object")
            cert = ssl_object.getpeercert() if ssl_object is not None else None
            if cert:  # only a certificate the client CA verified is given here
                self.app_state = {**self.app_state, PEER_DN: subject_dn(cert)}
            super().connection_made(transport)

    return PeerCertProtocol


def uvicorn_options(cert: Path, key: Path, client_ca: Path | None) -> dict[str, Any]:
    """uvicorn.run's TLS keywords: a client certificate optional, verified against client_ca."""
    out: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if client_ca is not None:
        out.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=ssl.CERT_OPTIONAL, http=peer_protocol())
    return out
