"""Resolving Alibaba identifiers (ProductKey, DeviceName/IotId, FirmwareId, JobId,
TaskId) to core entities, with Alibaba's not-found codes."""

from __future__ import annotations

from typing import Any, NoReturn

from otahub.aliyun.app import AliyunContext
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.errors import BusinessError
from otahub.domain.entities import Device, Job, Package, Product
from otahub.domain.errors import NotFound
from otahub.domain.limits import check_int

TASK_SEPARATOR = "-"


def fail(code: BusinessCode, detail: str | None = None) -> NoReturn:
    raise BusinessError(code.code, f"{code.message} {detail}".strip() if detail else code.message)


async def product(ctx: AliyunContext, key: str) -> Product:
    if not key:
        fail(BusinessCode.PRODUCT_NOT_FOUND)
    try:
        return await ctx.services.registry.get_product(ctx.tenant_id, key)
    except NotFound:
        fail(BusinessCode.PRODUCT_NOT_FOUND, f"ProductKey: {key}")


async def device(ctx: AliyunContext, product_key: str, name: str) -> Device:
    await product(ctx, product_key)
    found = await ctx.services.registry.find_device(ctx.tenant_id, name, product_key)
    if found is None:
        fail(BusinessCode.DEVICE_NOT_FOUND, f"DeviceName: {name}")
    return found


async def device_ref(ctx: AliyunContext, params: dict[str, Any]) -> Device:
    """`IotId`, or `ProductKey` + `DeviceName`; IotId wins."""
    iot_id = params.get("IotId")
    if iot_id:
        try:
            found = await ctx.services.registry.get_device_by_uid(iot_id)
        except NotFound:
            fail(BusinessCode.DEVICE_NOT_FOUND, f"IotId: {iot_id}")
        if found.tenant_id != ctx.tenant_id:
            fail(BusinessCode.DEVICE_NOT_FOUND, f"IotId: {iot_id}")
        with_key = (await ctx.services.registry.get_devices([found.id]))[0]
        if not with_key.product_key:  # an AWS thing: not an Alibaba device
            fail(BusinessCode.DEVICE_NOT_FOUND, f"IotId: {iot_id}")
        return with_key
    pk, dn = params.get("ProductKey"), params.get("DeviceName")
    if not pk or not dn:
        fail(BusinessCode.DEVICE_NOT_FOUND, "Give IotId, or ProductKey and DeviceName.")
    return await device(ctx, pk, dn)


async def firmware(ctx: AliyunContext, firmware_id: str) -> Package:
    try:
        found = await ctx.services.packages.get_package(ctx.tenant_id, firmware_id)
    except NotFound:
        fail(BusinessCode.FIRMWARE_NOT_FOUND, f"FirmwareId: {firmware_id}")
    if found.product_id is None:  # another face's package (AWS OTA updates have none)
        fail(BusinessCode.FIRMWARE_NOT_FOUND, f"FirmwareId: {firmware_id}")
    return found


async def job(ctx: AliyunContext, job_id: str) -> Job:
    try:
        found = await ctx.services.jobs.get_job(ctx.tenant_id, job_id)
    except NotFound:
        fail(BusinessCode.JOB_NOT_FOUND, f"JobId: {job_id}")
    if found.kind not in JOB_KINDS:
        fail(BusinessCode.JOB_NOT_FOUND, f"JobId: {job_id}")
    return found


JOB_KINDS = frozenset({"aliyun-verify", "aliyun-static", "aliyun-dynamic"})


def task_id(job_ref: str, device_id: int) -> str:
    """A task is one device's execution of one job; its id names both."""
    return f"{job_ref}{TASK_SEPARATOR}{_b36(device_id)}"


async def task(ctx: AliyunContext, value: str) -> tuple[Job, int]:
    """The job and device id a TaskId names."""
    ref, sep, dev = value.rpartition(TASK_SEPARATOR)
    if not sep or not ref or not dev:
        fail(BusinessCode.TASK_NOT_FOUND, f"TaskId: {value}")
    try:
        # Refused (a ValueError) past 64 bits: no device has such an id.
        device_id = check_int(int(dev, 36), "TaskId")
        found = await ctx.services.jobs.get_job(ctx.tenant_id, ref)
        await ctx.services.executions.get(found.id, device_id)
    except (ValueError, NotFound):
        fail(BusinessCode.TASK_NOT_FOUND, f"TaskId: {value}")
    if found.kind not in JOB_KINDS:
        fail(BusinessCode.TASK_NOT_FOUND, f"TaskId: {value}")
    return found, device_id


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
