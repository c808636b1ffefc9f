from __future__ import annotations

import pytest

from otahub.signing import (
    HashAlgorithm,
    SignatureAlgorithm,
    SigningError,
    afr_signature_key,
    parse_afr_signature_key,
    signature_from_base64,
    signature_to_base64,
    signer_algorithm_name,
)


def test_afr_ota_key_names() -> None:
    assert afr_signature_key() == "sig-sha256-ecdsa"
    assert afr_signature_key("SHA256", "RSA") == "sig-sha256-rsa"
    assert afr_signature_key("sha1", "rsa") == "sig-sha1-rsa"
    assert afr_signature_key(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA) == "sig-sha256-ecdsa"
    assert parse_afr_signature_key("sig-sha256-rsa") == (
        HashAlgorithm.SHA256,
        SignatureAlgorithm.RSA,
    )
    with pytest.raises(SigningError):
        parse_afr_signature_key("signature-sha256")
    with pytest.raises(SigningError):
        afr_signature_key("MD5", "RSA")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ECDSA", SignatureAlgorithm.ECDSA),
        ("rsa", SignatureAlgorithm.RSA),
        ("SHA256withECDSA", SignatureAlgorithm.ECDSA),
        ("SHA256withRSA", SignatureAlgorithm.RSA),
        ("sig-sha256-ecdsa", SignatureAlgorithm.ECDSA),
    ],
)
def test_signature_algorithm_names(text: str, expected: SignatureAlgorithm) -> None:
    assert SignatureAlgorithm.parse(text) is expected


def test_unknown_names() -> None:
    with pytest.raises(SigningError):
        SignatureAlgorithm.parse("DSA")
    assert signer_algorithm_name("sha256", "ecdsa") == "SHA256withECDSA"


def test_base64() -> None:
    der = bytes(range(70))
    assert signature_from_base64(signature_to_base64(der)) == der
    with pytest.raises(SigningError):
        signature_from_base64("not base64!")
