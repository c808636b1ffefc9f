"""Signing key material as one storable value: algorithm, key PEM, certificate PEM."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from otahub.signing.algorithms import HashAlgorithm, SignatureAlgorithm, afr_signature_key
from otahub.signing.certificates import (
    certificate_to_pem,
    create_code_signing_certificate,
    load_key_and_certificate,
)
from otahub.signing.errors import SigningError
from otahub.signing.keys import (
    MIN_RSA_BITS,
    PrivateKey,
    algorithm_of,
    generate_private_key,
    private_key_to_pem,
)
from otahub.signing.sign import sign_digest


@dataclass(frozen=True)
class SigningKeyMaterial:
    """A checked key and certificate pair. The key PEM is unencrypted: whoever
    stores this value must protect it (encryption at rest is the store's job)."""

    algorithm: SignatureAlgorithm
    private_key_pem: str = field(repr=False)
    certificate_pem: str

    def __post_init__(self) -> None:
        key, _ = load_key_and_certificate(self.private_key_pem, self.certificate_pem)
        if algorithm_of(key) is not self.algorithm:
            raise SigningError(
                f"the key is {algorithm_of(key)} but the material says {self.algorithm}"
            )

    @classmethod
    def generate(
        cls,
        algorithm: SignatureAlgorithm | str,
        common_name: str,
        *,
        rsa_bits: int = MIN_RSA_BITS,
        days: int = 365,
        issuer_key: PrivateKey | None = None,
        issuer_certificate: x509.Certificate | None = None,
        now: datetime | None = None,
    ) -> SigningKeyMaterial:
        """A new key with a code-signing certificate, self-signed or from the issuer."""
        key = generate_private_key(algorithm, rsa_bits=rsa_bits)
        certificate = create_code_signing_certificate(
            key,
            common_name,
            days=days,
            issuer_key=issuer_key,
            issuer_certificate=issuer_certificate,
            now=now,
        )
        return cls(algorithm_of(key), private_key_to_pem(key), certificate_to_pem(certificate))

    @classmethod
    def from_pem(
        cls, private_key_pem: str, certificate_pem: str, password: bytes | None = None
    ) -> SigningKeyMaterial:
        """Import a key (optionally encrypted) and its certificate; raise if they differ."""
        key, certificate = load_key_and_certificate(private_key_pem, certificate_pem, password)
        return cls(algorithm_of(key), private_key_to_pem(key), certificate_to_pem(certificate))

    def to_dict(self) -> dict[str, str]:
        return {
            "algorithm": self.algorithm.value,
            "private_key_pem": self.private_key_pem,
            "certificate_pem": self.certificate_pem,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SigningKeyMaterial:
        try:
            return cls(
                SignatureAlgorithm.parse(str(data["algorithm"])),
                str(data["private_key_pem"]),
                str(data["certificate_pem"]),
            )
        except KeyError as exc:
            raise SigningError(f"signing key material lacks {exc.args[0]!r}") from None

    def private_key(self) -> PrivateKey:
        return load_key_and_certificate(self.private_key_pem, self.certificate_pem)[0]

    def certificate(self) -> x509.Certificate:
        return load_key_and_certificate(self.private_key_pem, self.certificate_pem)[1]

    def sign_digest(self, sha256_digest: bytes | str) -> bytes:
        return sign_digest(self.private_key(), sha256_digest)

    @property
    def afr_signature_key(self) -> str:
        return afr_signature_key(HashAlgorithm.SHA256, self.algorithm)
