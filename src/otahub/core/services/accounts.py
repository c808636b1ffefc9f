"""Accounts, access keys and tenants."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.services.base import ServiceContext
from otahub.domain.entities import Tenant
from otahub.domain.limits import Refused, check_text
from otahub.store.tables import access_keys, products, tenants

DEFAULT_PRODUCT_KEY = ""
# No tenant row has it (ids count from 1): the id of an instance nothing was written to.
UNSAVED_TENANT_ID = 0


class AccountService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._tenants: dict[tuple[str, str], Tenant] = {}
        self._secrets: dict[str, tuple[str, str]] = {}

    async def ensure_access_key(self, access_key_id: str, secret: str, account_id: str) -> None:
        """Create the key if missing, or give it this secret and account."""
        async with self.ctx.db.transaction() as conn:
            row = (
                await conn.execute(select(access_keys).where(access_keys.c.id == access_key_id))
            ).first()
            if row is None:
                await conn.execute(
                    insert(access_keys).values(
                        id=access_key_id,
                        secret=secret,
                        account_id=account_id,
                        enabled=True,
                        created_at=self.ctx.clock.now(),
                    )
                )
            elif row.secret != secret or row.account_id != account_id:
                await conn.execute(
                    access_keys.update()
                    .where(access_keys.c.id == access_key_id)
                    .values(secret=secret, account_id=account_id, enabled=True)
                )
        self._secrets.pop(access_key_id, None)

    async def lookup_key(self, access_key_id: str) -> tuple[str, str] | None:
        """(secret, account id) of an enabled access key, or None."""
        if access_key_id in self._secrets:
            return self._secrets[access_key_id]
        if not _storable_key_id(access_key_id):
            return None  # no stored key has it; the store may not even take it in a query
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(access_keys.c.secret, access_keys.c.account_id).where(
                        access_keys.c.id == access_key_id, access_keys.c.enabled.is_(True)
                    )
                )
            ).first()
        if row is None:
            return None
        self._secrets[access_key_id] = (row.secret, row.account_id)
        return self._secrets[access_key_id]

    async def find_tenant(self, account_id: str, instance_id: str = "") -> Tenant | None:
        """The tenant of an account (and instance) if it was created, without creating it."""
        key = (account_id, instance_id)
        if key not in self._tenants:
            async with self.ctx.db.read() as conn:
                found = await _find_tenant(conn, account_id, instance_id)
            if found is None:
                return None
            self._tenants[key] = found
        return self._tenants[key]

    async def tenant(self, account_id: str, instance_id: str = "") -> Tenant:
        """The tenant of an account (and instance), created on first use with its
        default product."""
        key = (account_id, instance_id)
        if key in self._tenants:
            return self._tenants[key]
        try:
            async with self.ctx.db.transaction() as conn:
                tenant = await _get_or_create_tenant(conn, account_id, instance_id, self.ctx)
        except IntegrityError:
            # Another process created it between our read and our insert.
            async with self.ctx.db.transaction() as conn:
                tenant = await _get_or_create_tenant(conn, account_id, instance_id, self.ctx)
        self._tenants[key] = tenant
        return tenant


def _storable_key_id(access_key_id: str) -> bool:
    try:
        check_text(access_key_id, "access key id")
    except Refused:
        return False
    return True


async def _find_tenant(conn: AsyncConnection, account_id: str, instance_id: str) -> Tenant | None:
    q = select(tenants).where(
        tenants.c.account_id == account_id, tenants.c.instance_id == instance_id
    )
    row = (await conn.execute(q)).first()
    if row is None:
        return None
    return Tenant(id=row.id, account_id=row.account_id, instance_id=row.instance_id)


async def _get_or_create_tenant(
    conn: AsyncConnection, account_id: str, instance_id: str, ctx: ServiceContext
) -> Tenant:
    found = await _find_tenant(conn, account_id, instance_id)
    if found is None:
        now = ctx.clock.now()
        tid = (
            await conn.execute(
                insert(tenants)
                .values(account_id=account_id, instance_id=instance_id, created_at=now)
                .returning(tenants.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(products).values(
                tenant_id=tid, key=DEFAULT_PRODUCT_KEY, name=DEFAULT_PRODUCT_KEY, created_at=now
            )
        )
        found = Tenant(id=tid, account_id=account_id, instance_id=instance_id)
    return found
