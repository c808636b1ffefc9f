"""Device groups, for GroupId targeting: CreateDeviceGroup, QueryDeviceGroupInfo,
DeleteDeviceGroup, BatchAddDeviceGroupRelations, BatchDeleteDeviceGroupRelations,
QueryDeviceListByDeviceGroup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otahub.aliyun import lookup
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.handlers.devices import NICKNAME, device_status
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import paging, utc_ms, wrap
from otahub.domain.entities import Device, Group
from otahub.domain.errors import NotFound


async def group(ctx: AliyunContext, group_id: str) -> Group:
    try:
        return await ctx.services.registry.get_group_by_uid(ctx.tenant_id, group_id)
    except NotFound:
        lookup.fail(BusinessCode.GROUP_NOT_FOUND, f"GroupId: {group_id}")


@handles("CreateDeviceGroup")
async def create_device_group(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    g = await ctx.services.registry.create_group(
        await ctx.saved_tenant_id(), params["GroupName"], description=params.get("GroupDesc")
    )
    return {
        "Data": {
            "GroupId": g.uid,
            "GroupName": g.name,
            "GroupDesc": g.description,
            "UtcCreate": utc_ms(g.created_at),
        }
    }


@handles("QueryDeviceGroupInfo")
async def query_device_group_info(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    g = await group(ctx, params["GroupId"])
    members = await ctx.services.registry.group_member_ids(ctx.tenant_id, g.name, limit=100_000)
    return {
        "Data": {
            "GroupId": g.uid,
            "GroupName": g.name,
            "GroupDesc": g.description,
            "DeviceCount": len(members),
            "UtcCreate": utc_ms(g.created_at),
        }
    }


@handles("DeleteDeviceGroup")
async def delete_device_group(ctx: AliyunContext, params: dict[str, Any]) -> None:
    g = await group(ctx, params["GroupId"])
    await ctx.services.registry.delete_group(ctx.tenant_id, g.name)


async def _devices(ctx: AliyunContext, items: list[dict[str, Any]]) -> list[Device]:
    found = []
    for item in items:
        d = await ctx.services.registry.find_device(
            ctx.tenant_id, item["DeviceName"], item["ProductKey"]
        )
        if d is not None:
            found.append(d)
    return found


@handles("BatchAddDeviceGroupRelations")
async def batch_add(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    g = await group(ctx, params["GroupId"])
    found = await _devices(ctx, params["Device"])
    before = set(await ctx.services.registry.group_member_ids(ctx.tenant_id, g.name, limit=100_000))
    await ctx.services.registry.add_to_group(ctx.tenant_id, g.name, [d.id for d in found])
    already = sum(1 for d in found if d.id in before)
    return {
        "Data": {
            "ValidDeviceCount": len(found),
            "AlreadyRelatedGroupDeviceCount": already,
            "SuccessAddedDeviceCount": len(found) - already,
            "ExceedTenGroupDeviceCount": 0,
        }
    }


@handles("BatchDeleteDeviceGroupRelations")
async def batch_delete(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    g = await group(ctx, params["GroupId"])
    found = await _devices(ctx, params["Device"])
    await ctx.services.registry.remove_from_group(ctx.tenant_id, g.name, [d.id for d in found])
    return {"Data": {"ValidDeviceCount": len(found), "SuccessDeviceCount": len(found)}}


@handles("QueryDeviceListByDeviceGroup")
async def query_device_list_by_group(
    ctx: AliyunContext, params: dict[str, Any]
) -> Mapping[str, Any]:
    g = await group(ctx, params["GroupId"])
    size, page = params.get("PageSize", 10), params.get("CurrentPage", 1)
    ids = await ctx.services.registry.group_member_ids(ctx.tenant_id, g.name, limit=100_000)
    chunk = await ctx.services.registry.get_devices(ids[(page - 1) * size : page * size])
    chunk.sort(key=lambda d: d.id)
    products = {p.key: p for p in await ctx.services.registry.list_products(ctx.tenant_id)}
    return {
        "Data": wrap(
            "SimpleDeviceInfo",
            [
                {
                    "ProductKey": d.product_key,
                    "ProductName": products[d.product_key].name
                    if d.product_key in products
                    else None,
                    "DeviceName": d.name,
                    "IotId": d.uid,
                    "Status": device_status(d),
                    "Nickname": d.attributes.get(NICKNAME),
                    "UtcActive": utc_ms(d.connected_at) if d.connected_at else None,
                }
                for d in chunk
            ],
        ),
        **paging(len(ids), size, page, page_key="Page"),
    }
