"""Code signing: ECDSA P-256 and RSA keys, code-signing certificates, signatures over
a file's SHA-256 as AWS's FreeRTOS platforms make them, and their verification."""

from otahub.signing.algorithms import (
    HashAlgorithm,
    SignatureAlgorithm,
    afr_signature_key,
    parse_afr_signature_key,
    signature_from_base64,
    signature_to_base64,
    signer_algorithm_name,
)
from otahub.signing.certificates import (
    certificate_to_pem,
    create_ca_certificate,
    create_code_signing_certificate,
    load_certificate_chain_pem,
    load_certificate_pem,
    load_key_and_certificate,
)
from otahub.signing.chain import SignatureCheck, verify_custom_signature
from otahub.signing.errors import KeyMismatch, SigningError, WeakKey
from otahub.signing.keys import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key_pem,
    private_key_to_pem,
)
from otahub.signing.material import SigningKeyMaterial
from otahub.signing.sign import sha256_file, sign_digest, verify_digest, verify_file_signature

__all__ = [
    "HashAlgorithm",
    "KeyMismatch",
    "PrivateKey",
    "PublicKey",
    "SignatureAlgorithm",
    "SignatureCheck",
    "SigningError",
    "SigningKeyMaterial",
    "WeakKey",
    "afr_signature_key",
    "certificate_to_pem",
    "create_ca_certificate",
    "create_code_signing_certificate",
    "generate_private_key",
    "load_certificate_chain_pem",
    "load_certificate_pem",
    "load_key_and_certificate",
    "load_private_key_pem",
    "parse_afr_signature_key",
    "private_key_to_pem",
    "sha256_file",
    "sign_digest",
    "signature_from_base64",
    "signature_to_base64",
    "signer_algorithm_name",
    "verify_custom_signature",
    "verify_digest",
    "verify_file_signature",
]
