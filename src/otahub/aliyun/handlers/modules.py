"""OTA modules: CreateOTAModule, UpdateOTAModule, DeleteOTAModule,
ListOTAModuleByProduct, ListOTAModuleVersionsByDevice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otahub.aliyun import lookup
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import paging, utc_minute, wrap
from otahub.core.services.modules import DEFAULT_MODULE, Module
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, LimitExceeded, NotFound

MAX_MODULES_PER_PRODUCT = 10  # custom modules; `default` does not count


def _refuse_default(name: str) -> None:
    if name.lower() == DEFAULT_MODULE:
        lookup.fail(BusinessCode.DEFAULT_MODULE_IMMUTABLE)


@handles("CreateOTAModule")
async def create_module(ctx: AliyunContext, params: dict[str, Any]) -> None:
    pk, name = params["ProductKey"], params["ModuleName"]
    await lookup.product(ctx, pk)
    _refuse_default(name)
    try:
        await ctx.services.modules.create_module(
            ctx.tenant_id,
            pk,
            name,
            alias=params.get("AliasName"),
            description=params.get("Desc"),
            max_modules=MAX_MODULES_PER_PRODUCT,
        )
    except AlreadyExists:
        lookup.fail(BusinessCode.MODULE_EXISTS, f"ModuleName: {name}")
    except LimitExceeded:
        lookup.fail(BusinessCode.MODULE_COUNT_EXCEEDED)
    except InvalidRequest:
        lookup.fail(BusinessCode.DEFAULT_MODULE_IMMUTABLE)


@handles("UpdateOTAModule")
async def update_module(ctx: AliyunContext, params: dict[str, Any]) -> None:
    pk, name = params["ProductKey"], params["ModuleName"]
    await lookup.product(ctx, pk)
    _refuse_default(name)
    try:
        await ctx.services.modules.update_module(
            ctx.tenant_id, pk, name, alias=params.get("AliasName"), description=params.get("Desc")
        )
    except NotFound:
        lookup.fail(BusinessCode.MODULE_NOT_FOUND, f"ModuleName: {name}")


@handles("DeleteOTAModule")
async def delete_module(ctx: AliyunContext, params: dict[str, Any]) -> None:
    pk, name = params["ProductKey"], params["ModuleName"]
    await lookup.product(ctx, pk)
    _refuse_default(name)
    try:
        await ctx.services.modules.delete_module(ctx.tenant_id, pk, name)
    except NotFound:
        lookup.fail(BusinessCode.MODULE_NOT_FOUND, f"ModuleName: {name}")
    except Conflict:
        lookup.fail(BusinessCode.MODULE_IN_USE, f"ModuleName: {name}")


def _module_info(pk: str, m: Module) -> dict[str, Any]:
    return {
        "ProductKey": pk,
        "ModuleName": m.name,
        "AliasName": m.alias,
        "Desc": m.description,
        "GmtCreate": utc_minute(m.created_at),
        "GmtModified": utc_minute(m.updated_at),
    }


@handles("ListOTAModuleByProduct")
async def list_modules(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    pk = params["ProductKey"]
    await lookup.product(ctx, pk)
    found = await ctx.services.modules.list_modules(ctx.tenant_id, pk)
    return {"Data": [_module_info(pk, m) for m in found]}


@handles("ListOTAModuleVersionsByDevice")
async def list_module_versions(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    d = await lookup.device_ref(ctx, params)
    full = await ctx.services.registry.get_device(
        ctx.tenant_id, d.name, product_key=d.product_key or ""
    )
    size, page = params["PageSize"], params["CurrentPage"]
    items = sorted(full.modules.items())
    chunk = items[(page - 1) * size : page * size]
    return {
        "Data": wrap(
            "SimpleOTAModuleInfo",
            [
                {
                    "ProductKey": d.product_key,
                    "DeviceName": d.name,
                    "IotId": d.uid,
                    "ModuleName": module,
                    "ModuleVersion": version,
                }
                for module, version in chunk
            ],
        ),
        **paging(len(items), size, page),
    }
