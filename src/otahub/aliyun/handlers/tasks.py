"""Tasks (one device's part of a job): ListOTATaskByJob, ListOTAUnfinishedTaskByDevice,
CancelOTATaskByDevice, ConfirmOTATask, ReupgradeOTATask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otahub.aliyun import lookup
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.handlers import handles
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import paging, utc_ms, wrap
from otahub.domain.entities import Device, Execution, Job, Package, Product
from otahub.domain.errors import InvalidStateTransition
from otahub.domain.states import ACTIVE_JOB, ExecutionStatus, VerifyState

S = ExecutionStatus
TASK_STATUS: dict[ExecutionStatus, str] = {
    S.CONFIRM: "CONFIRM",
    S.QUEUED: "QUEUED",
    S.NOTIFIED: "NOTIFIED",
    S.IN_PROGRESS: "IN_PROGRESS",
    S.SUCCEEDED: "SUCCEEDED",
    # Alibaba has no TIMEOUT task status: a timed-out task is FAILED (specs §3.3).
    S.FAILED: "FAILED",
    S.TIMED_OUT: "FAILED",
    S.REJECTED: "FAILED",
    S.CANCELED: "CANCELED",
    S.REMOVED: "CANCELED",
}
STATUSES_OF: dict[str, list[ExecutionStatus]] = {}
for _core, _wire in TASK_STATUS.items():
    STATUSES_OF.setdefault(_wire, []).append(_core)
CANCELABLE = (S.CONFIRM, S.QUEUED, S.NOTIFIED, S.IN_PROGRESS)
DEFAULT_PAGE_SIZE = 10
MAX_TASK_WINDOW = 100_000


def _task_desc(ex: Execution) -> str | None:
    details = ex.status_details or {}
    return details.get("desc") or ex.reason


def task_info(
    ex: Execution,
    job: Job,
    package: Package | None,
    product: Product | None,
    device: Device,
    src_version: str | None,
) -> dict[str, Any]:
    timeout = job.policies.timeout.in_progress_minutes
    return {
        "TaskId": lookup.task_id(job.ref, ex.device_id),
        "JobId": job.ref,
        "FirmwareId": package.ref if package else None,
        "ProductKey": product.key if product else None,
        "ProductName": product.name if product else None,
        "DeviceName": device.name,
        "IotId": device.uid,
        "SrcVersion": src_version,
        "DestVersion": package.version if package else None,
        "TaskStatus": TASK_STATUS[ex.status],
        "Progress": str(ex.progress or 0),
        "TaskDesc": _task_desc(ex),
        "Timeout": str(timeout) if timeout is not None else None,
        "UtcCreate": utc_ms(ex.queued_at),
        "UtcModified": utc_ms(ex.updated_at),
    }


class _Views:
    """Packages, products and devices a page of tasks refers to, each read once."""

    def __init__(self, ctx: AliyunContext) -> None:
        self.ctx = ctx
        self.packages: dict[int, Package] = {}
        self.products: dict[int, Product] | None = None

    async def package(self, job: Job) -> Package | None:
        if job.package_id is None:
            return None
        if job.package_id not in self.packages:
            self.packages[job.package_id] = await self.ctx.services.packages.get_package_by_id(
                job.package_id
            )
        return self.packages[job.package_id]

    async def product(self, product_id: int | None) -> Product | None:
        if self.products is None:
            found = await self.ctx.services.registry.list_products(self.ctx.tenant_id)
            self.products = {p.id: p for p in found}
        return self.products.get(product_id or 0)

    async def src_version(self, device: Device, package: Package | None) -> str | None:
        if package is None:
            return None
        if package.source_version:
            return package.source_version
        full = await self.ctx.services.registry.get_device(
            self.ctx.tenant_id, device.name, product_key=device.product_key or ""
        )
        current = full.modules.get(package.module)
        return current if current != package.version else None


@handles("ListOTATaskByJob")
async def list_tasks_by_job(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    job = await lookup.job(ctx, params["JobId"])
    size = params.get("PageSize", DEFAULT_PAGE_SIZE)
    page = params.get("CurrentPage", 1)
    if page * size > MAX_TASK_WINDOW:
        lookup.fail(BusinessCode.INVALID_PAGE_PARAMS, "CurrentPage x PageSize is at most 100000.")
    status = params.get("TaskStatus")
    device_ids = None
    names = params.get("DeviceNames")
    views = _Views(ctx)
    product = await views.product(job.product_id)
    if names:
        found = [
            await ctx.services.registry.find_device(
                ctx.tenant_id, n, product.key if product else ""
            )
            for n in names
        ]
        device_ids = [d.id for d in found if d is not None]
        page, size = 1, max(len(names), 1)
    executions, total = await ctx.services.executions.page_for_job(
        job.id,
        statuses=STATUSES_OF[status] if status else None,
        device_ids=device_ids,
        offset=(page - 1) * size,
        limit=size,
    )
    devices = {
        d.id: d for d in await ctx.services.registry.get_devices([e.device_id for e in executions])
    }
    package = await views.package(job)
    items = []
    for ex in executions:
        d = devices[ex.device_id]
        items.append(task_info(ex, job, package, product, d, await views.src_version(d, package)))
    return {"Data": wrap("SimpleOTATaskInfo", items), **paging(total, size, page)}


@handles("ListOTAUnfinishedTaskByDevice")
async def list_unfinished_tasks(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    device = await lookup.device_ref(ctx, params)
    wanted = set(
        params.get("TaskStatusList") or ([params["TaskStatus"]] if params.get("TaskStatus") else [])
    )
    module = params.get("ModuleName")
    views = _Views(ctx)
    items = []
    for ex in await ctx.services.executions.unfinished_for_device(device.id):
        if wanted and TASK_STATUS[ex.status] not in wanted:
            continue
        job = await ctx.services.jobs.get_job_by_id(ex.job_id)
        if job.kind not in lookup.JOB_KINDS:
            continue
        package = await views.package(job)
        if module and (package is None or package.module != module):
            continue
        info = task_info(
            ex,
            job,
            package,
            await views.product(job.product_id),
            device,
            await views.src_version(device, package),
        )
        for key in ("Progress", "TaskDesc", "Timeout"):
            info.pop(key)
        info["ModuleName"] = package.module if package else None
        items.append(info)
    return {"Data": wrap("SimpleOTATaskInfo", items)}


@handles("CancelOTATaskByDevice")
async def cancel_tasks_by_device(ctx: AliyunContext, params: dict[str, Any]) -> None:
    package = await lookup.firmware(ctx, params["FirmwareId"])
    product = await lookup.product(ctx, params["ProductKey"])
    if package.product_id != product.id:
        lookup.fail(BusinessCode.PRODUCT_MISMATCH)
    devices = [await lookup.device(ctx, product.key, n) for n in params["DeviceName"]]
    if params.get("JobId"):
        job = await lookup.job(ctx, params["JobId"])
        if job.package_id != package.id:
            lookup.fail(BusinessCode.JOB_NOT_FOUND, "The job does not send this firmware.")
        jobs = [job]
    else:
        found, _ = await ctx.services.jobs.page_jobs(
            ctx.tenant_id, package_id=package.id, limit=10_000
        )
        jobs = [j for j in found if j.status in ACTIVE_JOB and j.kind in lookup.JOB_KINDS]
    for job in jobs:
        await ctx.services.executions.cancel_in_job(
            job.id, CANCELABLE, device_ids=[d.id for d in devices], reason="canceled"
        )


@handles("ConfirmOTATask")
async def confirm_tasks(ctx: AliyunContext, params: dict[str, Any]) -> None:
    resolved = [await lookup.task(ctx, t) for t in params["TaskId"]]
    for (job, device_id), task in zip(resolved, params["TaskId"], strict=True):
        ex = await ctx.services.executions.get(job.id, device_id)
        if ex.status is not S.CONFIRM:
            lookup.fail(BusinessCode.TASK_STATUS_ERROR, f"Task {task} is {TASK_STATUS[ex.status]}.")
        if job.status not in ACTIVE_JOB:
            lookup.fail(BusinessCode.JOB_STATUS_ERROR)
    for job, device_id in resolved:
        await ctx.services.jobs.confirm(job.id, [device_id])


@handles("ReupgradeOTATask")
async def reupgrade_tasks(ctx: AliyunContext, params: dict[str, Any]) -> None:
    job = await lookup.job(ctx, params["JobId"])
    resolved = [await lookup.task(ctx, t) for t in params["TaskId"]]
    for (task_job, _), task in zip(resolved, params["TaskId"], strict=True):
        if task_job.id != job.id:
            lookup.fail(BusinessCode.TASK_NOT_IN_JOB, f"TaskId: {task}")
    for (_, device_id), task in zip(resolved, params["TaskId"], strict=True):
        try:
            await ctx.services.executions.rerun(job.id, device_id)
        except InvalidStateTransition:
            lookup.fail(BusinessCode.TASK_STATUS_ERROR, f"Task {task} cannot be re-run now.")
    if job.is_verify and job.package_id is not None:
        # The verify job runs again: its firmware is being verified again.
        await ctx.services.packages.set_verify_state(job.package_id, VerifyState.VERIFYING)
