"""Device certificates: registered or issued X.509 certificates, their status, and
the devices they are attached to. The embedded broker asks `device_for` on every
TLS connection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from otahub.core.services.base import ServiceContext
from otahub.domain.entities import Device, row_to
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from otahub.store.tables import certificate_devices, certificates, devices, products

STATUSES = frozenset({"ACTIVE", "INACTIVE", "REVOKED"})


@dataclass(frozen=True)
class Certificate:
    id: str  # SHA-256 hex of the DER: AWS's certificateId
    tenant_id: int
    pem: str
    status: str
    created_at: datetime
    updated_at: datetime


def fingerprint(pem: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidRequest("not a PEM certificate") from exc
    return cert.fingerprint(hashes.SHA256()).hex()


class CertificateService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def register(self, tenant_id: int, pem: str, *, active: bool) -> Certificate:
        cert_id = fingerprint(pem)
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            try:
                await conn.execute(
                    insert(certificates).values(
                        id=cert_id,
                        tenant_id=tenant_id,
                        pem=pem,
                        status="ACTIVE" if active else "INACTIVE",
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(
                    "the certificate is already registered", resource_id=cert_id
                ) from exc
        return await self.get(tenant_id, cert_id)

    async def get(self, tenant_id: int, cert_id: str) -> Certificate:
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(select(certificates).where(certificates.c.id == cert_id))
            ).first()
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"certificate {cert_id} not found")
        return Certificate(
            row.id, row.tenant_id, row.pem, row.status, row.created_at, row.updated_at
        )

    async def set_status(self, tenant_id: int, cert_id: str, status: str) -> None:
        if status not in STATUSES:
            raise InvalidRequest(f"status must be one of {sorted(STATUSES)}")
        await self.get(tenant_id, cert_id)
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                update(certificates)
                .where(certificates.c.id == cert_id)
                .values(status=status, updated_at=self.ctx.clock.now())
            )

    async def attach(
        self, tenant_id: int, cert_id: str, device_id: int, *, exclusive: bool = False
    ) -> None:
        await self.get(tenant_id, cert_id)
        async with self.ctx.db.transaction() as conn:
            others = (
                await conn.execute(
                    select(certificate_devices).where(
                        certificate_devices.c.certificate_id == cert_id,
                        certificate_devices.c.device_id != device_id,
                    )
                )
            ).all()
            if others and (exclusive or any(o.exclusive for o in others)):
                raise Conflict("the certificate is attached exclusively to another device")
            await conn.execute(
                delete(certificate_devices).where(
                    certificate_devices.c.certificate_id == cert_id,
                    certificate_devices.c.device_id == device_id,
                )
            )
            await conn.execute(
                insert(certificate_devices).values(
                    certificate_id=cert_id,
                    device_id=device_id,
                    exclusive=exclusive,
                    created_at=self.ctx.clock.now(),
                )
            )

    async def detach(self, tenant_id: int, cert_id: str, device_id: int) -> None:
        await self.get(tenant_id, cert_id)
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                delete(certificate_devices).where(
                    certificate_devices.c.certificate_id == cert_id,
                    certificate_devices.c.device_id == device_id,
                )
            )

    async def certificates_of(self, device_id: int) -> list[str]:
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(certificate_devices.c.certificate_id).where(
                    certificate_devices.c.device_id == device_id
                )
            )
            return list(rows.scalars())

    async def device_for(self, cert_id: str, client_id: str | None = None) -> Device | None:
        """The device an ACTIVE certificate authenticates: the one it is attached to,
        or, when it is attached to several, the one named `client_id`."""
        async with self.ctx.db.read() as conn:
            rows = (
                await conn.execute(
                    select(devices, products.c.key.label("product_key"))
                    .join(certificate_devices, certificate_devices.c.device_id == devices.c.id)
                    .join(certificates, certificates.c.id == certificate_devices.c.certificate_id)
                    .join(products, products.c.id == devices.c.product_id)
                    .where(certificates.c.id == cert_id, certificates.c.status == "ACTIVE")
                )
            ).all()
        found = [row_to(Device, r) for r in rows]
        if len(found) == 1:
            return found[0]
        for d in found:
            if d.name == client_id:
                return d
        return None
