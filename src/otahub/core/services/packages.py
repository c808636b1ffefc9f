"""Packages: a firmware version with its files, and its verification state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.services.base import ServiceContext
from otahub.domain.entities import Package, PackageFile, row_to
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from otahub.domain.ids import opaque_id
from otahub.domain.states import ACTIVE_JOB, VerifyState
from otahub.store.tables import jobs, package_files, packages


class PackageService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def create_package(
        self,
        tenant_id: int,
        *,
        name: str,
        version: str,
        files: Sequence[PackageFile],
        ref: str | None = None,
        product_id: int | None = None,
        module: str = "default",
        source_version: str | None = None,
        description: str | None = None,
        need_verify: bool = False,
        data: Mapping[str, Any] | None = None,
    ) -> Package:
        if source_version is not None and source_version == version:
            raise InvalidRequest("a differential package's source version must differ")
        now = self.ctx.clock.now()
        state = VerifyState.UNVERIFIED if need_verify else VerifyState.NOT_REQUIRED
        async with self.ctx.db.transaction() as conn:
            try:
                pid = (
                    await conn.execute(
                        insert(packages)
                        .values(
                            tenant_id=tenant_id,
                            ref=ref or opaque_id(),
                            product_id=product_id,
                            name=name,
                            module=module,
                            version=version,
                            source_version=source_version,
                            description=description,
                            verify_state=state.value,
                            data=dict(data or {}),
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(packages.c.id)
                    )
                ).scalar_one()
            except IntegrityError as exc:
                raise AlreadyExists(f"package {ref} already exists") from exc
            if files:
                await conn.execute(
                    insert(package_files),
                    [
                        {
                            "package_id": pid,
                            "ordinal": f.ordinal,
                            "name": f.name,
                            "blob_key": f.blob_key,
                            "url": f.url,
                            "size": f.size,
                            "sha256": f.sha256,
                            "md5": f.md5,
                            "signature": f.signature,
                            "hash_algorithm": f.hash_algorithm,
                            "signature_algorithm": f.signature_algorithm,
                            "certificate": f.certificate,
                            "file_type": f.file_type,
                            "attributes": dict(f.attributes),
                        }
                        for f in files
                    ],
                )
            return await load_package(conn, pid)

    async def get_package(self, tenant_id: int, ref: str) -> Package:
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(packages.c.id).where(
                        packages.c.tenant_id == tenant_id, packages.c.ref == ref
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"package {ref} not found")
            return await load_package(conn, row.id)

    async def get_package_by_id(self, package_id: int) -> Package:
        async with self.ctx.db.read() as conn:
            return await load_package(conn, package_id)

    async def set_verify_state(self, package_id: int, state: VerifyState) -> None:
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                update(packages)
                .where(packages.c.id == package_id)
                .values(verify_state=state.value, updated_at=self.ctx.clock.now())
            )

    async def list_packages(
        self,
        tenant_id: int,
        *,
        product_id: int | None = None,
        version: str | None = None,
        name: str | None = None,
        with_product: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[Package], int]:
        """A page of the tenant's packages, newest first, and how many match in all
        (`with_product`: only packages that belong to a product)."""
        cond = [packages.c.tenant_id == tenant_id]
        if with_product:
            cond.append(packages.c.product_id.is_not(None))
        if product_id is not None:
            cond.append(packages.c.product_id == product_id)
        if version is not None:
            cond.append(packages.c.version == version)
        if name is not None:
            cond.append(packages.c.name == name)
        async with self.ctx.db.read() as conn:
            total = (await conn.execute(select(func.count()).where(*cond))).scalar_one()
            ids = (
                await conn.execute(
                    select(packages.c.id)
                    .where(*cond)
                    .order_by(packages.c.id.desc())
                    .offset(offset)
                    .limit(limit)
                )
            ).scalars()
            return [await load_package(conn, i) for i in ids], int(total)

    async def update_package(
        self,
        tenant_id: int,
        ref: str,
        *,
        name: str | None = None,
        description: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Package:
        """Rename, describe, or merge keys into `data`."""
        package = await self.get_package(tenant_id, ref)
        values: dict[str, Any] = {"updated_at": self.ctx.clock.now()}
        if name is not None:
            values["name"] = name
        if description is not None:
            values["description"] = description
        if data is not None:
            values["data"] = {**package.data, **data}
        async with self.ctx.db.transaction() as conn:
            await conn.execute(update(packages).where(packages.c.id == package.id).values(**values))
            return await load_package(conn, package.id)

    async def delete_package(self, tenant_id: int, ref: str) -> Package:
        """Delete a package no active job uses; finished jobs keep their history
        without it. Returns the deleted package (its files' blobs are the caller's)."""
        package = await self.get_package(tenant_id, ref)
        async with self.ctx.db.transaction() as conn:
            active = (
                await conn.execute(
                    select(func.count()).where(
                        jobs.c.package_id == package.id,
                        jobs.c.status.in_([s.value for s in ACTIVE_JOB]),
                    )
                )
            ).scalar_one()
            if active:
                raise Conflict(f"package {ref} has active jobs", ref=ref)
            await conn.execute(
                update(jobs).where(jobs.c.package_id == package.id).values(package_id=None)
            )
            await conn.execute(
                delete(package_files).where(package_files.c.package_id == package.id)
            )
            await conn.execute(delete(packages).where(packages.c.id == package.id))
        return package


async def load_package(conn: AsyncConnection, package_id: int) -> Package:
    row = (await conn.execute(select(packages).where(packages.c.id == package_id))).first()
    if row is None:
        raise NotFound("package not found")
    frows = await conn.execute(
        select(package_files)
        .where(package_files.c.package_id == package_id)
        .order_by(package_files.c.ordinal)
    )
    files = tuple(row_to(PackageFile, f) for f in frows)
    return row_to(Package, row, files=files)
