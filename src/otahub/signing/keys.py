"""Signing keys: ECDSA P-256 and RSA of 2048 bits or more, generated or from PEM."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from otahub.signing.algorithms import SignatureAlgorithm
from otahub.signing.errors import SigningError, WeakKey

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192


def _check_rsa_bits(bits: int) -> None:
    if bits < MIN_RSA_BITS:
        raise WeakKey(f"RSA keys must have at least {MIN_RSA_BITS} bits, not {bits}")
    if bits > MAX_RSA_BITS:
        raise SigningError(f"RSA keys may have at most {MAX_RSA_BITS} bits, not {bits}")


def generate_private_key(
    algorithm: SignatureAlgorithm | str, *, rsa_bits: int = MIN_RSA_BITS
) -> PrivateKey:
    if SignatureAlgorithm.parse(algorithm) is SignatureAlgorithm.ECDSA:
        return ec.generate_private_key(ec.SECP256R1())
    _check_rsa_bits(rsa_bits)
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def check_public_key(key: object) -> PublicKey:
    """`key` if it is a P-256 or a strong enough RSA public key, else raise."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise WeakKey(f"ECDSA keys must be on P-256, not {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa_bits(key.key_size)
        return key
    raise SigningError(f"unsupported key type {type(key).__name__}: use ECDSA P-256 or RSA")


def check_private_key(key: object) -> PrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SigningError(f"unsupported key type {type(key).__name__}: use ECDSA P-256 or RSA")
    check_public_key(key.public_key())
    return key


def algorithm_of(key: PrivateKey | PublicKey) -> SignatureAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return SignatureAlgorithm.ECDSA
    return SignatureAlgorithm.RSA


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")


def load_private_key_pem(pem: str | bytes, password: bytes | None = None) -> PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"cannot read the private key PEM: {exc}") from None
    return check_private_key(key)


def public_key_der(key: PrivateKey | PublicKey) -> bytes:
    public = (
        key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    )
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
