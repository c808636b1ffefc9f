"""A new job and its targets' unfinished work in other jobs (Alibaba's OverwriteMode),
decided in the job's own transaction (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Report, Services
from otahub.core.services.jobs import DeviceBusy, OtherJobs
from otahub.domain.states import ExecutionStatus, ReleaseMode
from otahub.store.tables import outbox
from tests.unit.core.fleet import make_fleet

S = ExecutionStatus


async def _busy_fleet(services: Services, engine: Engine) -> tuple[int, list[int], int]:
    """Three devices with a task each in job "first": dev0000's IN_PROGRESS."""
    tenant, ids = await make_fleet(services, 3)
    first = await services.jobs.create_job(
        tenant, JobSpec(ref="first", kind="test", device_ids=ids, release_mode=ReleaseMode.NOTIFY)
    )
    await engine.tick()
    await services.executions.report(first.id, ids[0], Report(S.IN_PROGRESS))
    return tenant, ids, first.id


def _spec(ref: str, other_jobs: OtherJobs, device_ids: list[int]) -> JobSpec:
    return JobSpec(
        ref=ref,
        kind="test",
        device_ids=device_ids,
        release_mode=ReleaseMode.NOTIFY,
        other_jobs=other_jobs,
    )


async def _job_refs(services: Services, tenant: int) -> list[str]:
    return [j.ref for j in await services.jobs.list_jobs(tenant)]


async def test_refuse_names_the_first_busy_device_and_creates_nothing(
    services: Services, engine: Engine
) -> None:
    tenant, ids, first = await _busy_fleet(services, engine)
    with pytest.raises(DeviceBusy) as raised:
        await services.jobs.create_job(tenant, _spec("second", OtherJobs.REFUSE, ids[::-1]))
    assert raised.value.details["device_id"] == ids[2]
    assert await _job_refs(services, tenant) == ["first"]
    # KEEP leaves the other job alone.
    await services.jobs.create_job(tenant, _spec("third", OtherJobs.KEEP, ids))
    assert await services.jobs.counts(first) == {S.IN_PROGRESS: 1, S.QUEUED: 2}


async def test_replace_refuses_a_device_in_progress(services: Services, engine: Engine) -> None:
    tenant, ids, first = await _busy_fleet(services, engine)
    with pytest.raises(DeviceBusy) as raised:
        await services.jobs.create_job(tenant, _spec("second", OtherJobs.REPLACE, ids))
    assert raised.value.details["device_id"] == ids[0]
    assert await _job_refs(services, tenant) == ["first"]
    assert await services.jobs.counts(first) == {S.IN_PROGRESS: 1, S.QUEUED: 2}


async def test_replace_cancels_the_listed_devices_unstarted_work_with_the_job(
    services: Services, engine: Engine
) -> None:
    tenant, ids, first = await _busy_fleet(services, engine)
    async with services.ctx.db.read() as conn:
        sent_before = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    await services.jobs.create_job(tenant, _spec("second", OtherJobs.REPLACE, ids[1:2]))
    assert await services.jobs.counts(first) == {S.IN_PROGRESS: 1, S.QUEUED: 1, S.CANCELED: 1}
    replaced = await services.executions.get(first, ids[1])
    assert (replaced.status, replaced.reason) == (S.CANCELED, "overwritten")
    async with services.ctx.db.read() as conn:
        sent = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert sent == sent_before + 1  # the device hears its task went


async def test_replace_over_a_group_cancels_unstarted_work_and_keeps_running_work(
    services: Services, engine: Engine
) -> None:
    tenant, _, first = await _busy_fleet(services, engine)
    fleet = await services.registry.get_group(tenant, "fleet")
    await services.jobs.create_job(
        tenant,
        JobSpec(
            ref="second",
            kind="test",
            group_ids=[fleet.id],
            release_mode=ReleaseMode.NOTIFY,
            other_jobs=OtherJobs.REPLACE,
        ),
    )
    assert await services.jobs.counts(first) == {S.IN_PROGRESS: 1, S.CANCELED: 2}
