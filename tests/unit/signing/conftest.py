from __future__ import annotations

import hashlib
import os

import pytest
from cryptography import x509

from otahub.signing import (
    PrivateKey,
    create_ca_certificate,
    create_code_signing_certificate,
    generate_private_key,
)


@pytest.fixture(scope="session")
def firmware() -> bytes:
    return os.urandom(200_000)


@pytest.fixture(scope="session")
def digest(firmware: bytes) -> bytes:
    return hashlib.sha256(firmware).digest()


@pytest.fixture(scope="session")
def ec_key() -> PrivateKey:
    return generate_private_key("ECDSA")


@pytest.fixture(scope="session")
def rsa_key() -> PrivateKey:
    return generate_private_key("RSA")


@pytest.fixture(scope="session")
def ec_cert(ec_key: PrivateKey) -> x509.Certificate:
    return create_code_signing_certificate(ec_key, "ec signer")


@pytest.fixture(scope="session")
def rsa_cert(rsa_key: PrivateKey) -> x509.Certificate:
    return create_code_signing_certificate(rsa_key, "rsa signer")


@pytest.fixture(scope="session")
def ca() -> tuple[PrivateKey, x509.Certificate]:
    key = generate_private_key("ECDSA")
    return key, create_ca_certificate(key, "otahub test CA")
