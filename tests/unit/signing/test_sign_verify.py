from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from otahub.signing import (
    PrivateKey,
    SigningError,
    certificate_to_pem,
    create_code_signing_certificate,
    generate_private_key,
    sha256_file,
    sign_digest,
    signature_to_base64,
    verify_file_signature,
)


@pytest.fixture(params=["ECDSA", "RSA"])
def signer(
    request: pytest.FixtureRequest,
    ec_key: PrivateKey,
    ec_cert: x509.Certificate,
    rsa_key: PrivateKey,
    rsa_cert: x509.Certificate,
) -> tuple[str, PrivateKey, str]:
    if request.param == "ECDSA":
        return "ECDSA", ec_key, certificate_to_pem(ec_cert)
    return "RSA", rsa_key, certificate_to_pem(rsa_cert)


def test_round_trip(signer: tuple[str, PrivateKey, str], digest: bytes) -> None:
    algorithm, key, cert_pem = signer
    signature = sign_digest(key, digest)
    assert verify_file_signature(cert_pem, signature, digest, algorithm)
    # the forms a device meets: base64 from the job document, hex digests
    assert verify_file_signature(cert_pem, signature_to_base64(signature), digest.hex(), algorithm)
    assert verify_file_signature(cert_pem, signature, digest, f"sig-sha256-{algorithm.lower()}")


def test_the_signature_is_the_standard_one_over_the_file(
    signer: tuple[str, PrivateKey, str], firmware: bytes, digest: bytes
) -> None:
    """Signing the digest prehashed equals signing the file with SHA-256, so a device
    checking `SHA256withECDSA`/`SHA256withRSA` over the image accepts it."""
    _, key, _ = signer
    signature = sign_digest(key, digest)
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, firmware, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, firmware, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")
def test_openssl_agrees(
    signer: tuple[str, PrivateKey, str], firmware: bytes, digest: bytes, tmp_path: Path
) -> None:
    _, key, _ = signer
    (tmp_path / "fw.bin").write_bytes(firmware)
    (tmp_path / "fw.sig").write_bytes(sign_digest(key, digest))
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "fw.sig", "fw.bin"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified OK" in result.stdout


def test_tampered_file_fails(
    signer: tuple[str, PrivateKey, str], firmware: bytes, digest: bytes
) -> None:
    algorithm, key, cert_pem = signer
    signature = sign_digest(key, digest)
    tampered = bytearray(firmware)
    tampered[1234] ^= 0x01
    tampered_digest = hashlib.sha256(tampered).digest()
    assert not verify_file_signature(cert_pem, signature, tampered_digest, algorithm)
    flipped = bytearray(signature)
    flipped[-5] ^= 0x40
    assert not verify_file_signature(cert_pem, bytes(flipped), digest, algorithm)
    assert not verify_file_signature(cert_pem, b"", digest, algorithm)


def test_wrong_key_or_certificate_fails(signer: tuple[str, PrivateKey, str], digest: bytes) -> None:
    algorithm, key, cert_pem = signer
    other_key = generate_private_key(algorithm)
    other_cert = certificate_to_pem(create_code_signing_certificate(other_key, "other"))
    assert not verify_file_signature(other_cert, sign_digest(key, digest), digest, algorithm)
    assert not verify_file_signature(cert_pem, sign_digest(other_key, digest), digest, algorithm)


def test_algorithm_must_match_the_certificate(
    ec_key: PrivateKey, ec_cert: x509.Certificate, digest: bytes
) -> None:
    signature = sign_digest(ec_key, digest)
    assert not verify_file_signature(certificate_to_pem(ec_cert), signature, digest, "RSA")


def test_bad_input_is_an_error(ec_key: PrivateKey, ec_cert: x509.Certificate) -> None:
    with pytest.raises(SigningError):
        sign_digest(ec_key, b"too short")
    with pytest.raises(SigningError):
        sign_digest(ec_key, "zz" * 32)
    with pytest.raises(SigningError):
        verify_file_signature("not a certificate", b"sig", b"\0" * 32, "ECDSA")
    with pytest.raises(SigningError):
        verify_file_signature(certificate_to_pem(ec_cert), "**", b"\0" * 32, "ECDSA")


def test_sha256_file(tmp_path: Path, firmware: bytes, digest: bytes) -> None:
    path = tmp_path / "fw.bin"
    path.write_bytes(firmware)
    assert sha256_file(path) == digest
