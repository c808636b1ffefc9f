"""Firmware: CreateOTAFirmware, QueryOTAFirmware, ListOTAFirmware, ModifyOTAFirmware,
DeleteOTAFirmware."""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from otahub.aliyun import firmware_data as fd
from otahub.aliyun import lookup, storage
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import paging, utc_ms, wrap
from otahub.core.services.modules import DEFAULT_MODULE
from otahub.domain.entities import Package, PackageFile, Product
from otahub.domain.errors import Conflict, NotFound
from otahub.domain.states import ExecutionStatus

MAX_FIRMWARE_PER_ACCOUNT = 500
UPLOAD_TTL = timedelta(minutes=60)  # CreateOTAFirmware must follow the upload within it
_HEX = {"MD5": re.compile(r"^[0-9a-fA-F]{32}$"), "SHA256": re.compile(r"^[0-9a-fA-F]{64}$")}


async def _products_by_id(ctx: AliyunContext) -> dict[int, Product]:
    return {p.id: p for p in await ctx.services.registry.list_products(ctx.tenant_id)}


async def _module(ctx: AliyunContext, product_key: str, name: str | None) -> str:
    if not name or name == DEFAULT_MODULE:
        return DEFAULT_MODULE
    try:
        return (await ctx.services.modules.get_module(ctx.tenant_id, product_key, name)).name
    except NotFound:
        lookup.fail(BusinessCode.MODULE_NOT_FOUND, f"ModuleName: {name}")


async def _file(
    ctx: AliyunContext,
    upload_tenant: int,
    ordinal: int,
    url: str,
    *,
    name: str | None,
    method: str,
    size: int | None,
    sign: str | None,
    md5: str | None,
) -> PackageFile:
    obj = await storage.uploaded(ctx.deps.objects, upload_tenant, url)
    if obj is None or obj.blob_key is None:
        lookup.fail(BusinessCode.FIRMWARE_URL_INVALID, f"Url: {url}")
    if obj.created_at is not None and ctx.clock.now() - obj.created_at > UPLOAD_TTL:
        lookup.fail(BusinessCode.UPLOAD_EXPIRED, f"Url: {url}")
    if size is not None and size != obj.size:
        lookup.fail(BusinessCode.INVALID_SIGN, f"The size is {obj.size}, not {size}.")
    actual = obj.sha256 if method == "SHA256" else obj.md5
    if sign is not None:
        if not _HEX[method].match(sign):
            lookup.fail(BusinessCode.INVALID_SIGN, f"A {method} sign is hex of the digest.")
        if sign.lower() != (actual or "").lower():
            lookup.fail(BusinessCode.INVALID_SIGN, f"The file's {method} is {actual}.")
    if md5 is not None and md5.lower() != (obj.md5 or "").lower():
        lookup.fail(BusinessCode.INVALID_SIGN, f"The file's MD5 is {obj.md5}.")
    file_name = name or posixpath.basename(urllib.parse.urlsplit(url).path)
    return PackageFile(
        ordinal=ordinal,
        name=file_name,
        blob_key=obj.blob_key,
        url=url,
        size=obj.size,
        sha256=obj.sha256,
        md5=obj.md5,
        attributes={fd.FILE_SIGN: (actual or "").lower()},
    )


@handles("CreateOTAFirmware")
async def create_firmware(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    pk = params["ProductKey"]
    product = await lookup.product(ctx, pk)
    module = await _module(ctx, pk, params.get("ModuleName"))
    dest = params["DestVersion"]
    firmware_type = params.get("Type", 0)
    src = params.get("SrcVersion")
    if firmware_type == 1 and (not src or src == dest):
        lookup.fail(BusinessCode.INVALID_SRC_VERSION)
    url, multi = params.get("FirmwareUrl"), params.get("MultiFiles") or []
    if bool(url) == bool(multi):
        lookup.fail(BusinessCode.INVALID_FIRMWARE_FILES)
    name = params["FirmwareName"]
    _, named = await ctx.services.packages.list_packages(
        ctx.tenant_id, name=name, with_product=True, limit=1
    )
    if named:
        lookup.fail(BusinessCode.FIRMWARE_NAME_EXISTS, f"FirmwareName: {name}")
    _, count = await ctx.services.packages.list_packages(ctx.tenant_id, with_product=True, limit=1)
    if count >= MAX_FIRMWARE_PER_ACCOUNT:
        lookup.fail(BusinessCode.FIRMWARE_COUNT_EXCEEDED)
    method = params.get("SignMethod", "MD5")
    upload_tenant = await ctx.upload_tenant_id()
    if url:
        files = [
            await _file(
                ctx,
                upload_tenant,
                0,
                url,
                name=None,
                method=method,
                size=params.get("FirmwareSize"),
                sign=params.get("FirmwareSign"),
                md5=None,
            )
        ]
    else:
        files = [
            await _file(
                ctx,
                upload_tenant,
                i,
                item["Url"],
                name=item["Name"],
                method=method,
                size=item.get("Size"),
                sign=item.get("SignValue"),
                md5=item.get("FileMd5"),
            )
            for i, item in enumerate(multi)
        ]
    need_verify = params.get("NeedToVerify", True)
    data: dict[str, Any] = {
        fd.SIGN_METHOD: method,
        fd.FIRMWARE_TYPE: firmware_type,
        fd.NEED_TO_VERIFY: need_verify,
        fd.MULTI_FILE: bool(multi),
    }
    if params.get("Udi"):
        data[fd.UDI] = params["Udi"]
    package = await ctx.services.packages.create_package(
        ctx.tenant_id,
        name=name,
        version=dest,
        files=files,
        product_id=product.id,
        module=module,
        source_version=src if firmware_type == 1 else None,
        description=params.get("FirmwareDesc"),
        need_verify=need_verify,
        data=data,
    )
    return {"Data": {"FirmwareId": package.ref, "UtcCreate": utc_ms(package.created_at)}}


def simple_info(p: Package, product: Product | None) -> dict[str, Any]:
    single = p.files[0] if len(p.files) == 1 and not fd.is_multi_file(p) else None
    return {
        "FirmwareId": p.ref,
        "FirmwareName": p.name,
        "FirmwareDesc": p.description,
        "FirmwareSign": fd.file_sign(p, single) if single else None,
        "FirmwareSize": single.size if single else None,
        "DestVersion": p.version,
        "SrcVersion": p.source_version,
        "SignMethod": fd.sign_method(p),
        "Status": fd.STATUS[p.verify_state],
        "Type": p.data.get(fd.FIRMWARE_TYPE, 0),
        "ModuleName": p.module,
        "ProductKey": product.key if product else None,
        "ProductName": product.name if product else None,
        "UtcCreate": utc_ms(p.created_at),
        "UtcModified": utc_ms(p.updated_at),
    }


async def _verify_progress(ctx: AliyunContext, p: Package) -> int:
    found, _ = await ctx.services.jobs.page_jobs(ctx.tenant_id, package_id=p.id, limit=100)
    verify = [j for j in found if j.is_verify]
    if not verify:
        return 0
    counts = await ctx.services.jobs.counts(verify[0].id)
    total = sum(counts.values())
    if not total:
        return 0
    return counts.get(ExecutionStatus.SUCCEEDED, 0) * 100 // total


@handles("QueryOTAFirmware")
async def query_firmware(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    p = await lookup.firmware(ctx, params["FirmwareId"])
    products = await _products_by_id(ctx)
    info = simple_info(p, products.get(p.product_id or 0))
    multi = fd.is_multi_file(p)
    info.update(
        FirmwareUrl=None if multi else p.files[0].url if p.files else None,
        Udi=p.data.get(fd.UDI),
        VerifyProgress=await _verify_progress(ctx, p),
        MultiFiles=[
            {
                "Name": f.name,
                "Size": f.size,
                "Url": f.url,
                "SignValue": fd.file_sign(p, f),
                "FileMd5": f.md5,
            }
            for f in p.files
        ]
        if multi
        else [],
    )
    return {"FirmwareInfo": info}


@handles("ListOTAFirmware")
async def list_firmware(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    size, page = params["PageSize"], params["CurrentPage"]
    product_id = None
    if params.get("ProductKey"):
        product_id = (await lookup.product(ctx, params["ProductKey"])).id
    found, total = await ctx.services.packages.list_packages(
        ctx.tenant_id,
        product_id=product_id,
        version=params.get("DestVersion"),
        with_product=True,
        offset=(page - 1) * size,
        limit=size,
    )
    products = await _products_by_id(ctx)
    return {
        "FirmwareInfo": wrap(
            "SimpleFirmwareInfo", [simple_info(p, products.get(p.product_id or 0)) for p in found]
        ),
        **paging(total, size, page),
    }


@handles("ModifyOTAFirmware")
async def modify_firmware(ctx: AliyunContext, params: dict[str, Any]) -> None:
    p = await lookup.firmware(ctx, params["FirmwareId"])
    product = await lookup.product(ctx, params["ProductKey"])
    if p.product_id != product.id:
        lookup.fail(BusinessCode.PRODUCT_MISMATCH)
    name = params.get("FirmwareName")
    if name and name != p.name:
        _, named = await ctx.services.packages.list_packages(
            ctx.tenant_id, name=name, with_product=True, limit=1
        )
        if named:
            lookup.fail(BusinessCode.FIRMWARE_NAME_EXISTS, f"FirmwareName: {name}")
    udi = params.get("FirmwareUdi")
    await ctx.services.packages.update_package(
        ctx.tenant_id,
        p.ref,
        name=name,
        description=params.get("FirmwareDesc"),
        data={fd.UDI: udi} if udi is not None else None,
    )


@handles("DeleteOTAFirmware")
async def delete_firmware(ctx: AliyunContext, params: dict[str, Any]) -> None:
    p = await lookup.firmware(ctx, params["FirmwareId"])
    try:
        await ctx.services.packages.delete_package(ctx.tenant_id, p.ref)
    except Conflict:
        lookup.fail(BusinessCode.FIRMWARE_IN_USE)
