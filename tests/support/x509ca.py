"""A certificate authority made by a test (with `cryptography`): the server's
certificate for 127.0.0.1, and client certificates with grid-style subject DNs,
each written as one PEM holding certificate and key, the shape of an X.509 proxy
($X509_USER_PROXY) that TFaaS's client loads with one load_cert_chain(file)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: a short name -> its OID, for DNs written as "/DC=ch/OU=Users/CN=alice"
OIDS = {"C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "CN": NameOID.COMMON_NAME, "DC": NameOID.DOMAIN_COMPONENT, "L": NameOID.LOCALITY_NAME}


def name(dn: str) -> x509.Name:
    """An x509.Name from the slash form, its parts in the written order."""
    return x509.Name([x509.NameAttribute(OIDS[k], v) for k, v in (p.split("=", 1) for p in dn.strip("/").split("/"))])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@dataclass
class TestCA:
    """A CA in `root`: ca.pem; issue() writes the certificates it signs."""

    __test__ = False  # not a test class, for pytest
    root: Path
    dn: str = "/DC=test/O=dodas tests/CN=Test CA"

    def __post_init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name(self.dn)).issuer_name(name(self.dn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self.root / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _issue(self, dn: str, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder().subject_name(name(dn)).issuer_name(self.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                   else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                             x509.DNSName("localhost")]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def server(self) -> tuple[Path, Path]:
        """(certificate, key) of the server at 127.0.0.1."""
        cert, key = self._issue("/DC=test/CN=127.0.0.1", server=True)
        (self.root / "server.pem").write_bytes(cert)
        return self.root / "server.pem", _private(self.root / "server.key", key)

    def client(self, dn: str, file_name: str) -> Path:
        """A client's certificate and key in one 0600 PEM (a proxy's shape)."""
        cert, key = self._issue(dn, server=False)
        return _private(self.root / file_name, cert + key)
