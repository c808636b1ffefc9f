"""AWS things with a certificate of otahub's CA attached, for login tests."""

from __future__ import annotations

from otahub.core.services import Services
from otahub.gateway.embedded.pki import CertificateAuthority, IssuedCertificate


async def certified_thing(
    services: Services, tenant_id: int, ca: CertificateAuthority, name: str
) -> IssuedCertificate:
    """Thing `name`, with a new ACTIVE certificate attached to it (and to nothing else)."""
    thing = await services.registry.create_device(tenant_id, name)
    issued = ca.issue_device(name)
    cert = await services.certificates.register(tenant_id, issued.certificate_pem, active=True)
    await services.certificates.attach(tenant_id, cert.id, thing.id)
    return issued
