"""Code-signing certificates: self-signed or issued by a CA, and PEM import that
checks a key and a certificate belong together."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from otahub.signing.errors import KeyMismatch, SigningError
from otahub.signing.keys import (
    PrivateKey,
    check_private_key,
    check_public_key,
    load_private_key_pem,
    public_key_der,
)

BACKDATE = timedelta(minutes=5)
"""Certificates start a little in the past so that a device whose clock lags
slightly still accepts them."""


def _name(common_name: str, organization: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    key: PrivateKey, subject: x509.Name, issuer: x509.Name, days: int, now: datetime | None
) -> x509.CertificateBuilder:
    if days < 1:
        raise SigningError("a certificate must be valid for at least one day")
    start = (now or datetime.now(UTC)) - BACKDATE
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(uuid.uuid4().int >> 1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def create_code_signing_certificate(
    key: PrivateKey,
    common_name: str,
    *,
    organization: str | None = None,
    days: int = 365,
    issuer_key: PrivateKey | None = None,
    issuer_certificate: x509.Certificate | None = None,
    now: datetime | None = None,
) -> x509.Certificate:
    """A leaf certificate for `key` with the codeSigning extended key usage;
    self-signed, or signed by `issuer_key` when its CA certificate is given."""
    check_private_key(key)
    subject = _name(common_name, organization)
    if (issuer_key is None) != (issuer_certificate is None):
        raise SigningError("give both the issuer key and the issuer certificate, or neither")
    signer, issuer_name = key, subject
    if issuer_key is not None and issuer_certificate is not None:
        _check_ca(issuer_key, issuer_certificate)
        signer, issuer_name = issuer_key, issuer_certificate.subject
    builder = (
        _builder(key, subject, issuer_name, days, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def create_ca_certificate(
    key: PrivateKey,
    common_name: str,
    *,
    organization: str | None = None,
    days: int = 3650,
    now: datetime | None = None,
) -> x509.Certificate:
    """A self-signed CA that may issue code-signing certificates (and no further CAs)."""
    check_private_key(key)
    subject = _name(common_name, organization)
    return (
        _builder(key, subject, subject, days, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _check_ca(issuer_key: PrivateKey, issuer_certificate: x509.Certificate) -> None:
    check_private_key(issuer_key)
    issuer_public = check_public_key(issuer_certificate.public_key())
    if public_key_der(issuer_key) != public_key_der(issuer_public):
        raise KeyMismatch("the issuer key does not belong to the issuer certificate")
    if not is_ca(issuer_certificate):
        raise SigningError("the issuer certificate is not a CA (basicConstraints ca=false)")


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def certificate_to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certificate_chain_pem(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM text, in order (leaf first by convention)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise SigningError(f"cannot read the certificate PEM: {exc}") from None
    if not chain:
        raise SigningError("the certificate PEM holds no certificate")
    return chain


def load_certificate_pem(pem: str | bytes) -> x509.Certificate:
    """The first certificate of a PEM text; its key must be acceptable for signing."""
    certificate = load_certificate_chain_pem(pem)[0]
    check_public_key(certificate.public_key())
    return certificate


def load_key_and_certificate(
    key_pem: str | bytes, certificate_pem: str | bytes, password: bytes | None = None
) -> tuple[PrivateKey, x509.Certificate]:
    """Import a signing key and its certificate; raise KeyMismatch if they differ."""
    key = load_private_key_pem(key_pem, password)
    certificate = load_certificate_pem(certificate_pem)
    if public_key_der(key) != public_key_der(check_public_key(certificate.public_key())):
        raise KeyMismatch("the private key does not belong to the certificate")
    return key, certificate
