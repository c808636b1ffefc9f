"""What reaches the store through the execution service, whichever caller forgot to
check it: text with NUL and numbers past the columns are refused or found absent,
never a database error, and nothing is written (issue 18)."""

from __future__ import annotations

from typing import Any

import pytest

from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Report, Services
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.domain.states import ExecutionStatus

S = ExecutionStatus


async def queued(services: Services, engine: Engine) -> tuple[int, int, int]:
    tenant = await services.accounts.tenant("1")
    device = await services.registry.create_device(tenant.id, "d1")
    job = await services.jobs.create_job(
        tenant.id, JobSpec(ref="j1", kind="job", device_ids=[device.id], document="{}")
    )
    await engine.tick()
    return tenant.id, job.id, device.id


@pytest.mark.parametrize(
    "fields",
    [
        {"status_details": {"k": "a\x00b"}},
        {"status_details": {"k\x00": "v"}},
        {"status_details": {"k": "\ud800"}},
        {"reason": "boom\x00"},
        {"progress": 2**31},
        {"expected_version": 2**63},
        {"step_timeout_minutes": -(2**63) - 1},
        {"execution_number": 2**64},
    ],
    ids=lambda fields: next(iter(fields)),
)
async def test_reports_the_store_cannot_hold_are_refused(
    services: Services, engine: Engine, fields: dict[str, Any]
) -> None:
    tenant, job, device = await queued(services, engine)
    report = Report(S.IN_PROGRESS, **fields)
    with pytest.raises(InvalidRequest):
        await services.executions.report(job, device, report)
    with pytest.raises(InvalidRequest):
        await services.executions.report_by_ref(tenant, "j1", device, report)
    ex = await services.executions.get(job, device)
    assert (ex.status, ex.version) == (S.QUEUED, 1)


@pytest.mark.parametrize("number", [2**31, -(2**31) - 1, 2**63, 2**70])
async def test_execution_numbers_past_the_column_are_not_found(
    services: Services, engine: Engine, number: int
) -> None:
    _, job, device = await queued(services, engine)
    with pytest.raises(NotFound):
        await services.executions.get(job, device, number)
    with pytest.raises(NotFound):
        await services.executions.delete(job, device, number, force=True)
    report = Report(S.IN_PROGRESS, execution_number=number) if number < 2**63 else None
    if report is not None:
        with pytest.raises(NotFound):
            await services.executions.report(job, device, report)


async def test_start_cancel_and_version_reports_with_nul(
    services: Services, engine: Engine
) -> None:
    _, job, device = await queued(services, engine)
    with pytest.raises(InvalidRequest):
        await services.executions.start_next(device, status_details={"k": "\x00"})
    with pytest.raises(InvalidRequest):
        await services.executions.start_next(device, step_timeout_minutes=2**64)
    with pytest.raises(InvalidRequest):
        await services.executions.cancel(job, device, status_details={"k": "\x00"})
    assert await services.executions.settle_by_version(device, "default\x00", "2.0") == []
    assert await services.executions.settle_by_version(device, "default", "\ud800") == []
    assert (await services.executions.get(job, device)).status is S.QUEUED
