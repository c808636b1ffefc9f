from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from otahub.signing import (
    KeyMismatch,
    PrivateKey,
    SigningError,
    WeakKey,
    certificate_to_pem,
    create_ca_certificate,
    create_code_signing_certificate,
    generate_private_key,
    load_certificate_pem,
    load_key_and_certificate,
    load_private_key_pem,
    private_key_to_pem,
)


def test_generated_keys() -> None:
    ec_key = generate_private_key("ECDSA")
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert isinstance(ec_key.curve, ec.SECP256R1)
    rsa_key = generate_private_key("RSA", rsa_bits=3072)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 3072


def test_rsa_below_2048_is_refused() -> None:
    with pytest.raises(WeakKey):
        generate_private_key("RSA", rsa_bits=1024)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(WeakKey):
        load_private_key_pem(private_key_to_pem(weak))
    with pytest.raises(WeakKey):
        create_code_signing_certificate(weak, "weak")


def test_other_curves_are_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(WeakKey):
        load_private_key_pem(private_key_to_pem(p384))


def test_pem_round_trip_with_and_without_password(ec_key: PrivateKey) -> None:
    plain = private_key_to_pem(ec_key)
    assert plain.startswith("-----BEGIN PRIVATE KEY-----")
    assert load_private_key_pem(plain).private_numbers() == ec_key.private_numbers()
    locked = private_key_to_pem(ec_key, password=b"pw")
    assert "ENCRYPTED" in locked
    assert (
        load_private_key_pem(locked, password=b"pw").private_numbers() == ec_key.private_numbers()
    )
    with pytest.raises(SigningError):
        load_private_key_pem(locked, password=b"wrong")
    with pytest.raises(SigningError):
        load_private_key_pem("garbage")


def test_self_signed_code_signing_certificate(ec_key: PrivateKey) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    cert = create_code_signing_certificate(ec_key, "device signer", days=30, now=now)
    assert cert.subject == cert.issuer
    assert cert.subject.rfc4514_string() == "CN=device signer"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)
    cert.verify_directly_issued_by(cert)


def test_certificate_issued_by_a_ca(
    rsa_key: PrivateKey, ca: tuple[PrivateKey, x509.Certificate]
) -> None:
    ca_key, ca_cert = ca
    cert = create_code_signing_certificate(
        rsa_key, "rsa leaf", issuer_key=ca_key, issuer_certificate=ca_cert
    )
    assert cert.issuer == ca_cert.subject
    cert.verify_directly_issued_by(ca_cert)
    with pytest.raises(SigningError):
        create_code_signing_certificate(rsa_key, "half", issuer_key=ca_key)


def test_only_a_ca_may_issue(ec_key: PrivateKey, ec_cert: x509.Certificate) -> None:
    other = generate_private_key("ECDSA")
    with pytest.raises(SigningError):
        create_code_signing_certificate(other, "x", issuer_key=ec_key, issuer_certificate=ec_cert)


def test_issuer_key_must_match_the_issuer_certificate(
    ca: tuple[PrivateKey, x509.Certificate],
) -> None:
    _, ca_cert = ca
    stranger = generate_private_key("ECDSA")
    leaf = generate_private_key("ECDSA")
    with pytest.raises(KeyMismatch):
        create_code_signing_certificate(leaf, "x", issuer_key=stranger, issuer_certificate=ca_cert)


def test_import_checks_key_and_certificate_match(
    ec_key: PrivateKey, ec_cert: x509.Certificate, rsa_key: PrivateKey
) -> None:
    _, cert = load_key_and_certificate(private_key_to_pem(ec_key), certificate_to_pem(ec_cert))
    assert cert == ec_cert
    other_ec = generate_private_key("ECDSA")
    with pytest.raises(KeyMismatch):
        load_key_and_certificate(private_key_to_pem(other_ec), certificate_to_pem(ec_cert))
    with pytest.raises(KeyMismatch):
        load_key_and_certificate(private_key_to_pem(rsa_key), certificate_to_pem(ec_cert))
    with pytest.raises(SigningError):
        load_certificate_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(SigningError):
        load_certificate_pem("")


def test_ca_certificate(ca: tuple[PrivateKey, x509.Certificate]) -> None:
    _, cert = ca
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    with pytest.raises(SigningError):
        create_ca_certificate(generate_private_key("ECDSA"), "bad", days=0)
