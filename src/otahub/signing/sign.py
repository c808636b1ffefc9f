"""Signing and verifying a file's SHA-256 digest, as AWS's FreeRTOS platforms do:
the signature covers the digest (prehashed), not the file bytes again."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from otahub.signing.algorithms import SignatureAlgorithm, signature_from_base64
from otahub.signing.certificates import load_certificate_pem
from otahub.signing.errors import SigningError
from otahub.signing.keys import PrivateKey, PublicKey, check_private_key

SHA256_SIZE = 32
_FILE_CHUNK = 1024 * 1024


def _digest_bytes(digest: bytes | str) -> bytes:
    if isinstance(digest, str):
        try:
            digest = bytes.fromhex(digest)
        except ValueError:
            raise SigningError("a SHA-256 digest in text must be hex") from None
    if len(digest) != SHA256_SIZE:
        raise SigningError(f"a SHA-256 digest is {SHA256_SIZE} bytes, not {len(digest)}")
    return digest


def sign_digest(key: PrivateKey, sha256_digest: bytes | str) -> bytes:
    """The DER signature of a file whose SHA-256 is `sha256_digest` (raw or hex):
    ECDSA, or RSA PKCS#1 v1.5, both over the prehashed SHA-256."""
    digest = _digest_bytes(sha256_digest)
    check_private_key(key)
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(prehashed))
    return key.sign(digest, padding.PKCS1v15(), prehashed)


def verify_digest(public_key: PublicKey, signature: bytes, sha256_digest: bytes | str) -> bool:
    digest = _digest_bytes(sha256_digest)
    prehashed = Prehashed(hashes.SHA256())
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, digest, ec.ECDSA(prehashed))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_file_signature(
    certificate_pem: str | bytes,
    signature: bytes | str,
    file_sha256: bytes | str,
    algorithm: SignatureAlgorithm | str,
) -> bool:
    """What a device does before applying an update: does `signature` (DER, or its
    base64 as in the afr_ota job document) over the file's SHA-256 (raw or hex)
    verify with the certificate's key, and is that key of `algorithm`?

    False for a signature that does not verify; SigningError for unreadable
    input (certificate, base64, digest length).
    """
    certificate = load_certificate_pem(certificate_pem)
    public_key = certificate.public_key()
    expected = SignatureAlgorithm.parse(algorithm)
    is_ec = isinstance(public_key, ec.EllipticCurvePublicKey)
    if is_ec != (expected is SignatureAlgorithm.ECDSA):
        return False
    der = signature_from_base64(signature) if isinstance(signature, str) else signature
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return verify_digest(public_key, der, file_sha256)


def sha256_file(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return sha256_stream(f)


def sha256_stream(stream: BinaryIO) -> bytes:
    digest = hashlib.sha256()
    while chunk := stream.read(_FILE_CHUNK):
        digest.update(chunk)
    return digest.digest()
