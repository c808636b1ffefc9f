"""Jobs: CreateOTAVerifyJob, CreateOTAStaticUpgradeJob, CreateOTADynamicUpgradeJob,
UpdateOTAJob, QueryOTAJob, ListOTAJobByFirmware, ListOTAJobByDevice,
CancelOTAStrategyByJob, CancelOTATaskByJob."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from otahub.aliyun import jobspec, lookup
from otahub.aliyun.app import AliyunContext
from otahub.aliyun.devicelist import read_device_list
from otahub.aliyun.handlers import handles
from otahub.aliyun.handlers.groups import group
from otahub.aliyun.protocol.codes import BusinessCode
from otahub.aliyun.protocol.formats import paging, utc_ms, wrap
from otahub.core.services.jobs import (
    ActiveJobExists,
    DeviceBusy,
    DeviceOffSourceVersion,
    JobSpec,
    OtherJobs,
)
from otahub.domain import selectors as sel
from otahub.domain.entities import Device, Job, Package, Product
from otahub.domain.errors import InvalidStateTransition
from otahub.domain.ids import opaque_id
from otahub.domain.policies import JobPolicies, RolloutPolicy, TimeoutPolicy
from otahub.domain.states import (
    ACTIVE_JOB,
    RELEASABLE_PACKAGE,
    ExecutionStatus,
    JobStatus,
    ReleaseMode,
    TargetSelection,
    VerifyState,
)

S = ExecutionStatus
JOB_STATUS = {
    JobStatus.SCHEDULED: "PLANNED",
    JobStatus.IN_PROGRESS: "IN_PROGRESS",
    JobStatus.COMPLETED: "COMPLETED",
    JobStatus.CANCELED: "CANCELED",
    JobStatus.DELETION_IN_PROGRESS: "CANCELED",
}


async def _firmware_of_product(
    ctx: AliyunContext, params: dict[str, Any]
) -> tuple[Package, Product]:
    package = await lookup.firmware(ctx, params["FirmwareId"])
    product = await lookup.product(ctx, params["ProductKey"])
    if package.product_id != product.id:
        lookup.fail(BusinessCode.PRODUCT_MISMATCH)
    return package, product


async def _devices(ctx: AliyunContext, product: Product, names: Sequence[str]) -> list[Device]:
    return [await lookup.device(ctx, product.key, n) for n in names]


def _other_jobs(overwrite_mode: int) -> OtherJobs:
    """A device has one pending task: mode 1 refuses a second, mode 2 replaces the
    unstarted one (never an IN_PROGRESS one)."""
    return OtherJobs.REPLACE if overwrite_mode == 2 else OtherJobs.REFUSE


async def _create(
    ctx: AliyunContext, spec: JobSpec, devices: Sequence[Device] = ()
) -> Mapping[str, Any]:
    try:
        job = await ctx.services.jobs.create_job(ctx.tenant_id, spec)
    except InvalidStateTransition:
        lookup.fail(BusinessCode.FIRMWARE_VERIFY_STATUS_ERROR)
    except ActiveJobExists:  # the database allows one running dynamic job per firmware
        lookup.fail(BusinessCode.DYNAMIC_JOB_EXISTS)
    except DeviceOffSourceVersion as exc:
        named = _device_name(devices, exc.details["device_id"])
        lookup.fail(BusinessCode.DEVICE_VERSION_MISMATCH, named)
    except DeviceBusy as exc:
        named = _device_name(devices, exc.details["device_id"])
        lookup.fail(BusinessCode.DEVICE_IN_OTHER_TASK, named)
    return {"Data": {"JobId": job.ref, "UtcCreate": utc_ms(job.created_at)}}


def _device_name(devices: Sequence[Device], device_id: int) -> str:
    named = {d.id: d.name for d in devices}
    return f"DeviceName: {named.get(device_id, '')}"


@handles("CreateOTAVerifyJob")
async def create_verify_job(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    package, product = await _firmware_of_product(ctx, params)
    if package.verify_state not in (VerifyState.UNVERIFIED, VerifyState.FAILED):
        lookup.fail(
            BusinessCode.FIRMWARE_VERIFY_STATUS_ERROR,
            f"The firmware is {package.verify_state.value}.",
        )
    settings = jobspec.settings(
        ctx,
        params,
        package,
        job_type=jobspec.VERIFY_JOB,
        selection_type="STATIC",
        target_selection="SPECIFIC",
    )
    devices = await _devices(ctx, product, params["TargetDeviceName"])
    return await _create(
        ctx,
        JobSpec(
            ref=opaque_id(),
            kind=jobspec.VERIFY_KIND,
            device_ids=[d.id for d in devices],
            product_id=product.id,
            package_id=package.id,
            release_mode=ReleaseMode.NOTIFY,
            policies=settings.policies,
            need_push=settings.need_push,
            need_confirm=settings.need_confirm,
            is_verify=True,
            other_jobs=OtherJobs.REFUSE,
            data=settings.data,
        ),
        devices,
    )


def _check_releasable(package: Package) -> None:
    if package.verify_state not in RELEASABLE_PACKAGE:
        lookup.fail(
            BusinessCode.FIRMWARE_VERIFY_STATUS_ERROR,
            f"The firmware must pass verification first (it is {package.verify_state.value}).",
        )


@handles("CreateOTAStaticUpgradeJob")
async def create_static_job(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    package, product = await _firmware_of_product(ctx, params)
    _check_releasable(package)
    selection = params["TargetSelection"]
    srcs = params.get("SrcVersion")
    names = params.get("TargetDeviceName")
    dn_file = params.get("DnListFileUrl")
    group_id = params.get("GroupId")
    if srcs and selection in ("SPECIFIC", "GROUP"):
        lookup.fail(BusinessCode.INVALID_TARGET, "SrcVersion goes with ALL or GRAY only.")
    if (names or dn_file) and selection != "SPECIFIC":
        lookup.fail(BusinessCode.INVALID_TARGET, "Device names go with SPECIFIC only.")
    if group_id and selection != "GROUP":
        lookup.fail(BusinessCode.INVALID_TARGET, "GroupId goes with GROUP only.")
    if selection != "GRAY" and params.get("GrayPercent") is not None:
        lookup.fail(BusinessCode.INVALID_TARGET, "GrayPercent goes with GRAY only.")
    jobspec.check_diff_versions(package, srcs)
    settings = jobspec.settings(
        ctx,
        params,
        package,
        job_type=jobspec.UPGRADE_JOB,
        selection_type="STATIC",
        target_selection=selection,
    )
    devices: list[Device] = []
    spec = JobSpec(
        ref=opaque_id(),
        kind=jobspec.STATIC_KIND,
        product_id=product.id,
        package_id=package.id,
        release_mode=ReleaseMode.NOTIFY,
        policies=settings.policies,
        need_push=settings.need_push,
        need_confirm=settings.need_confirm,
        other_jobs=_other_jobs(settings.data["overwrite_mode"]),
        data=settings.data,
    )
    if selection == "SPECIFIC":
        if bool(names) == bool(dn_file):
            lookup.fail(
                BusinessCode.INVALID_TARGET,
                "SPECIFIC takes TargetDeviceName or DnListFileUrl (one of them).",
            )
        if dn_file:
            names = await read_device_list(ctx, dn_file)
        devices = await _devices(ctx, product, names or [])
        spec = replace(spec, device_ids=[d.id for d in devices])
    elif selection == "GROUP":
        if not group_id or params.get("GroupType") != "LINK_PLATFORM":
            lookup.fail(BusinessCode.INVALID_TARGET, "GROUP needs GroupId and GroupType.")
        g = await group(ctx, group_id)
        if not await ctx.services.registry.group_member_ids(ctx.tenant_id, g.name, limit=1):
            lookup.fail(BusinessCode.NO_DEVICE_MATCHED, f"The group {g.name} is empty.")
        spec = replace(spec, group_ids=[g.id], data={**spec.data, "group_name": g.name})
    else:
        if selection == "GRAY" and params.get("GrayPercent") is None:
            lookup.fail(BusinessCode.INVALID_TARGET, "GRAY needs GrayPercent.")
        selector = jobspec.version_selector(package, srcs)
        matching = await ctx.services.registry.list_devices(
            ctx.tenant_id, product_key=product.key, selector=selector, limit=1
        )
        if not matching:
            lookup.fail(BusinessCode.NO_DEVICE_MATCHED)
        spec = replace(spec, selector=selector)
    return await _create(ctx, spec, devices)


@handles("CreateOTADynamicUpgradeJob")
async def create_dynamic_job(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    package, product = await _firmware_of_product(ctx, params)
    _check_releasable(package)
    srcs = params.get("SrcVersion")
    group_id = params.get("GroupId")
    if bool(srcs) == bool(group_id):
        lookup.fail(BusinessCode.INVALID_TARGET, "A dynamic job takes SrcVersion or GroupId (one).")
    jobspec.check_diff_versions(package, srcs)
    settings = jobspec.settings(
        ctx,
        params,
        package,
        job_type=jobspec.UPGRADE_JOB,
        selection_type="DYNAMIC",
        target_selection="ALL",
    )
    if "DynamicMode" not in params:
        settings.data["dynamic_mode"] = 1
    spec = JobSpec(
        ref=opaque_id(),
        kind=jobspec.DYNAMIC_KIND,
        product_id=product.id,
        package_id=package.id,
        target_selection=TargetSelection.CONTINUOUS,
        release_mode=ReleaseMode.NOTIFY,
        only_later_matches=params.get("DynamicMode", 1) == 2,
        policies=settings.policies,
        need_push=settings.need_push,
        need_confirm=settings.need_confirm,
        other_jobs=_other_jobs(settings.data["overwrite_mode"]),
        data=settings.data,
    )
    if group_id:
        if params.get("GroupType") != "LINK_PLATFORM_DYNAMIC":
            lookup.fail(BusinessCode.INVALID_TARGET, "GroupType must be LINK_PLATFORM_DYNAMIC.")
        g = await group(ctx, group_id)
        spec = replace(spec, group_ids=[g.id], data={**spec.data, "group_name": g.name})
    else:
        spec = replace(spec, selector=jobspec.version_selector(package, srcs))
    return await _create(ctx, spec)


def _tags(job: Job) -> dict[str, Any]:
    return wrap("OtaTagDTO", [{"Key": k, "Value": v} for k, v in job.data.get("tags", {}).items()])


def simple_job(job: Job, package: Package | None, product_key: str | None) -> dict[str, Any]:
    d = job.data
    return {
        "JobId": job.ref,
        "FirmwareId": package.ref if package else None,
        "ProductKey": product_key,
        "JobStatus": JOB_STATUS[job.status],
        "JobType": d.get("job_type"),
        "SelectionType": d.get("selection_type"),
        "TargetSelection": d.get("target_selection"),
        "Tags": _tags(job),
        "UtcCreate": utc_ms(job.created_at),
        "UtcModified": utc_ms(job.updated_at),
        "UtcStartTime": utc_ms(job.started_at) if job.started_at else None,
        "UtcEndTime": utc_ms(job.completed_at) if job.completed_at else None,
    }


async def _product_key(ctx: AliyunContext, product_id: int | None) -> str | None:
    for p in await ctx.services.registry.list_products(ctx.tenant_id):
        if p.id == product_id:
            return p.key
    return None


@handles("QueryOTAJob")
async def query_job(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    job = await lookup.job(ctx, params["JobId"])
    package = (
        await ctx.services.packages.get_package_by_id(job.package_id)
        if job.package_id is not None
        else None
    )
    d = job.data
    pol = job.policies
    info = simple_job(job, package, await _product_key(ctx, job.product_id))
    info.update(
        # A job the engine fails on says why, in the only text its answer has.
        JobDesc=f"{job.description or ''} [engine error: {job.engine_error}]".lstrip()
        if job.engine_error
        else job.description,
        Name=package.name if package else None,
        DestVersion=package.version if package else None,
        SrcVersions=wrap("SrcVersion", d.get("src_versions", [])),
        GrayPercent=d.get("gray_percent"),
        GroupId=d.get("group_id"),
        GroupName=d.get("group_name"),
        DynamicMode=d.get("dynamic_mode"),
        DownloadProtocol=d.get("download_protocol", "HTTPS"),
        MultiModuleMode=d.get("multi_module_mode", False),
        NeedPush=job.need_push,
        NeedConfirm=job.need_confirm,
        OverwriteMode=d.get("overwrite_mode", 1),
        MaximumPerMinute=pol.rollout.max_per_minute,
        RetryInterval=d.get("retry_interval"),
        RetryCount=d.get("retry_count"),
        TimeoutInMinutes=pol.timeout.in_progress_minutes,
        UtcScheduleTime=utc_ms(pol.schedule.start_at) if pol.schedule.start_at else None,
        UtcScheduleFinishTime=utc_ms(pol.schedule.end_at) if pol.schedule.end_at else None,
    )
    return {"Data": info}


async def _job_page(
    ctx: AliyunContext, params: dict[str, Any], package: Package, device_id: int | None = None
) -> Mapping[str, Any]:
    size, page = params["PageSize"], params["CurrentPage"]
    found, total = await ctx.services.jobs.page_jobs(
        ctx.tenant_id,
        package_id=package.id,
        device_id=device_id,
        offset=(page - 1) * size,
        limit=size,
    )
    pk = await _product_key(ctx, package.product_id)
    return {
        "Data": wrap("SimpleOTAJobInfo", [simple_job(j, package, pk) for j in found]),
        **paging(total, size, page),
    }


@handles("ListOTAJobByFirmware")
async def list_jobs_by_firmware(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    package = await lookup.firmware(ctx, params["FirmwareId"])
    return await _job_page(ctx, params, package)


@handles("ListOTAJobByDevice")
async def list_jobs_by_device(ctx: AliyunContext, params: dict[str, Any]) -> Mapping[str, Any]:
    package, product = await _firmware_of_product(ctx, params)
    d = await lookup.device(ctx, product.key, params["DeviceName"])
    return await _job_page(ctx, params, package, d.id)


@handles("UpdateOTAJob")
async def update_job(ctx: AliyunContext, params: dict[str, Any]) -> None:
    job = await lookup.job(ctx, params["JobId"])
    if job.status not in ACTIVE_JOB:
        lookup.fail(BusinessCode.JOB_STATUS_ERROR, f"The job is {JOB_STATUS[job.status]}.")
    kind = job.data.get("selection_type")
    if params["UpgradeType"] != kind or job.is_verify:
        lookup.fail(BusinessCode.JOB_TYPE_ERROR, f"The job's UpgradeType is {kind}.")
    if params["TargetSelection"] != job.data.get("target_selection"):
        lookup.fail(BusinessCode.INVALID_TARGET, "TargetSelection cannot change.")
    dynamic = kind == "DYNAMIC"
    timeout = params.get("TimeoutInMinutes")
    srcs = params.get("SrcVersionList")
    if not dynamic and (timeout is not None or srcs):
        lookup.fail(
            BusinessCode.JOB_TYPE_ERROR,
            "TimeoutInMinutes and SrcVersionList change on DYNAMIC jobs only.",
        )
    if srcs and job.data.get("group_id"):
        lookup.fail(BusinessCode.JOB_TYPE_ERROR, "This dynamic job targets a group.")
    pol = job.policies
    policies = JobPolicies(
        rollout=RolloutPolicy(
            max_per_minute=params["MaximumPerMinute"],
            exponential=pol.rollout.exponential,
            gray_percent=pol.rollout.gray_percent,
        ),
        abort=pol.abort,
        timeout=TimeoutPolicy(timeout) if timeout is not None else pol.timeout,
        retry=pol.retry,
        schedule=pol.schedule,
    )
    # Tags not sent again are cleared (specs §7.22).
    data: dict[str, Any] = {
        "tags": jobspec.tags(params.get("Tags")),
        "maximum_per_minute": params["MaximumPerMinute"],
    }
    if timeout is not None:
        data["timeout_minutes"] = timeout
    selector: sel.Selector | None = None
    if srcs:
        package = await ctx.services.packages.get_package_by_id(job.package_id or 0)
        jobspec.check_diff_versions(package, srcs)
        data["src_versions"] = srcs
        selector = jobspec.version_selector(package, srcs)
    await ctx.services.jobs.update_job(
        ctx.tenant_id, job.ref, policies=policies, data=data, selector=selector
    )


@handles("CancelOTAStrategyByJob")
async def cancel_strategy(ctx: AliyunContext, params: dict[str, Any]) -> None:
    job = await lookup.job(ctx, params["JobId"])
    if job.kind != jobspec.DYNAMIC_KIND:
        lookup.fail(BusinessCode.JOB_TYPE_ERROR, "Only a dynamic job has a strategy.")
    if job.status not in ACTIVE_JOB:
        lookup.fail(BusinessCode.JOB_STATUS_ERROR, f"The job is {JOB_STATUS[job.status]}.")
    await ctx.services.jobs.cancel_job(ctx.tenant_id, job.ref, reason_code="STRATEGY_CANCELED")


@handles("CancelOTATaskByJob")
async def cancel_tasks_by_job(ctx: AliyunContext, params: dict[str, Any]) -> None:
    job = await lookup.job(ctx, params["JobId"])
    flags = (
        "CancelScheduledTask",
        "CancelQueuedTask",
        "CancelNotifiedTask",
        "CancelInProgressTask",
        "CancelUnconfirmedTask",
    )
    if not any(params.get(f) for f in flags):
        lookup.fail(BusinessCode.CANCEL_FLAG_REQUIRED)
    if job.status not in ACTIVE_JOB:
        lookup.fail(BusinessCode.JOB_STATUS_ERROR, f"The job is {JOB_STATUS[job.status]}.")
    if params.get("CancelScheduledTask") and job.status is JobStatus.SCHEDULED:
        await ctx.services.jobs.cancel_job(ctx.tenant_id, job.ref, reason_code="CANCELED")
        return
    statuses: list[ExecutionStatus] = []
    if params.get("CancelQueuedTask"):
        statuses.append(S.QUEUED)
        if "CancelUnconfirmedTask" not in params:
            statuses.append(S.CONFIRM)
    if params.get("CancelUnconfirmedTask"):
        statuses.append(S.CONFIRM)
    if params.get("CancelNotifiedTask"):
        statuses.append(S.NOTIFIED)
    if params.get("CancelInProgressTask"):
        statuses.append(S.IN_PROGRESS)
    if statuses:
        await ctx.services.executions.cancel_in_job(job.id, statuses, reason="canceled")
