"""Device certificates: register, activate, attach, and the broker's lookup."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otahub.core.services import Services
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest


def self_signed(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_only_active_attached_certificates_authenticate(services: Services) -> None:
    tenant = (await services.accounts.tenant("1")).id
    thing = await services.registry.create_device(tenant, "t1")
    other = await services.registry.create_device(tenant, "t2")
    certs = services.certificates
    cert = await certs.register(tenant, self_signed("t1"), active=False)
    assert len(cert.id) == 64 and cert.status == "INACTIVE"
    with pytest.raises(AlreadyExists):
        await certs.register(tenant, cert.pem, active=True)
    await certs.attach(tenant, cert.id, thing.id)
    assert await certs.device_for(cert.id) is None  # inactive
    await certs.set_status(tenant, cert.id, "ACTIVE")
    found = await certs.device_for(cert.id)
    assert found is not None and found.name == "t1" and found.is_aws_thing
    await certs.attach(tenant, cert.id, other.id)
    assert await certs.device_for(cert.id) is None  # ambiguous without a client id
    picked = await certs.device_for(cert.id, "t2")
    assert picked is not None and picked.id == other.id
    await certs.detach(tenant, cert.id, other.id)
    with pytest.raises(Conflict):
        await certs.attach(tenant, cert.id, other.id, exclusive=True)
    await certs.set_status(tenant, cert.id, "REVOKED")
    assert await certs.device_for(cert.id) is None
    with pytest.raises(InvalidRequest):
        await certs.register(tenant, "not a cert", active=True)
