"""Code signing: profiles (a key and certificate, versioned; cancel, revoke) and
signing jobs that sign a stored object's SHA-256 and write the signed object."""

from __future__ import annotations

import base64
import json
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from otahub.core.services.base import ServiceContext
from otahub.core.services.objects import ObjectService, StoredObject
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.signing import SignatureAlgorithm, SigningKeyMaterial, signature_to_base64
from otahub.store.tables import signing_jobs, signing_profiles

_VERSION_CHARS = string.ascii_letters + string.digits
ACTIVE, CANCELED, REVOKED = "Active", "Canceled", "Revoked"


@dataclass(frozen=True)
class SigningProfile:
    id: int
    tenant_id: int
    name: str
    version: str  # 10 letters and digits, as AWS signer's profileVersion
    platform_id: str | None
    status: str
    material: SigningKeyMaterial
    data: dict[str, Any]  # signing parameters, validity, overrides, tags: face-defined
    created_at: datetime


@dataclass(frozen=True)
class SigningJob:
    id: str
    tenant_id: int
    profile_name: str
    profile_version: str
    platform_id: str | None
    status: str  # InProgress, Succeeded, Failed
    status_reason: str | None
    source: dict[str, Any]
    destination: dict[str, Any]
    signature: bytes | None
    signed_object: dict[str, Any] | None
    certificate: str
    created_at: datetime
    completed_at: datetime | None


def _profile(row: Any) -> SigningProfile:
    return SigningProfile(
        row.id,
        row.tenant_id,
        row.name,
        row.version,
        row.platform_id,
        row.status,
        SigningKeyMaterial.from_dict(row.material),
        dict(row.data),
        row.created_at,
    )


class SigningService:
    def __init__(self, ctx: ServiceContext, objects: ObjectService) -> None:
        self.ctx = ctx
        self.objects = objects

    # -- profiles -------------------------------------------------------------------

    async def put_profile(
        self,
        tenant_id: int,
        name: str,
        *,
        platform_id: str | None = None,
        algorithm: SignatureAlgorithm | str = SignatureAlgorithm.ECDSA,
        material: SigningKeyMaterial | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> SigningProfile:
        """Create a profile, or a new version of it when the key changes; the same
        key again returns the current version. Without material otahub makes a key
        and a self-signed code-signing certificate."""
        current = await self._latest(tenant_id, name, any_status=True)
        if (
            current is not None
            and current.status == ACTIVE
            and (material is None or material == current.material)
        ):
            if data is not None and dict(data) != current.data:
                async with self.ctx.db.transaction() as conn:
                    await conn.execute(
                        update(signing_profiles)
                        .where(signing_profiles.c.id == current.id)
                        .values(data=dict(data), updated_at=self.ctx.clock.now())
                    )
                return await self.get_profile(tenant_id, name)
            return current
        material = material or SigningKeyMaterial.generate(algorithm, f"otahub signer {name}")
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                insert(signing_profiles).values(
                    tenant_id=tenant_id,
                    name=name,
                    version="".join(secrets.choice(_VERSION_CHARS) for _ in range(10)),
                    platform_id=platform_id,
                    status=ACTIVE,
                    material=material.to_dict(),
                    data=dict(data or {}),
                    created_at=now,
                    updated_at=now,
                )
            )
        return await self.get_profile(tenant_id, name)

    async def get_profile(self, tenant_id: int, name: str) -> SigningProfile:
        found = await self._latest(tenant_id, name, any_status=True)
        if found is None:
            raise NotFound(f"signing profile {name} not found")
        return found

    async def _latest(
        self, tenant_id: int, name: str, *, any_status: bool
    ) -> SigningProfile | None:
        q = select(signing_profiles).where(
            signing_profiles.c.tenant_id == tenant_id, signing_profiles.c.name == name
        )
        if not any_status:
            q = q.where(signing_profiles.c.status == ACTIVE)
        async with self.ctx.db.read() as conn:
            row = (await conn.execute(q.order_by(signing_profiles.c.id.desc()).limit(1))).first()
        return _profile(row) if row is not None else None

    async def list_profiles(
        self, tenant_id: int, *, include_canceled: bool = False, platform_id: str | None = None
    ) -> list[SigningProfile]:
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(signing_profiles)
                .where(signing_profiles.c.tenant_id == tenant_id)
                .order_by(signing_profiles.c.name, signing_profiles.c.id.desc())
            )
            latest: dict[str, SigningProfile] = {}
            for r in rows:
                latest.setdefault(r.name, _profile(r))
        return [
            p
            for p in latest.values()
            if (include_canceled or p.status == ACTIVE)
            and (platform_id is None or p.platform_id == platform_id)
        ]

    async def cancel_profile(self, tenant_id: int, name: str) -> None:
        """The profile signs nothing more; signatures it made stay valid."""
        await self._set_status(tenant_id, name, None, CANCELED)

    async def revoke_profile(
        self,
        tenant_id: int,
        name: str,
        version: str,
        reason: str,
        record: Mapping[str, Any] | None = None,
    ) -> None:
        """The version's signatures are no longer to be trusted (`record`: who and
        when, kept with the profile as the face gives it)."""
        extra = {"revocation_reason": reason, **({"revocation": dict(record)} if record else {})}
        await self._set_status(tenant_id, name, version, REVOKED, extra)

    async def _set_status(
        self,
        tenant_id: int,
        name: str,
        version: str | None,
        status: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        profile = await self.get_profile(tenant_id, name)
        cond = [signing_profiles.c.tenant_id == tenant_id, signing_profiles.c.name == name]
        if version is not None:
            cond.append(signing_profiles.c.version == version)
        async with self.ctx.db.transaction() as conn:
            result = await conn.execute(
                update(signing_profiles)
                .where(*cond)
                .values(
                    status=status,
                    updated_at=self.ctx.clock.now(),
                    data={**profile.data, **(extra or {})},
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"signing profile {name} version {version} not found")

    # -- jobs -----------------------------------------------------------------------

    async def start_job(
        self,
        tenant_id: int,
        profile_name: str,
        *,
        bucket: str,
        key: str,
        version: str | None,
        dest_bucket: str,
        dest_prefix: str = "",
        client_token: str | None = None,
    ) -> SigningJob:
        """Sign a stored object with the profile's current key and write the signed
        object (the JSON that AWS's FreeRTOS platforms produce) to the destination."""
        if client_token:
            existing = await self._job_by_token(tenant_id, client_token)
            if existing is not None:
                return existing
        profile = await self._latest(tenant_id, profile_name, any_status=False)
        if profile is None:
            raise InvalidRequest(
                f"signing profile {profile_name} is not active", code="AccessDeniedException"
            )
        obj = await self.objects.get(tenant_id, bucket, key, version)
        if not obj.sha256:
            raise InvalidRequest("the source object has no SHA-256")
        signature = profile.material.sign_digest(obj.sha256)
        job_id = str(uuid.uuid4())
        signed_key = f"{dest_prefix}{job_id}"
        await self.objects.get_bucket(tenant_id, dest_bucket)
        await self.objects.put(
            tenant_id,
            dest_bucket,
            signed_key,
            self._signed_document(obj, profile, signature),
            content_type="application/json",
        )
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                insert(signing_jobs).values(
                    id=job_id,
                    tenant_id=tenant_id,
                    profile_id=profile.id,
                    status="Succeeded",
                    source={"bucket": bucket, "key": key, "version": obj.version_id},
                    destination={"bucket": dest_bucket, "prefix": dest_prefix},
                    signature=signature,
                    signed_object={"bucket": dest_bucket, "key": signed_key},
                    client_token=client_token,
                    created_at=now,
                    completed_at=now,
                )
            )
        return await self.get_job(tenant_id, job_id)

    def _signed_document(
        self, obj: StoredObject, profile: SigningProfile, signature: bytes
    ) -> AsyncIterator[bytes]:
        """{"rawPayloadSize", "signature", "signatureAlgorithm", "payload"} with the
        payload base64-encoded on the fly (whole groups of 3 bytes at a time)."""
        algorithm = f"SHA256with{profile.material.algorithm.value}"
        head = (
            json.dumps(
                {
                    "rawPayloadSize": obj.size,
                    "signature": signature_to_base64(signature),
                    "signatureAlgorithm": algorithm,
                }
            )[:-1]
            + ', "payload": "'
        )
        blobs = self.objects.blobs

        async def chunks() -> AsyncIterator[bytes]:
            yield head.encode()
            carry = b""
            if obj.blob_key is not None:
                async for chunk in blobs.open_range(obj.blob_key):
                    data = carry + chunk
                    cut = len(data) - len(data) % 3
                    yield base64.b64encode(data[:cut])
                    carry = data[cut:]
            yield base64.b64encode(carry) + b'"}'

        return chunks()

    async def get_job(self, tenant_id: int, job_id: str) -> SigningJob:
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        signing_jobs,
                        signing_profiles.c.name,
                        signing_profiles.c.version,
                        signing_profiles.c.platform_id,
                        signing_profiles.c.material,
                    )
                    .join(signing_profiles, signing_profiles.c.id == signing_jobs.c.profile_id)
                    .where(signing_jobs.c.id == job_id)
                )
            ).first()
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"signing job {job_id} not found")
        return _job(row)

    async def list_jobs(self, tenant_id: int, *, limit: int = 100) -> list[SigningJob]:
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(
                    signing_jobs,
                    signing_profiles.c.name,
                    signing_profiles.c.version,
                    signing_profiles.c.platform_id,
                    signing_profiles.c.material,
                )
                .join(signing_profiles, signing_profiles.c.id == signing_jobs.c.profile_id)
                .where(signing_jobs.c.tenant_id == tenant_id)
                .order_by(signing_jobs.c.created_at.desc())
                .limit(limit)
            )
            return [_job(r) for r in rows]

    async def _job_by_token(self, tenant_id: int, token: str) -> SigningJob | None:
        async with self.ctx.db.read() as conn:
            found = (
                await conn.execute(
                    select(signing_jobs.c.id).where(
                        signing_jobs.c.tenant_id == tenant_id,
                        signing_jobs.c.client_token == token,
                    )
                )
            ).first()
        return await self.get_job(tenant_id, found.id) if found is not None else None


def _job(row: Any) -> SigningJob:
    return SigningJob(
        id=row.id,
        tenant_id=row.tenant_id,
        profile_name=row.name,
        profile_version=row.version,
        platform_id=row.platform_id,
        status=row.status,
        status_reason=row.status_reason,
        source=dict(row.source),
        destination=dict(row.destination),
        signature=row.signature,
        signed_object=dict(row.signed_object) if row.signed_object else None,
        certificate=row.material["certificate_pem"],
        created_at=row.created_at,
        completed_at=row.completed_at,
    )
