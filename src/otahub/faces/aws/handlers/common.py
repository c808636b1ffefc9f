"""What several AWS handlers need: things by name, jobs by id, execution shapes."""

from __future__ import annotations

from typing import Any

from otahub.core.entities import Device, Execution, Job
from otahub.core.errors import NotFound
from otahub.faces.aws.wire.app import AwsContext
from otahub.gateway.aws.jobs_view import aws_status


async def thing(ctx: AwsContext, name: str) -> Device:
    found = await ctx.services.registry.find_device(ctx.tenant_id, name)
    if found is None:
        raise NotFound(f"Thing {name} cannot be found.")
    return found


async def job(ctx: AwsContext, job_id: str) -> Job:
    return await ctx.services.jobs.get_job(ctx.tenant_id, job_id)


def execution_summary(ex: Execution) -> dict[str, Any]:
    """JobExecutionSummary of the control plane (timestamps as datetimes)."""
    return {
        "status": aws_status(ex.status),
        "queuedAt": ex.queued_at,
        "startedAt": ex.started_at,
        "lastUpdatedAt": ex.updated_at,
        "executionNumber": ex.execution_number,
        "retryAttempt": ex.retry_attempt,
    }
