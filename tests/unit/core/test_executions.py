"""Device-side and operator changes of executions, with versions and the outbox."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from otahub.core.engine import Engine
from otahub.core.outbox import Notification, OutboxPublisher
from otahub.core.services import Report, Services
from otahub.domain.clock import FakeClock
from otahub.domain.errors import InvalidStateTransition, NotFound, VersionConflict
from otahub.domain.states import ExecutionStatus
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus


async def delivered(svc: Services) -> list[Notification]:
    """Drain the outbox the way the server does and return what devices were sent."""
    sent: list[Notification] = []

    async def sink(batch: Sequence[Notification]) -> None:
        sent.extend(batch)

    await OutboxPublisher(svc.ctx.db, svc.ctx.clock, sink).drain()
    return sent


async def test_release_then_device_lifecycle(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 3)
    job = await group_job(services, tenant)
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.QUEUED: 3}
    released = await delivered(services)
    assert sorted(n.device_id for n in released) == sorted(ids)
    assert {(n.kind, n.job_id, n.execution_number) for n in released} == {("released", job.id, 1)}

    ex = await services.executions.get(job.id, ids[0])
    assert (ex.status, ex.version, ex.execution_number) == (S.QUEUED, 1, 1)

    clock.advance(5)
    started = await services.executions.start_next(ids[0], status_details={"step": "download"})
    assert started is not None and started.status is S.IN_PROGRESS
    assert started.version == 2 and started.started_at == clock.now()
    assert started.status_details == {"step": "download"}

    # A head already IN_PROGRESS is returned unchanged.
    again = await services.executions.start_next(ids[0])
    assert again is not None and again.version == 2

    progressed = await services.executions.report(
        job.id, ids[0], Report(S.IN_PROGRESS, status_details={"pct": "50"}, expected_version=2)
    )
    assert progressed.version == 3
    assert progressed.status_details == {"pct": "50"}  # given details replace the old

    done = await services.executions.report(job.id, ids[0], Report(S.SUCCEEDED))
    assert done.status is S.SUCCEEDED and done.finished_at == clock.now()
    changed = await delivered(services)  # leaving the pending set notifies the device
    assert [(n.device_id, n.kind) for n in changed] == [(ids[0], "changed")]

    with pytest.raises(InvalidStateTransition) as err:
        await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    assert err.value.details["current"]["status"] == "SUCCEEDED"


async def test_stale_expected_version_is_refused(services: Services, engine: Engine) -> None:
    tenant, ids = await make_fleet(services, 1)
    job = await group_job(services, tenant)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS, expected_version=1))
    with pytest.raises(VersionConflict) as err:
        await services.executions.report(job.id, ids[0], Report(S.FAILED, expected_version=1))
    assert err.value.details["current"]["version"] == 2
    ex = await services.executions.get(job.id, ids[0])
    assert ex.status is S.IN_PROGRESS  # nothing changed


async def test_operator_cancel_needs_force_for_running(services: Services, engine: Engine) -> None:
    tenant, ids = await make_fleet(services, 2)
    job = await group_job(services, tenant)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    with pytest.raises(InvalidStateTransition):
        await services.executions.cancel(job.id, ids[0])
    with pytest.raises(VersionConflict):
        await services.executions.cancel(job.id, ids[0], force=True, expected_version=1)
    canceled = await services.executions.cancel(job.id, ids[0], force=True, expected_version=2)
    assert canceled.status is S.CANCELED
    queued = await services.executions.cancel(job.id, ids[1])
    assert queued.status is S.CANCELED
    with pytest.raises(InvalidStateTransition):
        await services.executions.cancel(job.id, ids[1])


async def test_delete_execution_only_terminal_without_force(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 1)
    job = await group_job(services, tenant)
    await engine.tick()
    with pytest.raises(InvalidStateTransition):
        await services.executions.delete(job.id, ids[0], 1)
    await services.executions.delete(job.id, ids[0], 1, force=True)
    with pytest.raises(NotFound):
        await services.executions.get(job.id, ids[0])


async def test_pending_order_in_progress_first_then_queue_time(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 1)
    first = await group_job(services, tenant, ref="first")
    await engine.tick()
    clock.advance(10)
    second = await group_job(services, tenant, ref="second")
    await engine.tick()
    pending = await services.executions.pending_for_device(ids[0])
    assert [e.job_ref for e in pending] == ["first", "second"]
    await services.executions.report(second.id, ids[0], Report(S.IN_PROGRESS))
    pending = await services.executions.pending_for_device(ids[0])
    assert [e.job_ref for e in pending] == ["second", "first"]
    assert first.ref == "first"


async def test_pending_for_thing_by_name_in_one_query(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 2)
    assert await services.executions.pending_for_thing(tenant, "dev0000") == []
    assert await services.executions.pending_for_thing(tenant, "nosuch") is None
    await group_job(services, tenant, ref="first")
    await engine.tick()
    clock.advance(10)
    second = await group_job(services, tenant, ref="second")
    await engine.tick()
    await services.executions.report(second.id, ids[0], Report(S.IN_PROGRESS))
    by_name = await services.executions.pending_for_thing(tenant, "dev0000")
    assert by_name == await services.executions.pending_for_device(ids[0])
    assert by_name is not None and [e.job_ref for e in by_name] == ["second", "first"]
    assert await services.executions.pending_for_thing(tenant, "dev0000", "other") is None


async def test_version_report_settles_matching_executions(
    services: Services, engine: Engine
) -> None:
    from otahub.domain.entities import PackageFile

    tenant, ids = await make_fleet(services, 2)
    pkg = await services.packages.create_package(
        tenant,
        name="fw",
        version="2.0",
        module="mcu",
        files=[PackageFile(ordinal=0, name="fw.bin", size=1)],
    )
    job = await group_job(services, tenant, package_id=pkg.id)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS, progress=40))
    assert await services.executions.settle_by_version(ids[0], "default", "2.0") == []
    assert await services.executions.settle_by_version(ids[0], "mcu", "1.9") == []
    [done] = await services.executions.settle_by_version(ids[0], "mcu", "2.0")
    assert (done.status, done.progress) == (S.SUCCEEDED, 100)
    [queued] = await services.executions.settle_by_version(ids[1], "mcu", "2.0")
    assert queued.status is S.SUCCEEDED  # already there: nothing to do but record it
