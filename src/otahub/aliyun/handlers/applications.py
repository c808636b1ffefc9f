"""Batch registration by name: BatchCheckDeviceNames files an application (kept as a
JSON object in the account's upload bucket), BatchRegisterDeviceWithApplyId creates
its devices; QueryBatchRegisterDeviceStatus and QueryPageByApplyId (devices.py) then
read it like a BatchRegisterDevice one."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

from otahub.aliyun import lookup, storage
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.handlers.devices import APPLY_ID, NICKNAME
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import wrap
from otahub.aliyun.protocol.rules import DEVICE_NAME
from otahub.domain.errors import AlreadyExists, NotFound
from otahub.domain.ids import secret_key
from otahub.domain.limits import Refused, loads_json

NICKNAME_LENGTH = range(4, 65)


def _key(product_key: str, apply_id: int) -> str:
    return f"applications/{product_key}/{apply_id}.json"


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _valid_name(name: str) -> bool:
    lo, hi = DEVICE_NAME.min_len or 0, DEVICE_NAME.max_len or 0
    pattern = DEVICE_NAME.pattern
    return lo <= len(name) <= hi and pattern is not None and pattern.fullmatch(name) is not None


@handles("BatchCheckDeviceNames")
async def batch_check_device_names(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    pk = params["ProductKey"]
    await lookup.product(ctx, pk)
    entries = [(n, None) for n in params.get("DeviceName") or []]
    entries += [
        (d["DeviceName"], d.get("DeviceNickname")) for d in params.get("DeviceNameList") or []
    ]
    if not entries:
        lookup.fail(BusinessCode.ILLEGAL_REQUEST, "Give DeviceName.N or DeviceNameList.N.")
    invalid: list[str] = []
    repeated: list[str] = []
    bad_nicknames: list[str] = []
    seen: set[str] = set()
    names: list[str] = []
    nicknames: dict[str, str] = {}
    for name, nickname in entries:
        if name in seen:
            repeated.append(name)
            continue
        seen.add(name)
        if not _valid_name(name):
            invalid.append(name)
            continue
        if await ctx.services.registry.find_device(ctx.tenant_id, name, pk) is not None:
            repeated.append(name)
            continue
        if nickname is not None and len(nickname) not in NICKNAME_LENGTH:
            bad_nicknames.append(nickname)
            continue
        names.append(name)
        if nickname:
            nicknames[name] = nickname
    apply_id = secrets.randbelow(2**52) + 1
    tenant = (await ctx.services.accounts.tenant(ctx.account_id)).id
    bucket = await storage.ensure_bucket(ctx.deps.objects, tenant)
    document = {"names": names, "nicknames": nicknames, "tenant": ctx.tenant_id}
    await ctx.deps.objects.put(
        tenant, bucket, _key(pk, apply_id), _one(json.dumps(document).encode())
    )
    return {
        "Data": {
            "ApplyId": apply_id,
            "InvalidDeviceNameList": wrap("Name", invalid),
            "InvalidDeviceNicknameList": wrap("Name", bad_nicknames),
            "RepeatedDeviceNameList": wrap("Name", repeated),
        }
    }


@handles("BatchRegisterDeviceWithApplyId")
async def batch_register_with_apply_id(
    ctx: AliyunContext, params: dict[str, Any]
) -> Mapping[str, Any]:
    pk, apply_id = params["ProductKey"], params["ApplyId"]
    await lookup.product(ctx, pk)
    tenant = await ctx.upload_tenant_id()
    objects = ctx.deps.objects
    try:
        stored = await objects.get(tenant, storage.bucket_name(tenant), _key(pk, apply_id))
    except NotFound:
        lookup.fail(BusinessCode.DEVICE_APPLY_NOT_FOUND, f"ApplyId: {apply_id}")
    if stored.blob_key is None:
        lookup.fail(BusinessCode.DEVICE_APPLY_NOT_FOUND, f"ApplyId: {apply_id}")
    raw = b"".join([c async for c in objects.blobs.open_range(stored.blob_key)])
    document = _application(raw)
    if document is None or document.get("tenant") != ctx.tenant_id:
        lookup.fail(BusinessCode.DEVICE_APPLY_NOT_FOUND, f"ApplyId: {apply_id}")
    for name in document["names"]:
        attributes = {APPLY_ID: str(apply_id)}
        if name in document["nicknames"]:
            attributes[NICKNAME] = document["nicknames"][name]
        try:
            await ctx.services.registry.create_device(
                ctx.tenant_id, name, product_key=pk, secret=secret_key(32), attributes=attributes
            )
        except AlreadyExists:
            continue  # registered meanwhile (or the application was applied twice)
    await objects.delete(tenant, storage.bucket_name(tenant), _key(pk, apply_id))
    return {"Data": {"ApplyId": apply_id}}


def _application(raw: bytes) -> dict[str, Any] | None:
    """The application BatchCheckDeviceNames wrote, or None if the object is not one:
    the upload bucket is the account's, so anything may have been put under its key."""
    try:
        document = loads_json(raw)
    except Refused:
        return None
    if not isinstance(document, dict):
        return None
    names, nicknames = document.get("names"), document.get("nicknames")
    if not isinstance(names, list) or not all(isinstance(n, str) and _valid_name(n) for n in names):
        return None
    if not isinstance(nicknames, dict) or not all(isinstance(v, str) for v in nicknames.values()):
        return None
    return document
