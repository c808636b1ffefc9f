"""otahub's private CA: the broker's TLS certificate and device certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class IssuedCertificate:
    certificate_pem: str
    public_key_pem: str
    private_key_pem: str
    certificate_id: str  # SHA-256 hex of the DER, AWS's certificateId


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class CertificateAuthority:
    """Kept in `directory` (ca.key mode 0600, ca.pem): made once, reused."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = directory / "ca.key", directory / "ca.pem"
        if not key_path.exists() or not cert_path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "otahub device CA")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(key, hashes.SHA256())
            )
            _write_private(key_path, _key_pem(key))
            cert_path.write_bytes(cert.public_bytes(PEM))
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        self.pem = cert_path.read_text()
        self.path = cert_path

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        cn: str,
        *,
        server: bool,
        names: Sequence[str] = (),
    ) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            alt: list[x509.GeneralName] = []
            for n in ["localhost", "127.0.0.1", *names]:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        return builder.sign(self.key, hashes.SHA256())  # type: ignore[arg-type]

    def server_files(self, names: list[str]) -> tuple[Path, Path]:
        """(certificate, key) files for the broker's TLS listener."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(key.public_key(), "otahub broker", server=True, names=names)
        cert_path, key_path = self.dir / "server.pem", self.dir / "server.key"
        cert_path.write_bytes(cert.public_bytes(PEM))
        _write_private(key_path, _key_pem(key))
        return cert_path, key_path

    def issue_device(self, common_name: str = "otahub device") -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(key.public_key(), common_name, server=False)
        return IssuedCertificate(
            certificate_pem=cert.public_bytes(PEM).decode(),
            public_key_pem=key.public_key()
            .public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
            private_key_pem=_key_pem(key).decode(),
            certificate_id=cert.fingerprint(hashes.SHA256()).hex(),
        )
