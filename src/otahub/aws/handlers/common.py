"""What several AWS handlers need: things by name, jobs by id, execution shapes."""

from __future__ import annotations

from typing import Any

from otahub.aws.devices.jobs_view import aws_status
from otahub.aws.wire.app import AwsContext
from otahub.domain.entities import Device, Execution, Job
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.domain.limits import INT32_MAX, Refused, parse_int


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


def page_token(p: dict[str, Any], last: int = INT32_MAX) -> int:
    """Where the page a list's `nextToken` asks for starts (0: the first page). The
    tokens otahub gives out are decimal positions up to `last` (the largest id of
    the column the list pages by); any other is refused."""
    token = p.get("nextToken")
    if not token:
        return 0
    try:
        return parse_int(token, "nextToken", 0, last)
    except Refused:
        raise InvalidRequest(f"nextToken {token[:40]!r} is not one this server gave") from None


def single_page(p: dict[str, Any]) -> None:
    """For the lists otahub answers in one page: it never gives a token, so any
    `nextToken` is one it did not give."""
    if p.get("nextToken"):
        raise InvalidRequest("nextToken: this list has one page, and no token was given")


def check_length(value: str | None, limit: int, where: str) -> None:
    """For members the model leaves unbounded that otahub stores in a column of
    `limit` characters."""
    if value is not None and len(value) > limit:
        raise InvalidRequest(f"{where} must be at most {limit} characters")
