from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from otahub.signing import (
    PrivateKey,
    certificate_to_pem,
    create_ca_certificate,
    create_code_signing_certificate,
    generate_private_key,
    sign_digest,
    signature_to_base64,
    verify_custom_signature,
)
from otahub.signing.certificates import _builder

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> tuple[PrivateKey, x509.Certificate]:
    key = generate_private_key("ECDSA")
    return key, create_ca_certificate(key, "otahub test CA", now=NOW)


@pytest.fixture(scope="module")
def issued(ca: tuple[PrivateKey, x509.Certificate]) -> tuple[PrivateKey, str, str]:
    ca_key, ca_cert = ca
    key = generate_private_key("RSA")
    leaf = create_code_signing_certificate(
        key, "leaf", issuer_key=ca_key, issuer_certificate=ca_cert, now=NOW
    )
    return key, certificate_to_pem(leaf) + certificate_to_pem(ca_cert), certificate_to_pem(ca_cert)


def test_valid_chain_to_a_trusted_root(issued: tuple[PrivateKey, str, str], digest: bytes) -> None:
    key, chain, root = issued
    signature = signature_to_base64(sign_digest(key, digest))
    check = verify_custom_signature(
        signature, digest, chain, signature_algorithm="RSA", trusted_roots_pem=root, now=NOW
    )
    assert check.ok and check.reason is None and check
    leaf_only = chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    assert verify_custom_signature(
        signature, digest, leaf_only, signature_algorithm="SHA256withRSA",
        trusted_roots_pem=root, now=NOW,
    ).ok  # fmt: skip


def test_self_signed_without_trust_anchors(
    ec_key: PrivateKey, ec_cert: x509.Certificate, digest: bytes
) -> None:
    check = verify_custom_signature(
        sign_digest(ec_key, digest), digest, certificate_to_pem(ec_cert)
    )
    assert check.ok


def _reason(**kwargs: object) -> str:
    check = verify_custom_signature(**kwargs)  # type: ignore[arg-type]
    assert not check.ok and not check
    assert check.reason
    return check.reason


def test_failures_have_reasons(
    issued: tuple[PrivateKey, str, str],
    ca: tuple[PrivateKey, x509.Certificate],
    digest: bytes,
) -> None:
    key, chain, root = issued
    signature = sign_digest(key, digest)
    good = {"signature": signature, "file_sha256": digest, "certificate_chain_pem": chain,
            "signature_algorithm": "RSA", "trusted_roots_pem": root, "now": NOW}  # fmt: skip
    tampered = bytes(31) + b"\x01"
    assert "does not match" in _reason(**{**good, "file_sha256": tampered})
    assert "only SHA256" in _reason(**{**good, "hash_algorithm": "SHA1"})
    assert "signature algorithm is ECDSA" in _reason(**{**good, "signature_algorithm": "ECDSA"})
    assert "expired" in _reason(**{**good, "now": NOW + timedelta(days=400)})
    assert "not valid before" in _reason(**{**good, "now": NOW - timedelta(days=1)})
    assert "base64" in _reason(**{**good, "signature": "%%%"})
    assert "certificate PEM" in _reason(**{**good, "certificate_chain_pem": "junk"})
    other_root = certificate_to_pem(create_ca_certificate(generate_private_key("ECDSA"), "other"))
    assert "trusted root" in _reason(**{**good, "trusted_roots_pem": other_root})
    leaf_pem = chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    not_a_ca = create_code_signing_certificate(generate_private_key("ECDSA"), "ec signer", now=NOW)
    wrong_issuer = leaf_pem + certificate_to_pem(not_a_ca)
    assert "not a CA" in _reason(**{**good, "certificate_chain_pem": wrong_issuer})
    impostor_key = generate_private_key("ECDSA")
    impostor = create_ca_certificate(impostor_key, "otahub test CA", now=NOW)
    forged_chain = leaf_pem + certificate_to_pem(impostor)
    assert "is not issued by" in _reason(**{**good, "certificate_chain_pem": forged_chain})


def test_leaf_must_be_for_code_signing(digest: bytes) -> None:
    key = generate_private_key("ECDSA")
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "tls server")])
    cert = (
        _builder(key, subject, subject, 30, NOW)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    reason = _reason(
        signature=sign_digest(key, digest),
        file_sha256=digest,
        certificate_chain_pem=certificate_to_pem(cert),
        now=NOW,
    )
    assert "code signing" in reason


def test_weak_leaf_key_is_refused(digest: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "weak")])
    cert = _builder(weak, subject, subject, 30, NOW).sign(weak, hashes.SHA256())
    reason = _reason(
        signature=b"\0" * 128,
        file_sha256=digest,
        certificate_chain_pem=certificate_to_pem(cert),
        signature_algorithm="RSA",
        now=NOW,
    )
    assert "2048" in reason
