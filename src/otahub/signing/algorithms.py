"""Algorithm names: ours, AWS signer's (`SHA256withECDSA`) and afr_ota's job document
keys (`sig-sha256-ecdsa`), and the base64 form of signatures."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from otahub.signing.errors import SigningError


class SignatureAlgorithm(StrEnum):
    ECDSA = "ECDSA"
    RSA = "RSA"

    @classmethod
    def parse(cls, value: str | SignatureAlgorithm) -> SignatureAlgorithm:
        """Accepts `ECDSA`/`RSA` in any case, signer's `SHA256withECDSA`, and
        afr_ota's `sig-sha256-ecdsa`."""
        text = str(value).strip().upper()
        if text.startswith("SIG-"):
            return parse_afr_signature_key(text.lower())[1]
        text = text.rpartition("WITH")[2]
        try:
            return cls(text)
        except ValueError:
            raise SigningError(f"unknown signature algorithm {value!r}") from None


class HashAlgorithm(StrEnum):
    SHA256 = "SHA256"
    SHA1 = "SHA1"
    """Only named (AWS's TI-CC3220SF platform uses it); otahub never signs with it."""

    @classmethod
    def parse(cls, value: str | HashAlgorithm) -> HashAlgorithm:
        text = str(value).strip().upper().replace("-", "")
        try:
            return cls(text)
        except ValueError:
            raise SigningError(f"unknown hash algorithm {value!r}") from None


def afr_signature_key(
    hash_algorithm: str | HashAlgorithm = HashAlgorithm.SHA256,
    signature_algorithm: str | SignatureAlgorithm = SignatureAlgorithm.ECDSA,
) -> str:
    """The afr_ota job document key of a file's signature: `sig-sha256-ecdsa`,
    `sig-sha256-rsa`, `sig-sha1-rsa`."""
    hash_name = HashAlgorithm.parse(hash_algorithm).value.lower()
    signature_name = SignatureAlgorithm.parse(signature_algorithm).value.lower()
    return f"sig-{hash_name}-{signature_name}"


def parse_afr_signature_key(key: str) -> tuple[HashAlgorithm, SignatureAlgorithm]:
    parts = key.split("-")
    if len(parts) != 3 or parts[0] != "sig":
        raise SigningError(f"not an afr_ota signature key: {key!r}")
    return HashAlgorithm.parse(parts[1]), SignatureAlgorithm.parse(parts[2])


def signer_algorithm_name(
    hash_algorithm: str | HashAlgorithm, signature_algorithm: str | SignatureAlgorithm
) -> str:
    """AWS signer's name, as in its signed objects: `SHA256withECDSA`."""
    hash_name = HashAlgorithm.parse(hash_algorithm).value
    return f"{hash_name}with{SignatureAlgorithm.parse(signature_algorithm).value}"


def signature_to_base64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def signature_from_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SigningError("a signature must be base64 text") from None
