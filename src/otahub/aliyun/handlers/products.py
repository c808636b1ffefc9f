"""Products: CreateProduct, QueryProduct."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from otahub.aliyun import lookup
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import epoch_ms, utc_ms
from otahub.domain.entities import Product
from otahub.domain.errors import AlreadyExists
from otahub.domain.ids import secret_key

_KEY_CHARS = string.ascii_letters + string.digits


def new_product_key() -> str:
    """Alibaba's ProductKeys look like `a1BwAGV****`: 11 characters."""
    return "a1" + "".join(secrets.choice(_KEY_CHARS) for _ in range(9))


def product_data(p: Product) -> dict[str, Any]:
    d = p.data
    return {
        "ProductKey": p.key,
        "ProductName": p.name,
        "ProductSecret": p.secret,
        "NodeType": p.node_type,
        "DataFormat": d.get("data_format", 1),
        "AliyunCommodityCode": d.get("commodity_code", "iothub_senior"),
        "AuthType": d.get("auth_type", "secret"),
        "Description": p.description,
        "ProtocolType": d.get("protocol_type"),
        "Id2": False,
    }


@handles("CreateProduct")
async def create_product(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    name = params["ProductName"]
    existing = await ctx.services.registry.list_products(ctx.tenant_id)
    if any(p.name == name for p in existing):
        lookup.fail(BusinessCode.PRODUCT_NAME_EXISTS, f"ProductName: {name}")
    commodity = params.get("AliyunCommodityCode", "iothub_senior")
    data = {
        "data_format": params.get("DataFormat", 1 if commodity == "iothub_senior" else 0),
        "commodity_code": commodity,
        "auth_type": params.get("AuthType", "secret"),
        "protocol_type": params.get("ProtocolType"),
    }
    tenant_id = await ctx.saved_tenant_id()
    for _ in range(3):
        try:
            product = await ctx.services.registry.create_product(
                tenant_id,
                new_product_key(),
                name,
                description=params.get("Description"),
                node_type=params["NodeType"],
                secret=secret_key(16),
                data=data,
            )
            break
        except AlreadyExists:
            continue  # a ProductKey collision; mint another
    else:
        lookup.fail(BusinessCode.SYSTEM_EXCEPTION, "Could not mint a ProductKey.")
    return {"ProductKey": product.key, "Data": product_data(product)}


@handles("QueryProduct")
async def query_product(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    product = await lookup.product(ctx, params["ProductKey"])
    data = product_data(product)
    data.update(
        GmtCreate=epoch_ms(product.created_at),
        UtcCreate=utc_ms(product.created_at),
    )
    return {"Data": data}
