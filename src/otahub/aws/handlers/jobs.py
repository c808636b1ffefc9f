"""Jobs and job executions on the control plane (service `iot`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from otahub.aws.devices.documents import s3_location
from otahub.aws.devices.jobs_view import aws_status
from otahub.aws.handlers import handles
from otahub.aws.handlers.common import execution_summary, job, page_token, thing
from otahub.aws.handlers.tags import from_wire
from otahub.aws.wire.app import AwsContext
from otahub.core.services import JobSpec
from otahub.domain.entities import Job
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.domain.limits import INT64_MAX, Refused, loads_json
from otahub.domain.policies import (
    AbortCriterion,
    EndBehavior,
    ExponentialRate,
    JobPolicies,
    MaintenanceWindow,
    RetryCriterion,
    RetryPolicy,
    RolloutPolicy,
    SchedulePolicy,
    TimeoutPolicy,
)
from otahub.domain.states import ExecutionStatus, FailureType, JobStatus, TargetSelection

S = ExecutionStatus
# Settings echoed back by DescribeJob exactly as they were given.
ECHOED = (
    "presignedUrlConfig",
    "jobExecutionsRolloutConfig",
    "abortConfig",
    "timeoutConfig",
    "jobExecutionsRetryConfig",
    "schedulingConfig",
    "documentParameters",
    "targets",
)


def policies_from(p: dict[str, Any], abort_key: str = "criteriaList") -> JobPolicies:
    """Core policies from AWS's job configuration members."""
    rollout = p.get("jobExecutionsRolloutConfig") or {}
    exp = rollout.get("exponentialRate")
    crit = (exp or {}).get("rateIncreaseCriteria") or {}
    timeout = (p.get("timeoutConfig") or {}).get("inProgressTimeoutInMinutes")
    sched = p.get("schedulingConfig") or {}
    return JobPolicies(
        rollout=RolloutPolicy(
            max_per_minute=rollout.get("maximumPerMinute"),
            exponential=ExponentialRate(
                exp["baseRatePerMinute"],
                exp["incrementFactor"],
                every_notified=crit.get("numberOfNotifiedThings"),
                every_succeeded=crit.get("numberOfSucceededThings"),
            )
            if exp
            else None,
        ),
        abort=tuple(
            AbortCriterion(
                FailureType(c["failureType"]),
                c["thresholdPercentage"],
                c["minNumberOfExecutedThings"],
            )
            for c in (p.get("abortConfig") or {}).get(abort_key, ())
        ),
        timeout=TimeoutPolicy(in_progress_minutes=timeout),
        retry=RetryPolicy(
            tuple(
                RetryCriterion(FailureType(c["failureType"]), c["numberOfRetries"])
                for c in (p.get("jobExecutionsRetryConfig") or {}).get("criteriaList", ())
            )
        ),
        schedule=SchedulePolicy(
            start_at=_minute(sched.get("startTime")),
            end_at=_minute(sched.get("endTime")),
            end_behavior=EndBehavior(sched.get("endBehavior", "STOP_ROLLOUT")),
            windows=tuple(
                MaintenanceWindow(_cron(w["startTime"]), w["durationInMinutes"])
                for w in sched.get("maintenanceWindows", ())
            ),
        ),
    )


def _minute(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a time like 2026-12-01T08:00") from None


def _cron(expr: str) -> str:
    """AWS's `cron(min hour dom month dow year)` as five-field cron."""
    inner = expr.strip()
    if inner.startswith("cron(") and inner.endswith(")"):
        inner = inner[5:-1]
    fields = inner.split()
    if len(fields) not in (5, 6):
        raise InvalidRequest(f"{expr!r} is not a cron expression")
    return " ".join(f.replace("?", "*") for f in fields[:5])


async def targets_of(ctx: AwsContext, arns: list[str]) -> tuple[list[int], list[int]]:
    devices, groups = [], []
    for arn in arns:
        kind, _, name = arn.split(":", 5)[-1].partition("/")
        if kind == "thing":
            devices.append((await thing(ctx, name)).id)
        elif kind == "thinggroup":
            groups.append((await ctx.services.registry.get_group(ctx.tenant_id, name)).id)
        else:
            raise InvalidRequest(f"{arn} is not a thing or thing group ARN")
    return devices, groups


MAX_DOCUMENT = 32_768  # AWS's limit of a job document, in bytes


def checked_document(text: str, where: str = "document") -> str:
    """`text` if it is a job document AWS would take: a JSON object of at most
    MAX_DOCUMENT bytes, nested at most MAX_JSON_DEPTH deep."""
    if len(text.encode(errors="surrogatepass")) > MAX_DOCUMENT:
        raise InvalidRequest(f"{where}: a job document is at most {MAX_DOCUMENT} bytes")
    try:
        value = loads_json(text)
    except Refused as exc:
        raise InvalidRequest(f"{where} is not a valid job document: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: a job document must be a JSON object")
    return text


async def _fetch_document(ctx: AwsContext, url: str) -> str:
    """The job document an S3 URL names (`https://s3.<region>.amazonaws.com/<bucket>/<key>`
    or virtual-hosted), read from otahub's own object store, as AWS reads it from S3."""
    bucket, key = s3_location(url)
    if not bucket or not key:
        raise InvalidRequest(f"documentSource {url} is not an S3 URL of a bucket and key")
    try:
        obj = await ctx.objects.get(ctx.tenant_id, bucket, key)
    except NotFound as exc:
        raise NotFound(f"documentSource {url}: the S3 object does not exist") from exc
    if obj.size > MAX_DOCUMENT or obj.blob_key is None:
        raise InvalidRequest(
            f"documentSource {url}: a job document is at most {MAX_DOCUMENT} bytes"
        )
    chunks = [c async for c in ctx.objects.blobs.open_range(obj.blob_key, 0, obj.size)]
    try:
        text = b"".join(chunks).decode()
    except UnicodeDecodeError:
        raise InvalidRequest(f"documentSource {url}: the document is not UTF-8 text") from None
    return checked_document(text, f"documentSource {url}")


@handles("iot", "CreateJob")
async def create_job(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    if bool(p.get("document")) == bool(p.get("documentSource")):
        raise InvalidRequest("give exactly one of document and documentSource")
    if p.get("document"):
        document = checked_document(p["document"])
    else:
        document = await _fetch_document(ctx, p["documentSource"])
    devices, groups = await targets_of(ctx, p["targets"])
    spec = JobSpec(
        ref=p["jobId"],
        kind="job",
        device_ids=devices,
        group_ids=groups,
        document=document,
        description=p.get("description"),
        target_selection=TargetSelection(p.get("targetSelection", "SNAPSHOT")),
        policies=policies_from(p),
        data={k: p[k] for k in (*ECHOED, "documentSource") if k in p}
        | {"tags": p.get("tags") or []},
        tags=from_wire(p.get("tags") or []),
        tagged_as=ctx.arn(f"job/{p['jobId']}"),
    )
    created = await ctx.services.jobs.create_job(ctx.tenant_id, spec)
    return {
        "jobArn": ctx.arn(f"job/{created.ref}"),
        "jobId": created.ref,
        "description": created.description,
    }


async def describe(ctx: AwsContext, j: Job) -> dict[str, Any]:
    counts = await ctx.services.jobs.counts(j.id)
    details = {
        "numberOfCanceledThings": counts.get(S.CANCELED, 0),
        "numberOfSucceededThings": counts.get(S.SUCCEEDED, 0),
        "numberOfFailedThings": counts.get(S.FAILED, 0),
        "numberOfRejectedThings": counts.get(S.REJECTED, 0),
        "numberOfQueuedThings": counts.get(S.QUEUED, 0) + counts.get(S.NOTIFIED, 0),
        "numberOfInProgressThings": counts.get(S.IN_PROGRESS, 0),
        "numberOfRemovedThings": counts.get(S.REMOVED, 0),
        "numberOfTimedOutThings": counts.get(S.TIMED_OUT, 0),
    }
    out = {
        "jobArn": ctx.arn(f"job/{j.ref}"),
        "jobId": j.ref,
        "targetSelection": j.target_selection.value,
        "status": j.status.value,
        "forceCanceled": j.force_canceled,
        # A job the engine fails on says why, in the fields a cancel fills (it has none).
        "reasonCode": j.reason_code or ("ENGINE_ERROR" if j.engine_error else None),
        "comment": j.comment or j.engine_error,
        "description": j.description,
        "createdAt": j.created_at,
        "lastUpdatedAt": j.updated_at,
        "completedAt": j.completed_at,
        "jobProcessDetails": details,
        "isConcurrent": j.status is JobStatus.IN_PROGRESS and not j.initial_done,
    }
    out.update({k: v for k, v in j.data.items() if k in ECHOED})
    return out


@handles("iot", "DescribeJob")
async def describe_job(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    j = await job(ctx, p["jobId"])
    return {"job": await describe(ctx, j), "documentSource": j.data.get("documentSource")}


@handles("iot", "GetJobDocument")
async def get_job_document(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    return {"document": (await job(ctx, p["jobId"])).document}


@handles("iot", "ListJobs")
async def list_jobs(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    limit = p.get("maxResults") or 50
    status = JobStatus(p["status"]) if p.get("status") else None
    found = await ctx.services.jobs.list_jobs(
        ctx.tenant_id, status=status, after_id=page_token(p), limit=limit + 1
    )
    if p.get("targetSelection"):
        found = [j for j in found if j.target_selection.value == p["targetSelection"]]
    page = found[:limit]
    out: dict[str, Any] = {
        "jobs": [
            {
                "jobArn": ctx.arn(f"job/{j.ref}"),
                "jobId": j.ref,
                "targetSelection": j.target_selection.value,
                "status": j.status.value,
                "createdAt": j.created_at,
                "lastUpdatedAt": j.updated_at,
                "completedAt": j.completed_at,
            }
            for j in page
        ]
    }
    if len(found) > limit:
        out["nextToken"] = str(page[-1].id)
    return out


@handles("iot", "UpdateJob")
async def update_job(ctx: AwsContext, p: dict[str, Any]) -> None:
    current = await job(ctx, p["jobId"])
    merged = {
        **{k: v for k, v in current.data.items() if k in ECHOED},
        **{k: p[k] for k in ECHOED if k in p},
    }
    await ctx.services.jobs.update_job(
        ctx.tenant_id,
        current.ref,
        policies=policies_from(merged),
        description=p.get("description"),
        data=merged,
    )


@handles("iot", "CancelJob")
async def cancel_job(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    j = await ctx.services.jobs.cancel_job(
        ctx.tenant_id,
        p["jobId"],
        force=p.get("force", False),
        reason_code=p.get("reasonCode"),
        comment=p.get("comment"),
    )
    return {"jobArn": ctx.arn(f"job/{j.ref}"), "jobId": j.ref, "description": j.description}


@handles("iot", "DeleteJob")
async def delete_job(ctx: AwsContext, p: dict[str, Any]) -> None:
    await ctx.services.jobs.delete_job(
        ctx.tenant_id,
        p["jobId"],
        force=p.get("force", False),
        tagged_as=ctx.arn(f"job/{p['jobId']}"),
    )


@handles("iot", "ListJobExecutionsForJob")
async def list_for_job(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    j = await job(ctx, p["jobId"])
    limit = p.get("maxResults") or 50
    status = _status(p.get("status"))
    found = await ctx.services.executions.list_for_job(
        j.id, status=status, after_device_id=page_token(p, INT64_MAX), limit=limit + 1
    )
    page = found[:limit]
    out: dict[str, Any] = {
        "executionSummaries": [
            {
                "thingArn": ctx.arn(f"thing/{e.device_name}"),
                "jobExecutionSummary": execution_summary(e),
            }
            for e in page
        ]
    }
    if len(found) > limit:
        out["nextToken"] = str(page[-1].device_id)
    return out


@handles("iot", "ListJobExecutionsForThing")
async def list_for_thing(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    limit = p.get("maxResults") or 50
    found = await ctx.services.executions.list_for_device(
        d.id,
        status=_status(p.get("status")),
        after_job_id=page_token(p),
        limit=limit + 1,
    )
    if p.get("jobId"):
        found = [e for e in found if e.job_ref == p["jobId"]]
    page = found[:limit]
    out: dict[str, Any] = {
        "executionSummaries": [
            {"jobId": e.job_ref, "jobExecutionSummary": execution_summary(e)} for e in page
        ]
    }
    if len(found) > limit:
        out["nextToken"] = str(page[-1].job_id)
    return out


def _status(text: str | None) -> S | None:
    if not text:
        return None
    return S(text)


@handles("iot", "DescribeJobExecution")
async def describe_execution(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    j = await job(ctx, p["jobId"])
    e = await ctx.services.executions.get(j.id, d.id, p.get("executionNumber"))
    out = {
        "jobId": j.ref,
        "status": aws_status(e.status),
        # Only force cancels a started execution: canceled after it started = forced.
        "forceCanceled": e.status is S.CANCELED and e.started_at is not None,
        "thingArn": ctx.arn(f"thing/{d.name}"),
        "queuedAt": e.queued_at,
        "startedAt": e.started_at,
        "lastUpdatedAt": e.updated_at,
        "executionNumber": e.execution_number,
        "versionNumber": e.version,
    }
    if e.status_details:
        out["statusDetails"] = {"detailsMap": e.status_details}
    if e.deadline_at is not None and e.status is S.IN_PROGRESS:
        left = (e.deadline_at - ctx.clock.now()).total_seconds()
        out["approximateSecondsBeforeTimedOut"] = max(0, int(left))
    return {"execution": out}


@handles("iot", "CancelJobExecution")
async def cancel_execution(ctx: AwsContext, p: dict[str, Any]) -> None:
    d = await thing(ctx, p["thingName"])
    j = await job(ctx, p["jobId"])
    await ctx.services.executions.cancel(
        j.id,
        d.id,
        force=p.get("force", False),
        expected_version=p.get("expectedVersion"),
        status_details=p.get("statusDetails"),
    )


@handles("iot", "DeleteJobExecution")
async def delete_execution(ctx: AwsContext, p: dict[str, Any]) -> None:
    d = await thing(ctx, p["thingName"])
    j = await job(ctx, p["jobId"])
    try:
        await ctx.services.executions.delete(
            j.id, d.id, p["executionNumber"], force=p.get("force", False)
        )
    except NotFound:
        raise
