"""Firmware modules of a product: named parts a device updates on their own
(Alibaba's OTA modules). The `default` module always exists and is implicit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.services.base import ServiceContext
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, LimitExceeded, NotFound
from otahub.store.tables import modules, packages, products

DEFAULT_MODULE = "default"


@dataclass(frozen=True)
class Module:
    product_id: int
    name: str
    alias: str | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class ModuleService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def create_module(
        self,
        tenant_id: int,
        product_key: str,
        name: str,
        *,
        alias: str | None = None,
        description: str | None = None,
        max_modules: int | None = None,
    ) -> Module:
        if name.lower() == DEFAULT_MODULE:
            raise InvalidRequest("the default module exists already", default_module=True)
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            pid = await _product_id(conn, tenant_id, product_key)
            count = (
                await conn.execute(select(func.count()).where(modules.c.product_id == pid))
            ).scalar_one()
            if max_modules is not None and count >= max_modules:
                raise LimitExceeded("the product has the maximum number of modules")
            try:
                await conn.execute(
                    insert(modules).values(
                        product_id=pid,
                        name=name,
                        name_folded=name.lower(),
                        alias=alias,
                        description=description,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"module {name} already exists", name=name) from exc
        return await self.get_module(tenant_id, product_key, name)

    async def get_module(self, tenant_id: int, product_key: str, name: str) -> Module:
        async with self.ctx.db.read() as conn:
            pid = await _product_id(conn, tenant_id, product_key)
            row = (
                await conn.execute(
                    select(modules).where(
                        modules.c.product_id == pid, modules.c.name_folded == name.lower()
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"module {name} not found", name=name)
        return _module(row)

    async def update_module(
        self,
        tenant_id: int,
        product_key: str,
        name: str,
        *,
        alias: str | None = None,
        description: str | None = None,
    ) -> Module:
        now = self.ctx.clock.now()
        values: dict[str, object] = {"updated_at": now}
        if alias is not None:
            values["alias"] = alias
        if description is not None:
            values["description"] = description
        async with self.ctx.db.transaction() as conn:
            pid = await _product_id(conn, tenant_id, product_key)
            result = await conn.execute(
                update(modules)
                .where(modules.c.product_id == pid, modules.c.name_folded == name.lower())
                .values(**values)
            )
            if not result.rowcount:
                raise NotFound(f"module {name} not found", name=name)
        return await self.get_module(tenant_id, product_key, name)

    async def delete_module(self, tenant_id: int, product_key: str, name: str) -> None:
        async with self.ctx.db.transaction() as conn:
            pid = await _product_id(conn, tenant_id, product_key)
            row = (
                await conn.execute(
                    select(modules.c.id, modules.c.name).where(
                        modules.c.product_id == pid, modules.c.name_folded == name.lower()
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"module {name} not found", name=name)
            used = (
                await conn.execute(
                    select(func.count()).where(
                        packages.c.product_id == pid, packages.c.module == row.name
                    )
                )
            ).scalar_one()
            if used:
                raise Conflict(f"module {name} has firmware", name=name)
            await conn.execute(delete(modules).where(modules.c.id == row.id))

    async def list_modules(self, tenant_id: int, product_key: str) -> list[Module]:
        async with self.ctx.db.read() as conn:
            pid = await _product_id(conn, tenant_id, product_key)
            rows = await conn.execute(
                select(modules).where(modules.c.product_id == pid).order_by(modules.c.id)
            )
            return [_module(r) for r in rows]


def _module(row: Any) -> Module:
    return Module(
        product_id=row.product_id,
        name=row.name,
        alias=row.alias,
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _product_id(conn: AsyncConnection, tenant_id: int, key: str) -> int:
    row = (
        await conn.execute(
            select(products.c.id).where(products.c.tenant_id == tenant_id, products.c.key == key)
        )
    ).first()
    if row is None:
        raise NotFound(f"product {key} not found", product_key=key)
    return int(row.id)
