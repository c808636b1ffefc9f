"""The device registry: products, devices, installed versions, groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.core.services.accounts import DEFAULT_PRODUCT_KEY
from otahub.core.services.base import IN_CHUNK, ServiceContext
from otahub.core.services.tags import drop_tags, write_tags
from otahub.domain import selectors as sel
from otahub.domain.entities import Device, Group, Product, row_to
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound, VersionConflict
from otahub.domain.ids import new_uuid
from otahub.domain.tags import Tag, check_tags
from otahub.store.selectors import group_descendants
from otahub.store.tables import (
    device_groups,
    device_modules,
    devices,
    group_members,
    products,
    tenants,
)
from otahub.store.types import UTCDateTime

# A device by (tenant, product key, name), with its product key: what a device
# logging in, checking in or being described is looked up by.
DEVICE_BY_NAME = (
    select(devices, products.c.key.label("product_key"))
    .join(products, products.c.id == devices.c.product_id)
    .where(
        products.c.tenant_id == bindparam("tenant_id", None),
        products.c.key == bindparam("product_key", None),
        devices.c.name == bindparam("name", None),
    )
)
_DEVICE_FIELDS = {f.name for f in fields(Device)}


class Keep(Enum):
    """For an optional field of an update: leave it as it is (None would clear it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


class RegistryService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._device_by_name = ctx.db.prepare(DEVICE_BY_NAME)
        keys = self._device_by_name.keys
        self._device_columns = [(i, k) for i, k in enumerate(keys) if k in _DEVICE_FIELDS]

    # -- products -------------------------------------------------------------------

    async def create_product(
        self,
        tenant_id: int,
        key: str,
        name: str,
        *,
        description: str | None = None,
        node_type: int = 0,
        secret: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Product:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            try:
                await conn.execute(
                    insert(products).values(
                        tenant_id=tenant_id,
                        key=key,
                        name=name,
                        description=description,
                        node_type=node_type,
                        secret=secret,
                        data=dict(data or {}),
                        created_at=now,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"product {key} already exists") from exc
            return await _product(conn, tenant_id, key)

    async def get_product(self, tenant_id: int, key: str) -> Product:
        async with self.ctx.db.read() as conn:
            return await _product(conn, tenant_id, key)

    async def list_products(self, tenant_id: int) -> list[Product]:
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(products)
                .where(products.c.tenant_id == tenant_id, products.c.key != DEFAULT_PRODUCT_KEY)
                .order_by(products.c.id)
            )
            return [row_to(Product, r) for r in rows]

    # -- devices --------------------------------------------------------------------

    async def create_device(
        self,
        tenant_id: int,
        name: str,
        *,
        product_key: str = DEFAULT_PRODUCT_KEY,
        attributes: Mapping[str, str] | None = None,
        type_name: str | None = None,
        secret: str | None = None,
        uid: str | None = None,
    ) -> Device:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            product = await _product(conn, tenant_id, product_key)
            try:
                await conn.execute(
                    insert(devices).values(
                        tenant_id=tenant_id,
                        product_id=product.id,
                        name=name,
                        uid=uid or new_uuid(),
                        secret=secret,
                        type_name=type_name,
                        attributes=dict(attributes or {}),
                        created_at=now,
                        changed_at=now,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"device {name} already exists", name=name) from exc
            return await _device(conn, tenant_id, product.id, name)

    async def create_devices_bulk(
        self,
        tenant_id: int,
        names: Sequence[str],
        *,
        product_key: str = DEFAULT_PRODUCT_KEY,
        secrets: Sequence[str] | None = None,
    ) -> int:
        """Register many devices in one statement; returns how many were created."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            product = await _product(conn, tenant_id, product_key)
            rows: list[dict[str, Any]] = [
                {
                    "tenant_id": tenant_id,
                    "product_id": product.id,
                    "name": n,
                    "uid": new_uuid(),
                    "secret": secrets[i] if secrets else None,
                    "attributes": {},
                    "created_at": now,
                    "changed_at": now,
                }
                for i, n in enumerate(names)
            ]
            try:
                await conn.execute(insert(devices), rows)
            except IntegrityError as exc:
                raise AlreadyExists("a device of that name already exists") from exc
            return len(rows)

    async def get_device(
        self, tenant_id: int, name: str, *, product_key: str = DEFAULT_PRODUCT_KEY
    ) -> Device:
        async with self.ctx.db.read() as conn:
            product = await _product(conn, tenant_id, product_key)
            return await _device(conn, tenant_id, product.id, name, with_modules=True)

    async def get_device_by_uid(self, uid: str) -> Device:
        async with self.ctx.db.read() as conn:
            row = (await conn.execute(select(devices).where(devices.c.uid == uid))).first()
            if row is None:
                raise NotFound(f"device {uid} not found")
            return row_to(Device, row, modules=await _modules(conn, row.id))

    async def get_devices(self, ids: Sequence[int]) -> list[Device]:
        """Devices by id, with their product key, in one query."""
        wanted = list(ids)
        found: list[Device] = []
        async with self.ctx.db.read() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                rows = await conn.execute(
                    select(devices, products.c.key.label("product_key"))
                    .join(products, products.c.id == devices.c.product_id)
                    .where(devices.c.id.in_(wanted[start : start + IN_CHUNK]))
                )
                found.extend(row_to(Device, r) for r in rows)
        return found

    async def find_device(
        self, tenant_id: int, name: str, product_key: str = DEFAULT_PRODUCT_KEY
    ) -> Device | None:
        """The device, or None: for the gateway's and the API's hot path (one indexed
        query, prepared once)."""
        rows = await self._device_by_name.all(
            tenant_id=tenant_id, product_key=product_key, name=name
        )
        if not rows:
            return None
        row = rows[0]
        return Device(**{k: row[i] for i, k in self._device_columns})

    async def find_by_product_key(
        self, tenant_id: int, product_key: str, name: str
    ) -> Device | None:
        """An Alibaba device by product key and name in any tenant (instance) of the
        account that owns `tenant_id`: product keys are generated unique, and a device
        logging in names no instance. One indexed query; None if not exactly one."""
        if product_key == DEFAULT_PRODUCT_KEY:
            return None
        owner = tenants.alias("owner")
        async with self.ctx.db.read() as conn:
            rows = (
                await conn.execute(
                    select(devices, products.c.key.label("product_key"))
                    .join(products, products.c.id == devices.c.product_id)
                    .join(tenants, tenants.c.id == products.c.tenant_id)
                    .join(owner, owner.c.account_id == tenants.c.account_id)
                    .where(
                        owner.c.id == tenant_id,
                        products.c.key == product_key,
                        devices.c.name == name,
                    )
                    .limit(2)
                )
            ).all()
            return row_to(Device, rows[0]) if len(rows) == 1 else None

    async def update_device(
        self,
        device_id: int,
        *,
        attributes: Mapping[str, str | None] | None = None,
        merge: bool = True,
        type_name: str | None = None,
        remove_type: bool = False,
        expected_version: int | None = None,
    ) -> Device:
        """Change attributes (merge: a None value removes the key) and type."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            row = (await conn.execute(select(devices).where(devices.c.id == device_id))).first()
            if row is None:
                raise NotFound("device not found")
            if expected_version is not None and row.version != expected_version:
                raise VersionConflict(
                    f"expected version {expected_version}, current is {row.version}",
                    current={"version": row.version},
                )
            values: dict[str, Any] = {"version": row.version + 1, "changed_at": now}
            if attributes is not None:
                attrs = dict(row.attributes) if merge else {}
                for k, v in attributes.items():
                    if v is None or (merge and v == ""):
                        attrs.pop(k, None)
                    else:
                        attrs[k] = v
                values["attributes"] = attrs
            if type_name is not None:
                values["type_name"] = type_name
            if remove_type:
                values["type_name"] = None
            await conn.execute(update(devices).where(devices.c.id == device_id).values(**values))
            row = (await conn.execute(select(devices).where(devices.c.id == device_id))).one()
            return row_to(Device, row, modules=await _modules(conn, device_id))

    async def delete_device(self, device_id: int, *, expected_version: int | None = None) -> None:
        async with self.ctx.db.transaction() as conn:
            row = (
                await conn.execute(select(devices.c.version).where(devices.c.id == device_id))
            ).first()
            if row is None:
                return
            if expected_version is not None and row.version != expected_version:
                raise VersionConflict(
                    f"expected version {expected_version}, current is {row.version}",
                    current={"version": row.version},
                )
            await conn.execute(delete(devices).where(devices.c.id == device_id))

    async def list_devices(
        self,
        tenant_id: int,
        *,
        product_key: str | None = None,
        after_id: int = 0,
        limit: int = 100,
        selector: sel.Selector | None = None,
    ) -> list[Device]:
        from otahub.store.selectors import compile_selector

        q = select(devices).where(devices.c.tenant_id == tenant_id, devices.c.id > after_id)
        async with self.ctx.db.read() as conn:
            if product_key is not None:
                product = await _product(conn, tenant_id, product_key)
                q = q.where(devices.c.product_id == product.id)
            if selector is not None:
                q = q.where(compile_selector(selector, tenant_id))
            rows = await conn.execute(q.order_by(devices.c.id).limit(limit))
            return [row_to(Device, r) for r in rows]

    async def set_connected(
        self, device_id: int, connected: bool, *, at: datetime | None = None
    ) -> bool:
        """Record a connect or disconnect. `at`: when the broker saw it (events that
        arrive late); one older than the device's last connect or disconnect is
        ignored, so a stale disconnect cannot mark a reconnected device offline.
        False if ignored."""
        now = self.ctx.clock.now()
        when = at or now
        stamp = {"connected_at": when} if connected else {"disconnected_at": when}
        query = update(devices).where(devices.c.id == device_id)
        if at is not None:
            for column in (devices.c.connected_at, devices.c.disconnected_at):
                query = query.where(or_(column.is_(None), column <= at))
        async with self.ctx.db.transaction() as conn:
            done = await conn.execute(query.values(connected=connected, changed_at=now, **stamp))
        return bool(done.rowcount)

    async def report_version(self, device_id: int, module: str, version: str) -> None:
        """Record the version a device says it runs for one module."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            changed = await conn.execute(
                update(device_modules)
                .where(device_modules.c.device_id == device_id, device_modules.c.module == module)
                .values(version=version, reported_at=now)
            )
            if changed.rowcount == 0:
                await conn.execute(
                    insert(device_modules).values(
                        device_id=device_id, module=module, version=version, reported_at=now
                    )
                )
            await conn.execute(
                update(devices).where(devices.c.id == device_id).values(changed_at=now)
            )

    # -- groups ---------------------------------------------------------------------

    async def create_group(
        self,
        tenant_id: int,
        name: str,
        *,
        parent: str | None = None,
        description: str | None = None,
        attributes: Mapping[str, str] | None = None,
        selector: sel.Selector | None = None,
        query: str | None = None,
        data: Mapping[str, Any] | None = None,
        tags: Sequence[Tag] = (),
        tagged_as: str | None = None,
    ) -> Group:
        """A group, with its tags under the name `tagged_as` (the face's name for it)."""
        check_tags(tags)
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            parent_id = None
            if parent is not None:
                p = await _group(conn, tenant_id, parent)
                if p.dynamic:
                    raise InvalidRequest("a dynamic group cannot be a parent")
                parent_id = p.id
            if selector is not None and parent_id is not None:
                raise InvalidRequest("a dynamic group cannot be part of a hierarchy")
            try:
                await conn.execute(
                    insert(device_groups).values(
                        tenant_id=tenant_id,
                        name=name,
                        uid=new_uuid(),
                        parent_id=parent_id,
                        dynamic=selector is not None,
                        selector=sel.to_json(selector) if selector is not None else None,
                        query=query,
                        description=description,
                        attributes=dict(attributes or {}),
                        data=dict(data or {}),
                        created_at=now,
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(f"group {name} already exists", name=name) from exc
            if tags:
                if tagged_as is None:
                    raise InvalidRequest("tags need the name the group is tagged as")
                await write_tags(conn, tenant_id, tagged_as, tags)
            return await _group(conn, tenant_id, name)

    async def get_group(self, tenant_id: int, name: str) -> Group:
        async with self.ctx.db.read() as conn:
            return await _group(conn, tenant_id, name)

    async def update_group(
        self,
        tenant_id: int,
        name: str,
        *,
        description: str | Keep | None = KEEP,
        attributes: Mapping[str, str] | None = None,
        merge: bool = False,
        expected_version: int | None = None,
    ) -> Group:
        """Change a group's description and attributes: the given attributes replace
        them, or with `merge` are merged in; an empty value removes an attribute either
        way. The version grows by one; with `expected_version`, only from that one."""
        async with self.ctx.db.transaction() as conn:
            g = await _group(conn, tenant_id, name, lock=True)
            if expected_version is not None and expected_version != g.version:
                raise VersionConflict(
                    f"thing group {name} is at version {g.version}, not {expected_version}",
                    current={"version": g.version},
                )
            values: dict[str, Any] = {"version": g.version + 1}
            if attributes is not None:
                merged = {**g.attributes, **attributes} if merge else dict(attributes)
                values["attributes"] = {k: v for k, v in merged.items() if v != ""}
            if not isinstance(description, Keep):
                values["description"] = description
            # The row lock (PostgreSQL) or the write lock (SQLite) holds the version
            # still; the condition says so again should either be weaker than thought.
            done = await conn.execute(
                update(device_groups)
                .where(device_groups.c.id == g.id, device_groups.c.version == g.version)
                .values(**values)
            )
            if done.rowcount == 0:
                raise VersionConflict(f"thing group {name} changed while being updated")
            return await _group(conn, tenant_id, name)

    async def list_groups(
        self,
        tenant_id: int,
        *,
        parent: str | None = None,
        recursive: bool = False,
        name_prefix: str | None = None,
    ) -> list[Group]:
        """Groups by name: all of them, or a parent's children (every descendant if
        `recursive`), with names starting with `name_prefix`."""
        q = select(device_groups).where(device_groups.c.tenant_id == tenant_id)
        if name_prefix:
            q = q.where(func.substr(device_groups.c.name, 1, len(name_prefix)) == name_prefix)
        async with self.ctx.db.read() as conn:
            if parent is not None:
                root = await _group(conn, tenant_id, parent)
                if recursive:
                    tree = group_descendants(root.id)
                    q = q.where(
                        device_groups.c.id.in_(select(tree.c.id)), device_groups.c.id != root.id
                    )
                else:
                    q = q.where(device_groups.c.parent_id == root.id)
            rows = await conn.execute(q.order_by(device_groups.c.name))
            return [row_to(Group, r) for r in rows]

    async def group_ancestors(self, group: Group) -> list[Group]:
        """The groups above `group` in its hierarchy, from the root down to its parent."""
        chain: list[Group] = []
        async with self.ctx.db.read() as conn:
            parent_id = group.parent_id
            while parent_id is not None:  # a parent is older than its child: no cycle
                row = (
                    await conn.execute(select(device_groups).where(device_groups.c.id == parent_id))
                ).first()
                if row is None:
                    break
                chain.append(row_to(Group, row))
                parent_id = row.parent_id
        return chain[::-1]

    async def get_group_by_uid(self, tenant_id: int, uid: str) -> Group:
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(device_groups).where(
                        device_groups.c.tenant_id == tenant_id, device_groups.c.uid == uid
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"group {uid} not found", uid=uid)
        return row_to(Group, row)

    async def delete_group(
        self, tenant_id: int, name: str, *, tagged_as: str | None = None
    ) -> None:
        """Delete a group without child groups, and its tags (under `tagged_as`)."""
        async with self.ctx.db.transaction() as conn:
            g = (
                await conn.execute(
                    select(device_groups.c.id).where(
                        device_groups.c.tenant_id == tenant_id, device_groups.c.name == name
                    )
                )
            ).first()
            if g is None:
                return
            has_children = (
                await conn.execute(select(func.count()).where(device_groups.c.parent_id == g.id))
            ).scalar_one()
            if has_children:
                raise Conflict(f"group {name} has child groups")
            await conn.execute(delete(device_groups).where(device_groups.c.id == g.id))
            if tagged_as is not None:
                await drop_tags(conn, tenant_id, tagged_as)

    async def add_to_group(self, tenant_id: int, group: str, device_ids: Sequence[int]) -> None:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            g = await _group(conn, tenant_id, group)
            if g.dynamic:
                raise InvalidRequest("devices cannot be added to a dynamic group by hand")
            existing = set(
                (
                    await conn.execute(
                        select(group_members.c.device_id).where(
                            group_members.c.group_id == g.id,
                            group_members.c.device_id.in_(device_ids),
                        )
                    )
                ).scalars()
            )
            new = [d for d in dict.fromkeys(device_ids) if d not in existing]
            if new:
                await conn.execute(
                    insert(group_members),
                    [{"group_id": g.id, "device_id": d, "added_at": now} for d in new],
                )
                await conn.execute(
                    update(devices).where(devices.c.id.in_(new)).values(changed_at=now)
                )

    async def add_group_members_from_query(self, tenant_id: int, group: str) -> int:
        """Put every device of the tenant in a static group (bulk, for fleets and benches)."""
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            g = await _group(conn, tenant_id, group)
            result = await conn.execute(
                insert(group_members).from_select(
                    ["group_id", "device_id", "added_at"],
                    select(literal(g.id), devices.c.id, literal(now, UTCDateTime())).where(
                        devices.c.tenant_id == tenant_id
                    ),
                )
            )
            return int(result.rowcount or 0)

    async def remove_from_group(
        self, tenant_id: int, group: str, device_ids: Sequence[int]
    ) -> None:
        now = self.ctx.clock.now()
        async with self.ctx.db.transaction() as conn:
            g = await _group(conn, tenant_id, group)
            await conn.execute(
                delete(group_members).where(
                    and_(
                        group_members.c.group_id == g.id, group_members.c.device_id.in_(device_ids)
                    )
                )
            )
            await conn.execute(
                update(devices).where(devices.c.id.in_(device_ids)).values(changed_at=now)
            )

    async def group_member_ids(
        self,
        tenant_id: int,
        group: str,
        *,
        recursive: bool = False,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[int]:
        async with self.ctx.db.read() as conn:
            g = await _group(conn, tenant_id, group)
            ids = select(group_members.c.device_id).where(group_members.c.device_id > after_id)
            if recursive:
                tree = group_descendants(g.id)
                ids = ids.where(group_members.c.group_id.in_(select(tree.c.id)))
            else:
                ids = ids.where(group_members.c.group_id == g.id)
            rows = await conn.execute(
                ids.distinct().order_by(group_members.c.device_id).limit(limit)
            )
            return list(rows.scalars())

    async def groups_of_device(self, device_id: int) -> list[Group]:
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(device_groups)
                .join(group_members, group_members.c.group_id == device_groups.c.id)
                .where(group_members.c.device_id == device_id)
                .order_by(device_groups.c.name)
            )
            return [row_to(Group, r) for r in rows]


async def _product(conn: AsyncConnection, tenant_id: int, key: str) -> Product:
    row = (
        await conn.execute(
            select(products).where(products.c.tenant_id == tenant_id, products.c.key == key)
        )
    ).first()
    if row is None:
        raise NotFound(f"product {key} not found")
    return row_to(Product, row)


async def _modules(conn: AsyncConnection, device_id: int) -> dict[str, str]:
    rows = await conn.execute(
        select(device_modules.c.module, device_modules.c.version).where(
            device_modules.c.device_id == device_id
        )
    )
    return {r.module: r.version for r in rows}


async def _device(
    conn: AsyncConnection,
    tenant_id: int,
    product_id: int,
    name: str,
    *,
    with_modules: bool = False,
) -> Device:
    row = (
        await conn.execute(
            select(devices).where(
                devices.c.tenant_id == tenant_id,
                devices.c.product_id == product_id,
                devices.c.name == name,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"device {name} not found", name=name)
    mods = await _modules(conn, row.id) if with_modules else {}
    return row_to(Device, row, modules=mods)


async def _group(conn: AsyncConnection, tenant_id: int, name: str, *, lock: bool = False) -> Group:
    q = select(device_groups).where(
        device_groups.c.tenant_id == tenant_id, device_groups.c.name == name
    )
    row = (await conn.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise NotFound(f"group {name} not found", name=name)
    return row_to(Group, row)
