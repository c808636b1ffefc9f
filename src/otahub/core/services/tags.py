"""Tags on resources, named by an opaque string the face chooses (AWS: the ARN)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.services.base import ServiceContext
from otahub.domain.errors import LimitExceeded
from otahub.domain.tags import MAX_TAGS, Tag, check_resource, check_tags
from otahub.store.tables import tags as tags_table


class TagService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def tag(self, tenant_id: int, resource: str, tags: Sequence[Tag]) -> None:
        """Add tags, replacing the values of keys the resource already has."""
        async with self.ctx.db.transaction() as conn:
            await write_tags(conn, tenant_id, resource, tags)

    async def untag(self, tenant_id: int, resource: str, keys: Sequence[str]) -> None:
        check_resource(resource)
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                delete(tags_table).where(
                    tags_table.c.tenant_id == tenant_id,
                    tags_table.c.resource == resource,
                    tags_table.c.key.in_(list(keys)),
                )
            )

    async def untag_all(self, tenant_id: int, resource: str) -> None:
        """For a resource being deleted."""
        async with self.ctx.db.transaction() as conn:
            await drop_tags(conn, tenant_id, resource)

    async def list(self, tenant_id: int, resource: str) -> list[Tag]:
        """The resource's tags, by key."""
        check_resource(resource)
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(tags_table.c.key, tags_table.c.value)
                .where(tags_table.c.tenant_id == tenant_id, tags_table.c.resource == resource)
                .order_by(tags_table.c.key)
            )
            return [Tag(r.key, r.value) for r in rows]


async def write_tags(
    conn: AsyncConnection, tenant_id: int, resource: str, tags: Sequence[Tag]
) -> None:
    """Tag inside the caller's transaction, so that a resource created with tags is
    created with all of them or not at all."""
    check_resource(resource)
    check_tags(tags)
    if not tags:
        return
    await conn.execute(
        delete(tags_table).where(
            tags_table.c.tenant_id == tenant_id,
            tags_table.c.resource == resource,
            tags_table.c.key.in_([t.key for t in tags]),
        )
    )
    kept = (
        await conn.execute(
            select(func.count()).where(
                tags_table.c.tenant_id == tenant_id, tags_table.c.resource == resource
            )
        )
    ).scalar_one()
    if kept + len(tags) > MAX_TAGS:
        raise LimitExceeded(f"a resource has at most {MAX_TAGS} tags")
    await conn.execute(
        insert(tags_table),
        [
            {"tenant_id": tenant_id, "resource": resource, "key": t.key, "value": t.value}
            for t in tags
        ],
    )


async def drop_tags(conn: AsyncConnection, tenant_id: int, resource: str) -> None:
    """Every tag of a resource, inside the caller's transaction (the resource's delete)."""
    await conn.execute(
        delete(tags_table).where(
            tags_table.c.tenant_id == tenant_id, tags_table.c.resource == resource
        )
    )
