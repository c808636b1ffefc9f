"""Devices: RegisterDevice, BatchRegisterDevice with QueryBatchRegisterDeviceStatus and
QueryPageByApplyId, QueryDeviceDetail, BatchQueryDeviceDetail, GetDeviceStatus,
DeleteDevice."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from otahub.aliyun import lookup
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import gmt_plain, paging, utc_ms, wrap
from otahub.domain import selectors as sel
from otahub.domain.entities import Device
from otahub.domain.errors import AlreadyExists
from otahub.domain.ids import secret_key

NICKNAME = "nickname"
APPLY_ID = "applyId"
"""Device attribute naming the batch registration that created the device."""
MAX_APPLY_DEVICES = 10_000
_NAME_CHARS = string.ascii_letters + string.digits


def _random_name() -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(20))


def device_status(d: Device) -> str:
    if not d.enabled:
        return "DISABLE"
    if d.connected:
        return "ONLINE"
    return "UNACTIVE" if d.connected_at is None else "OFFLINE"


@handles("RegisterDevice")
async def register_device(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    pk = params["ProductKey"]
    await lookup.product(ctx, pk)
    name = params.get("DeviceName") or _random_name()
    nickname = params.get("Nickname")
    try:
        d = await ctx.services.registry.create_device(
            ctx.tenant_id,
            name,
            product_key=pk,
            secret=secret_key(32),
            attributes={NICKNAME: nickname} if nickname else None,
        )
    except AlreadyExists:
        lookup.fail(BusinessCode.DEVICE_NAME_EXISTS, f"DeviceName: {name}")
    return {
        "Data": {
            "IotId": d.uid,
            "ProductKey": pk,
            "DeviceName": d.name,
            "DeviceSecret": d.secret,
            "Nickname": nickname,
        }
    }


@handles("BatchRegisterDevice")
async def batch_register_device(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    pk = params["ProductKey"]
    await lookup.product(ctx, pk)
    apply_id = secrets.randbelow(2**52) + 1
    for _ in range(params["Count"]):
        await ctx.services.registry.create_device(
            ctx.tenant_id,
            _random_name(),
            product_key=pk,
            secret=secret_key(32),
            attributes={APPLY_ID: str(apply_id)},
        )
    return {"Data": {"ApplyId": apply_id}}


async def _applied(ctx: AliyunContext, apply_id: int, product_key: str | None) -> list[Device]:
    found = await ctx.services.registry.list_devices(
        ctx.tenant_id,
        product_key=product_key,
        selector=sel.Match(f"attr:{APPLY_ID}", str(apply_id)),
        limit=MAX_APPLY_DEVICES,
    )
    if not found:
        lookup.fail(BusinessCode.DEVICE_APPLY_NOT_FOUND, f"ApplyId: {apply_id}")
    return found


@handles("QueryBatchRegisterDeviceStatus")
async def query_batch_status(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    await lookup.product(ctx, params["ProductKey"])
    found = await _applied(ctx, params["ApplyId"], params["ProductKey"])
    return {
        "Data": {
            "Status": "CREATE_SUCCESS",
            "ValidList": wrap("Name", [d.name for d in found]),
            "InvalidList": wrap("Name", []),
        }
    }


@handles("QueryPageByApplyId")
async def query_page_by_apply_id(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    found = await _applied(ctx, params["ApplyId"], None)
    size = params.get("PageSize", 10)
    page = params.get("CurrentPage", 1)
    chunk = found[(page - 1) * size : page * size]
    return {
        "ApplyDeviceList": wrap(
            "ApplyDeviceInfo",
            [
                {
                    "IotId": d.uid,
                    "DeviceName": d.name,
                    "DeviceSecret": d.secret,
                    "DeviceId": d.uid,
                }
                for d in chunk
            ],
        ),
        **paging(len(found), size, page, page_key="Page"),
    }


@handles("QueryDeviceDetail")
async def query_device_detail(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    d = await lookup.device_ref(ctx, params)
    product = await lookup.product(ctx, d.product_key or "")
    full = await ctx.services.registry.get_device(ctx.tenant_id, d.name, product_key=product.key)
    data: dict[str, Any] = {
        "IotId": full.uid,
        "ProductKey": product.key,
        "ProductName": product.name,
        "DeviceName": full.name,
        "DeviceSecret": full.secret,
        "FirmwareVersion": full.modules.get("default"),
        "Status": device_status(full),
        "NodeType": product.node_type,
        "Nickname": full.attributes.get(NICKNAME),
        "Region": ctx.region,
        "Owner": True,
        "GmtCreate": gmt_plain(full.created_at),
        "UtcCreate": utc_ms(full.created_at),
    }
    if full.connected_at is not None:
        data.update(
            GmtActive=gmt_plain(full.connected_at),
            UtcActive=utc_ms(full.connected_at),
            GmtOnline=gmt_plain(full.connected_at),
            UtcOnline=utc_ms(full.connected_at),
        )
    return {"Data": data}


@handles("DeleteDevice")
async def delete_device(ctx: AliyunContext, params: dict[str, Any]) -> None:
    d = await lookup.device_ref(ctx, params)
    await ctx.services.registry.delete_device(d.id)


@handles("GetDeviceStatus")
async def get_device_status(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    d = await lookup.device_ref(ctx, params)
    return {"Data": {"Status": device_status(d)}}


@handles("BatchQueryDeviceDetail")
async def batch_query_device_detail(
    ctx: AliyunContext, params: dict[str, Any]
) -> Mapping[str, Any]:
    pk = params["ProductKey"]
    product = await lookup.product(ctx, pk)
    items = []
    for name in params["DeviceName"]:
        found = await ctx.services.registry.find_device(ctx.tenant_id, name, pk)
        if found is None:
            continue  # Alibaba leaves unknown names out
        full = await ctx.services.registry.get_device(ctx.tenant_id, name, product_key=pk)
        items.append(
            {
                "ProductKey": pk,
                "ProductName": product.name,
                "DeviceName": full.name,
                "DeviceSecret": full.secret,
                "IotId": full.uid,
                "Status": device_status(full),
                "Nickname": full.attributes.get(NICKNAME),
                "FirmwareVersion": full.modules.get("default"),
                "NodeType": product.node_type,
                "Region": ctx.region,
                "UtcCreate": utc_ms(full.created_at),
                "UtcActive": utc_ms(full.connected_at) if full.connected_at else None,
            }
        )
    return {"Data": wrap("Data", items)}
