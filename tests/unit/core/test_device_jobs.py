"""The device Jobs API of core: one read of the pending list per request at most."""

from __future__ import annotations

import json

import pytest

from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Report, Services
from otahub.core.services.device_jobs import DeviceJobService, Notices
from otahub.domain.entities import Device
from otahub.domain.errors import NotFound
from otahub.domain.states import ExecutionStatus
from tests.unit.core.pending_reads import PendingReads, count_pending_reads

S = ExecutionStatus


async def two_jobs(services: Services, engine: Engine) -> tuple[Device, DeviceJobService]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "thing-1")
    for ref in ("job-a", "job-b"):
        await services.jobs.create_job(
            tenant.id,
            JobSpec(ref=ref, kind="job", device_ids=[thing.id], document=json.dumps({"j": ref})),
        )
    await engine.tick()
    return thing, DeviceJobService(services.executions, services.jobs)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> PendingReads:
    return count_pending_reads(monkeypatch)


async def test_each_request_reads_the_pending_list_once_at_most(
    services: Services, engine: Engine, reads: PendingReads
) -> None:
    thing, device_jobs = await two_jobs(services, engine)
    reads.take()

    pending = await device_jobs.pending(thing)
    assert [e.job_ref for e in pending.queued] == ["job-a", "job-b"] and not pending.in_progress
    assert reads.take() == 1

    by_name = await device_jobs.pending_for_thing(thing.tenant_id, "thing-1")
    assert by_name == pending
    assert reads.take() == 1
    assert await device_jobs.pending_for_thing(thing.tenant_id, "nobody") is None
    assert reads.take() == 1

    nxt = await device_jobs.describe(thing, "$next")
    assert nxt is not None and nxt.execution.job_ref == "job-a"
    assert nxt.document == '{"j": "job-a"}'
    assert reads.take() == 1

    started = await device_jobs.start_next(thing, status_details={"step": "download"})
    assert started is not None
    assert (started.execution.job_ref, started.execution.status) == ("job-a", S.IN_PROGRESS)
    assert started.execution.status_details == {"step": "download"}
    assert started.document == '{"j": "job-a"}'
    assert reads.take() == 1

    again = await device_jobs.start_next(thing)  # an IN_PROGRESS head as it is
    assert again is not None and again.execution == started.execution
    assert reads.take() == 1

    described = await device_jobs.describe(thing, "job-b")
    assert described is not None and described.execution.status is S.QUEUED
    updated = await device_jobs.update(thing, "job-a", Report(S.SUCCEEDED), with_document=True)
    assert updated.execution.status is S.SUCCEEDED and updated.document == '{"j": "job-a"}'
    assert (await device_jobs.update(thing, "job-b", Report(S.IN_PROGRESS))).document is None
    with pytest.raises(NotFound):
        await device_jobs.describe(thing, "job-z")
    assert reads.take() == 0


async def test_notices_read_the_pending_list_unless_given(
    services: Services, engine: Engine, reads: PendingReads
) -> None:
    thing, device_jobs = await two_jobs(services, engine)
    reads.take()

    notices = await device_jobs.notices(thing)
    assert [e.job_ref for e in notices.listed] == ["job-a", "job-b"]
    assert notices.next is not None and notices.next.execution.job_ref == "job-a"
    assert reads.take() == 1

    assert await device_jobs.notices(thing, []) == Notices(listed=[], next=None)
    assert reads.take() == 0


async def test_nothing_pending(services: Services, reads: PendingReads) -> None:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "idle")
    device_jobs = DeviceJobService(services.executions, services.jobs)
    assert await device_jobs.start_next(thing) is None
    assert await device_jobs.describe(thing, "$next") is None
    assert reads.take() == 2
