"""The Jobs HTTP data plane devices call (service `iot-jobs-data`)."""

from __future__ import annotations

from typing import Any

from otahub.aws.devices import jobs_view as view
from otahub.aws.handlers import handles
from otahub.aws.handlers.common import thing
from otahub.aws.wire.app import AwsContext
from otahub.core.services import Report
from otahub.core.services.device_jobs import DeviceJobService, Handed
from otahub.domain.entities import Device
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.domain.states import DEVICE_SETTABLE, ExecutionStatus

S = ExecutionStatus
SERVICE = "iot-jobs-data"


def _device_jobs(ctx: AwsContext) -> DeviceJobService:
    return DeviceJobService(ctx.services.executions, ctx.services.jobs, ctx.deps.render_document)


@handles(SERVICE, "GetPendingJobExecutions")
async def get_pending(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    pending = await _device_jobs(ctx).pending_for_thing(ctx.tenant_id, p["thingName"])
    if pending is None:
        raise NotFound(f"Thing {p['thingName']} cannot be found.")
    return {
        "inProgressJobs": [view.summary(e) for e in pending.in_progress],
        "queuedJobs": [view.summary(e) for e in pending.queued],
    }


def _execution(ctx: AwsContext, device: Device, handed: Handed, include: bool) -> dict[str, Any]:
    return view.execution_data(
        handed.execution,
        device.name,
        handed.document,
        ctx.clock.now(),
        include_document=include,
        document_as_object=False,
    )


@handles(SERVICE, "DescribeJobExecution")
async def describe(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    found = await _device_jobs(ctx).describe(
        d, p["jobId"], execution_number=p.get("executionNumber")
    )
    if found is None:
        return {}
    return {"execution": _execution(ctx, d, found, p.get("includeJobDocument", True))}


@handles(SERVICE, "StartNextPendingJobExecution")
async def start_next(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    started = await _device_jobs(ctx).start_next(
        d,
        status_details=view.check_status_details(p.get("statusDetails")),
        step_timeout_minutes=p.get("stepTimeoutInMinutes"),
    )
    return {"execution": _execution(ctx, d, started, True)} if started else {}


@handles(SERVICE, "UpdateJobExecution")
async def update(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    status = S(p["status"])
    if status not in DEVICE_SETTABLE:
        raise InvalidRequest(f"a device cannot set status {status.value}")
    d = await thing(ctx, p["thingName"])
    report = Report(
        status=status,
        status_details=view.check_status_details(p.get("statusDetails")),
        expected_version=p.get("expectedVersion"),
        execution_number=p.get("executionNumber"),
        step_timeout_minutes=p.get("stepTimeoutInMinutes"),
    )
    with_document = bool(p.get("includeJobDocument"))
    updated = await _device_jobs(ctx).update(d, p["jobId"], report, with_document=with_document)
    out: dict[str, Any] = {}
    if p.get("includeJobExecutionState"):
        out["executionState"] = view.execution_state(updated.execution)
    if with_document:
        out["jobDocument"] = updated.document
    return out
