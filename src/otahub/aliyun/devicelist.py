"""The device-list file of a SPECIFIC static job (`DnListFileUrl`): a CSV of device
names separated by newlines or commas, uploaded through GenerateDeviceNameListURL."""

from __future__ import annotations

import re

from otahub.aliyun import storage
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.lookup import fail
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.domain.limits import Refused, check_text

MAX_LIST_BYTES = 5 * 1024 * 1024
MAX_LIST_DEVICES = 10_000
_SEPARATORS = re.compile(r"[\s,]+")


async def read_device_list(ctx: AliyunContext, url: str) -> list[str]:
    upload_tenant = await ctx.upload_tenant_id()
    obj = await storage.uploaded(ctx.deps.objects, upload_tenant, url)
    if obj is None or obj.blob_key is None or obj.size > MAX_LIST_BYTES:
        fail(BusinessCode.DEVICE_LIST_FILE_INVALID)
    raw = b"".join([c async for c in ctx.deps.objects.blobs.open_range(obj.blob_key)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        fail(BusinessCode.DEVICE_LIST_FILE_INVALID, "The file is not UTF-8 text.")
    try:
        check_text(text, "The file")
    except Refused as exc:
        fail(BusinessCode.DEVICE_LIST_FILE_INVALID, f"{exc}.")
    names = list(dict.fromkeys(n for n in _SEPARATORS.split(text) if n))
    if not names:
        fail(BusinessCode.DEVICE_LIST_FILE_INVALID, "The file names no device.")
    if len(names) > MAX_LIST_DEVICES:
        fail(BusinessCode.DEVICE_COUNT_EXCEEDED, f"At most {MAX_LIST_DEVICES} devices.")
    return names
