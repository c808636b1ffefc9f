"""The Jobs HTTP data plane devices call (service `iot-jobs-data`)."""

from __future__ import annotations

from typing import Any

from otahub.aws.devices import jobs_view as view
from otahub.aws.handlers import handles
from otahub.aws.handlers.common import job, thing
from otahub.aws.wire.app import AwsContext
from otahub.core.services import Report
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.domain.states import DEVICE_SETTABLE, ExecutionStatus

S = ExecutionStatus
SERVICE = "iot-jobs-data"


@handles(SERVICE, "GetPendingJobExecutions")
async def get_pending(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    pending = await ctx.services.executions.pending_for_thing(ctx.tenant_id, p["thingName"])
    if pending is None:
        raise NotFound(f"Thing {p['thingName']} cannot be found.")
    return {
        "inProgressJobs": [view.summary(e) for e in pending if e.status is S.IN_PROGRESS],
        "queuedJobs": [view.summary(e) for e in pending if e.status is not S.IN_PROGRESS],
    }


async def _execution(ctx: AwsContext, device: Any, ex: Any, include: bool) -> dict[str, Any]:
    job_row = await ctx.services.jobs.get_job_by_id(ex.job_id)
    document = job_row.document
    if ctx.deps.render_document is not None:
        document = await ctx.deps.render_document(job_row, device, document)
    return view.execution_data(
        ex,
        device.name,
        document,
        ctx.clock.now(),
        include_document=include,
        document_as_object=False,
    )


@handles(SERVICE, "DescribeJobExecution")
async def describe(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    include = p.get("includeJobDocument", True)
    if p["jobId"] == "$next":
        pending = await ctx.services.executions.pending_for_device(d.id, limit=1)
        if not pending:
            return {}
        ex = pending[0]
    else:
        j = await job(ctx, p["jobId"])
        ex = await ctx.services.executions.get(j.id, d.id, p.get("executionNumber"))
    return {"execution": await _execution(ctx, d, ex, include)}


@handles(SERVICE, "StartNextPendingJobExecution")
async def start_next(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    ex = await ctx.services.executions.start_next(
        d.id,
        status_details=view.check_status_details(p.get("statusDetails")),
        step_timeout_minutes=p.get("stepTimeoutInMinutes"),
    )
    return {"execution": await _execution(ctx, d, ex, True)} if ex else {}


@handles(SERVICE, "UpdateJobExecution")
async def update(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    status = S(p["status"])
    if status not in DEVICE_SETTABLE:
        raise InvalidRequest(f"a device cannot set status {status.value}")
    d = await thing(ctx, p["thingName"])
    ex = await ctx.services.executions.report_by_ref(
        ctx.tenant_id,
        p["jobId"],
        d.id,
        Report(
            status=status,
            status_details=view.check_status_details(p.get("statusDetails")),
            expected_version=p.get("expectedVersion"),
            execution_number=p.get("executionNumber"),
            step_timeout_minutes=p.get("stepTimeoutInMinutes"),
        ),
    )
    out: dict[str, Any] = {}
    if p.get("includeJobExecutionState"):
        out["executionState"] = view.execution_state(ex)
    if p.get("includeJobDocument"):
        out["jobDocument"] = (await ctx.services.jobs.get_job_by_id(ex.job_id)).document
    return out
