"""Checking a user-supplied signature (AWS `customCodeSigning`) against its
certificate chain, with a reason when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from otahub.signing.algorithms import (
    HashAlgorithm,
    SignatureAlgorithm,
    signature_from_base64,
)
from otahub.signing.certificates import is_ca, load_certificate_chain_pem
from otahub.signing.errors import SigningError
from otahub.signing.keys import algorithm_of, check_public_key, public_key_der
from otahub.signing.sign import verify_digest


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    ok: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


def _fail(reason: str) -> SignatureCheck:
    return SignatureCheck(False, reason)


def _label(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or f"serial {certificate.serial_number}"


def verify_custom_signature(
    signature: bytes | str,
    file_sha256: bytes | str,
    certificate_chain_pem: str | bytes,
    *,
    hash_algorithm: str | HashAlgorithm = HashAlgorithm.SHA256,
    signature_algorithm: str | SignatureAlgorithm = SignatureAlgorithm.ECDSA,
    trusted_roots_pem: str | bytes | None = None,
    now: datetime | None = None,
) -> SignatureCheck:
    """Verify `signature` (DER or base64) over the file's SHA-256 with the first
    certificate of `certificate_chain_pem`, then the chain: each certificate valid
    at `now` and issued by the next, issuers being CAs, the leaf allowed to sign
    code (if it restricts its use). With `trusted_roots_pem` the chain must also
    end at (or be issued by) one of those roots; without it, a chain that
    verifies in itself is accepted.
    """
    try:
        if HashAlgorithm.parse(hash_algorithm) is not HashAlgorithm.SHA256:
            return _fail(f"unsupported hash algorithm {hash_algorithm}: only SHA256 is accepted")
        expected = SignatureAlgorithm.parse(signature_algorithm)
        chain = load_certificate_chain_pem(certificate_chain_pem)
        der = signature_from_base64(signature) if isinstance(signature, str) else signature
        leaf_key = check_public_key(chain[0].public_key())
        if algorithm_of(leaf_key) is not expected:
            return _fail(
                f"the certificate's key is {algorithm_of(leaf_key)}, "
                f"the signature algorithm is {expected}"
            )
        if not verify_digest(leaf_key, der, file_sha256):
            return _fail("the signature does not match the file digest and the certificate's key")
    except SigningError as exc:
        return _fail(exc.message)
    return _check_chain(chain, trusted_roots_pem, now or datetime.now(UTC))


def _check_chain(
    chain: list[x509.Certificate], trusted_roots_pem: str | bytes | None, now: datetime
) -> SignatureCheck:
    leaf = chain[0]
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        return _fail(f"certificate {_label(leaf)} is not for code signing (extended key usage)")
    for certificate in chain:
        if now < certificate.not_valid_before_utc:
            return _fail(
                f"certificate {_label(certificate)} is not valid before "
                f"{certificate.not_valid_before_utc.isoformat()}"
            )
        if now > certificate.not_valid_after_utc:
            return _fail(
                f"certificate {_label(certificate)} expired "
                f"{certificate.not_valid_after_utc.isoformat()}"
            )
    for child, issuer in pairwise(chain):
        failure = _check_issued(child, issuer)
        if failure is not None:
            return failure
    if trusted_roots_pem is None:
        return SignatureCheck(True)
    try:
        roots = load_certificate_chain_pem(trusted_roots_pem)
    except SigningError as exc:
        return _fail(f"trusted roots: {exc.message}")
    top = chain[-1]
    for root in roots:
        if (
            public_key_der(check_public_key(root.public_key()))
            == public_key_der(check_public_key(top.public_key()))
            and root.subject == top.subject
        ):
            return SignatureCheck(True)
        if root.subject == top.issuer and _check_issued(top, root) is None:
            if now > root.not_valid_after_utc or now < root.not_valid_before_utc:
                return _fail(f"trusted root {_label(root)} is not valid now")
            return SignatureCheck(True)
    return _fail("the certificate chain does not lead to a trusted root")


def _check_issued(child: x509.Certificate, issuer: x509.Certificate) -> SignatureCheck | None:
    if not is_ca(issuer):
        return _fail(f"certificate {_label(issuer)} issues {_label(child)} but is not a CA")
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return _fail(f"certificate {_label(child)} is not issued by {_label(issuer)}")
    return None
