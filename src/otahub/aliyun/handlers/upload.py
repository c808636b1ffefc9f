"""GenerateOTAUploadURL and GenerateDeviceNameListURL: an OSS-style POST form aimed at
otahub's own `/oss` endpoint (`aliyun/oss.py`), signed with the caller's key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otahub.aliyun import storage
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.protocol.oss_policy import UploadForm, mint_upload_form


async def _form(ctx: AliyunContext, suffix: str) -> UploadForm:
    upload_tenant = (await ctx.services.accounts.tenant(ctx.account_id)).id
    await storage.ensure_bucket(ctx.deps.objects, upload_tenant)
    return mint_upload_form(
        host=storage.host(ctx.deps.http_base),
        key=storage.new_key(suffix),
        access_key_id=ctx.access_key_id,
        secret=ctx.secret,
        now=ctx.clock.now(),
    )


@handles("GenerateOTAUploadURL")
async def generate_ota_upload_url(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    form = await _form(ctx, params.get("FileSuffix", "bin"))
    return {"Data": form.ota_data()}


@handles("GenerateDeviceNameListURL")
async def generate_device_name_list_url(
    ctx: AliyunContext, params: dict[str, Any]
) -> Mapping[str, Any]:
    form = await _form(ctx, "csv")
    return {"Data": form.device_list_data()}
