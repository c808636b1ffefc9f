"""Compile core selectors into SQL predicates over the devices table."""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.selectable import CTE

from otahub.domain.selectors import And, AnyOf, Everything, Match, Not, Or, Range, Selector
from otahub.store.tables import device_groups, device_modules, devices, group_members, products


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def group_descendants(root: ColumnElement[int] | int) -> CTE:
    """The group and every group below it in the hierarchy."""
    base = (
        select(device_groups.c.id)
        .where(device_groups.c.id == root)
        .cte("group_tree", recursive=True)
    )
    child = device_groups.alias("child")
    return base.union_all(select(child.c.id).where(child.c.parent_id == base.c.id))


def group_member_ids(tenant_id: int, group_name: str, depth: int = 0) -> Select[tuple[int]]:
    """Device ids in the named group (static: with its descendants; dynamic: by query)."""
    g = device_groups
    root = select(g.c.id).where(g.c.tenant_id == tenant_id, g.c.name == group_name)
    tree = group_descendants(root.scalar_subquery())
    return select(group_members.c.device_id).where(group_members.c.group_id.in_(select(tree.c.id)))


def compile_selector(sel: Selector, tenant_id: int, depth: int = 0) -> ColumnElement[bool]:
    """A predicate on `devices` that is true for the devices `sel` selects."""
    d = devices
    match sel:
        case Everything():
            return true()
        case Match(field="name", value=v, prefix=p):
            return d.c.name.like(_like_prefix(v), escape="\\") if p else d.c.name == v
        case Match(field="type", value=v, prefix=p):
            return d.c.type_name.like(_like_prefix(v), escape="\\") if p else d.c.type_name == v
        case Match(field="product", value=v):
            return d.c.product_id.in_(
                select(products.c.id).where(products.c.tenant_id == tenant_id, products.c.key == v)
            )
        case Match(field="connected", value=v):
            return d.c.connected.is_(v.lower() == "true")
        case Match(field="group", value=v):
            return d.c.id.in_(group_member_ids(tenant_id, v, depth))
        case Match(field=f, value=v, prefix=p) if f.startswith("attr:"):
            attr: ColumnElement[str] = d.c.attributes[f[5:]].as_string()
            return attr.like(_like_prefix(v), escape="\\") if p else attr == v
        case Match(field=f, value=v, prefix=p) if f.startswith("version:"):
            ver = device_modules.c.version
            return exists().where(
                device_modules.c.device_id == d.c.id,
                device_modules.c.module == f[8:],
                ver.like(_like_prefix(v), escape="\\") if p else ver == v,
            )
        case AnyOf(field=f, values=vs) if f.startswith("version:"):
            return exists().where(
                device_modules.c.device_id == d.c.id,
                device_modules.c.module == f[8:],
                device_modules.c.version.in_(vs),
            )
        case AnyOf(field=f, values=vs):
            return or_(false(), *(compile_selector(Match(f, v), tenant_id, depth) for v in vs))
        case Range(field=f, low=lo, high=hi, include_low=il, include_high=ih):
            if not f.startswith("attr:"):
                raise ValueError(f"range over {f!r} is not supported")
            num = cast(d.c.attributes[f[5:]].as_string(), Float)
            conds: list[ColumnElement[bool]] = []
            if lo is not None:
                conds.append(num >= lo if il else num > lo)
            if hi is not None:
                conds.append(num <= hi if ih else num < hi)
            return and_(true(), *conds)
        case And(items):
            return and_(true(), *(compile_selector(i, tenant_id, depth) for i in items))
        case Or(items):
            return or_(false(), *(compile_selector(i, tenant_id, depth) for i in items))
        case Not(item):
            # A missing attribute or type compares as NULL; NOT of it must be true.
            return not_(func.coalesce(compile_selector(item, tenant_id, depth), false()))
    raise ValueError(f"cannot compile selector {sel!r}")


def select_matching(sel: Selector, tenant_id: int) -> Select[tuple[int]]:
    return select(devices.c.id).where(
        devices.c.tenant_id == tenant_id, compile_selector(sel, tenant_id)
    )


__all__ = ["compile_selector", "group_descendants", "group_member_ids", "select_matching"]
