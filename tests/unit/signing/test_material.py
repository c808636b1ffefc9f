from __future__ import annotations

import json

import pytest
from cryptography import x509

from otahub.signing import (
    KeyMismatch,
    PrivateKey,
    SigningError,
    SigningKeyMaterial,
    WeakKey,
    certificate_to_pem,
    private_key_to_pem,
    verify_file_signature,
)


@pytest.mark.parametrize("algorithm", ["ECDSA", "RSA"])
def test_generate_sign_and_store(algorithm: str, digest: bytes) -> None:
    material = SigningKeyMaterial.generate(algorithm, f"{algorithm} profile")
    assert material.algorithm == algorithm
    assert material.afr_signature_key == f"sig-sha256-{algorithm.lower()}"
    stored = json.loads(json.dumps(material.to_dict()))
    assert set(stored) == {"algorithm", "private_key_pem", "certificate_pem"}
    loaded = SigningKeyMaterial.from_dict(stored)
    assert loaded == material
    signature = loaded.sign_digest(digest)
    assert verify_file_signature(material.certificate_pem, signature, digest, algorithm)
    assert "PRIVATE KEY" not in repr(material)


def test_material_issued_by_a_ca(ca: tuple[PrivateKey, x509.Certificate]) -> None:
    ca_key, ca_cert = ca
    material = SigningKeyMaterial.generate(
        "ECDSA", "leaf", issuer_key=ca_key, issuer_certificate=ca_cert
    )
    material.certificate().verify_directly_issued_by(ca_cert)


def test_import_from_pem(
    ec_key: PrivateKey, ec_cert: x509.Certificate, rsa_key: PrivateKey
) -> None:
    locked = private_key_to_pem(ec_key, password=b"pw")
    material = SigningKeyMaterial.from_pem(locked, certificate_to_pem(ec_cert), password=b"pw")
    assert material.algorithm == "ECDSA"
    assert "ENCRYPTED" not in material.private_key_pem
    with pytest.raises(KeyMismatch):
        SigningKeyMaterial.from_pem(private_key_to_pem(rsa_key), certificate_to_pem(ec_cert))


def test_from_dict_checks_what_it_loads(ec_key: PrivateKey, ec_cert: x509.Certificate) -> None:
    good = SigningKeyMaterial.from_pem(private_key_to_pem(ec_key), certificate_to_pem(ec_cert))
    with pytest.raises(SigningError):
        SigningKeyMaterial.from_dict({**good.to_dict(), "algorithm": "RSA"})
    with pytest.raises(SigningError):
        SigningKeyMaterial.from_dict({"algorithm": "ECDSA"})
    with pytest.raises(SigningError):
        SigningKeyMaterial.from_dict({**good.to_dict(), "private_key_pem": "junk"})


def test_weak_rsa_is_refused() -> None:
    with pytest.raises(WeakKey):
        SigningKeyMaterial.generate("RSA", "weak", rsa_bits=1024)
