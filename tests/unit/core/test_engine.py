"""Every rollout policy, driven by a fake clock on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from otahub.core.engine import Engine, EngineSettings
from otahub.core.services import JobSpec, Report, Services
from otahub.domain.clock import FakeClock
from otahub.domain.entities import PackageFile
from otahub.domain.errors import InvalidStateTransition
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
from otahub.domain.selectors import AnyOf
from otahub.domain.states import (
    ExecutionStatus,
    FailureType,
    JobStatus,
    ReleaseMode,
    TargetSelection,
    VerifyState,
)
from otahub.store.db import Database
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus


async def released(svc: Services, job_id: int) -> int:
    counts = await svc.jobs.counts(job_id)
    return sum(counts.values())


async def test_max_per_minute_caps_each_minute(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, _ = await make_fleet(services, 25)
    job = await group_job(services, tenant, policies=JobPolicies(RolloutPolicy(max_per_minute=10)))
    await engine.tick()
    assert await released(services, job.id) == 10
    clock.advance(59)
    await engine.tick()
    assert await released(services, job.id) == 10  # same minute: nothing more
    clock.advance(1)
    await engine.tick()
    assert await released(services, job.id) == 20
    clock.advance(60)
    await engine.tick()
    assert await released(services, job.id) == 25
    assert (await services.jobs.get_job_by_id(job.id)).initial_done


async def test_exponential_ramp_by_notified(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, _ = await make_fleet(services, 40)
    ramp = ExponentialRate(base_per_minute=2, increment_factor=2, every_notified=4)
    job = await group_job(services, tenant, policies=JobPolicies(RolloutPolicy(exponential=ramp)))
    seen = []
    for _ in range(5):
        await engine.tick()
        seen.append(await released(services, job.id))
        clock.advance(60)
    # Each minute's rate comes from those notified before it: 0 -> 2, 2 -> 2, 4 -> 4,
    # 8 -> 8, 16 -> 32 (only 24 are left).
    assert seen == [2, 4, 8, 16, 40]


async def test_exponential_ramp_by_succeeded(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, _ = await make_fleet(services, 20)
    ramp = ExponentialRate(base_per_minute=2, increment_factor=3, every_succeeded=2)
    job = await group_job(services, tenant, policies=JobPolicies(RolloutPolicy(exponential=ramp)))
    await engine.tick()
    clock.advance(60)
    await engine.tick()
    assert await released(services, job.id) == 4  # nobody succeeded: base rate
    for ex in await services.executions.list_for_job(job.id, limit=2):
        await services.executions.report(job.id, ex.device_id, Report(S.SUCCEEDED))
    clock.advance(60)
    await engine.tick()
    assert await released(services, job.id) == 10  # 2 succeeded: 2 * 3


async def test_gray_percentage_limits_targets_and_job_completes(
    services: Services, engine: Engine
) -> None:
    tenant, _ = await make_fleet(services, 10)
    job = await group_job(services, tenant, policies=JobPolicies(RolloutPolicy(gray_percent=33.3)))
    await engine.tick()
    executions = await services.executions.list_for_job(job.id)
    assert len(executions) == 3
    for ex in executions:
        await services.executions.report(job.id, ex.device_id, Report(S.SUCCEEDED))
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.COMPLETED


async def test_abort_cancels_job_and_unstarted_executions(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 6)
    crit = AbortCriterion(FailureType.FAILED, threshold_percent=50, min_executed=2)
    job = await group_job(services, tenant, policies=JobPolicies(abort=(crit,)))
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.FAILED))
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.IN_PROGRESS  # 1 < min
    await services.executions.report(job.id, ids[1], Report(S.IN_PROGRESS))
    await services.executions.report(job.id, ids[1], Report(S.SUCCEEDED))
    await services.executions.report(job.id, ids[2], Report(S.IN_PROGRESS))
    await engine.tick()  # 1 of 2 executed failed = 50 %
    job_now = await services.jobs.get_job_by_id(job.id)
    assert job_now.status is JobStatus.CANCELED
    assert job_now.reason_code == "ABORTED_FAILED"
    counts = await services.jobs.counts(job.id)
    assert counts == {S.FAILED: 1, S.SUCCEEDED: 1, S.IN_PROGRESS: 1, S.CANCELED: 3}


async def test_abort_counts_timeouts_for_all(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 3)
    pol = JobPolicies(
        abort=(AbortCriterion(FailureType.ALL, threshold_percent=60, min_executed=2),),
        timeout=TimeoutPolicy(in_progress_minutes=5),
    )
    job = await group_job(services, tenant, policies=pol)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.REJECTED))
    await services.executions.report(job.id, ids[1], Report(S.IN_PROGRESS))
    clock.advance(minutes=6)
    await engine.tick()  # ids[1] timed out: 2 of 2 executed failed
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.CANCELED


async def test_in_progress_and_step_timeouts(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 2)
    job = await group_job(
        services, tenant, policies=JobPolicies(timeout=TimeoutPolicy(in_progress_minutes=30))
    )
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    step = await services.executions.report(
        job.id, ids[1], Report(S.IN_PROGRESS, step_timeout_minutes=2)
    )
    assert step.deadline_at == clock.now() + timedelta(minutes=2)
    clock.advance(minutes=2)
    await engine.tick()
    assert (await services.executions.get(job.id, ids[1])).status is S.TIMED_OUT
    assert (await services.executions.get(job.id, ids[0])).status is S.IN_PROGRESS
    clock.advance(minutes=27)
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).status is S.IN_PROGRESS
    clock.advance(minutes=1)
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).status is S.TIMED_OUT
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.COMPLETED


async def test_retries_until_the_count_is_spent(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 1)
    pol = JobPolicies(retry=RetryPolicy((RetryCriterion(FailureType.FAILED, 2),)))
    job = await group_job(services, tenant, policies=pol)
    await engine.tick()
    for attempt in (1, 2, 3):
        ex = await services.executions.get(job.id, ids[0])
        assert (ex.execution_number, ex.status, ex.retry_attempt) == (
            attempt,
            S.QUEUED,
            attempt - 1,
        )
        await services.executions.report(job.id, ids[0], Report(S.FAILED))
        await engine.tick()
    ex = await services.executions.get(job.id, ids[0])
    assert (ex.execution_number, ex.status) == (3, S.FAILED)
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.COMPLETED
    assert await services.jobs.counts(job.id) == {S.FAILED: 1}  # latest execution only


async def test_retry_waits_its_interval_and_timeouts_retry_too(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 1)
    pol = JobPolicies(
        timeout=TimeoutPolicy(in_progress_minutes=5),
        retry=RetryPolicy((RetryCriterion(FailureType.TIMED_OUT, 1),), interval_minutes=10),
    )
    job = await group_job(services, tenant, policies=pol)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    clock.advance(minutes=5)
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).status is S.TIMED_OUT
    clock.advance(minutes=9)
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).execution_number == 1
    clock.advance(minutes=1)
    await engine.tick()
    retried = await services.executions.get(job.id, ids[0])
    assert (retried.execution_number, retried.status) == (2, S.QUEUED)


async def test_failed_is_not_retried_under_a_timeout_only_policy(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 1)
    pol = JobPolicies(
        timeout=TimeoutPolicy(in_progress_minutes=5),
        retry=RetryPolicy((RetryCriterion(FailureType.TIMED_OUT, 3),)),
    )
    job = await group_job(services, tenant, policies=pol)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.FAILED))
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).execution_number == 1


async def test_scheduled_start_and_stop_rollout_end(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, _ = await make_fleet(services, 30)
    start = clock.now() + timedelta(minutes=10)
    pol = JobPolicies(
        rollout=RolloutPolicy(max_per_minute=10),
        schedule=SchedulePolicy(start_at=start, end_at=start + timedelta(minutes=2)),
    )
    job = await group_job(services, tenant, policies=pol)
    assert job.status is JobStatus.SCHEDULED
    await engine.tick()
    assert await released(services, job.id) == 0
    clock.set(start)
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.IN_PROGRESS
    clock.advance(minutes=1)
    await engine.tick()
    assert await released(services, job.id) == 20
    clock.advance(minutes=1)  # end time: the rollout stops, the job goes on
    await engine.tick()
    assert await released(services, job.id) == 20
    job_now = await services.jobs.get_job_by_id(job.id)
    assert job_now.rollout_stopped and job_now.status is JobStatus.IN_PROGRESS


@pytest.mark.parametrize(
    "behavior,running_after",
    [
        (EndBehavior.CANCEL, S.IN_PROGRESS),
        (EndBehavior.FORCE_CANCEL, S.CANCELED),
    ],
)
async def test_schedule_end_cancels(
    services: Services, engine: Engine, clock: FakeClock, behavior: EndBehavior, running_after: S
) -> None:
    tenant, ids = await make_fleet(services, 2)
    pol = JobPolicies(
        schedule=SchedulePolicy(end_at=clock.now() + timedelta(minutes=5), end_behavior=behavior)
    )
    job = await group_job(services, tenant, policies=pol)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    clock.advance(minutes=5)
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.CANCELED
    assert (await services.executions.get(job.id, ids[0])).status is running_after
    assert (await services.executions.get(job.id, ids[1])).status is S.CANCELED


async def test_releases_happen_only_inside_maintenance_windows(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, _ = await make_fleet(services, 5)
    clock.set(clock.now().replace(hour=1, minute=0))
    window = MaintenanceWindow(cron="0 2 * * *", duration_minutes=30)
    job = await group_job(
        services, tenant, policies=JobPolicies(schedule=SchedulePolicy(windows=(window,)))
    )
    await engine.tick()
    assert await released(services, job.id) == 0
    clock.advance(minutes=60)  # 02:00
    await engine.tick()
    assert await released(services, job.id) == 5


async def test_continuous_group_job_follows_membership(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 2)
    job = await group_job(services, tenant, target_selection=TargetSelection.CONTINUOUS)
    await engine.tick()
    assert await released(services, job.id) == 2
    newcomer = await services.registry.create_device(tenant, "late")
    clock.advance(5)
    await services.registry.add_to_group(tenant, "fleet", [newcomer.id])
    await engine.tick()
    assert (await services.executions.get(job.id, newcomer.id)).status is S.QUEUED
    clock.advance(5)
    await services.registry.remove_from_group(tenant, "fleet", [ids[0]])
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).status is S.REMOVED
    for d in (ids[1], newcomer.id):
        await services.executions.report(job.id, d, Report(S.SUCCEEDED))
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.IN_PROGRESS


async def test_dynamic_job_adds_devices_that_come_to_match(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 3)
    await services.registry.report_version(ids[0], "default", "1.0")
    await services.registry.report_version(ids[1], "default", "0.9")
    spec = JobSpec(
        ref="dyn",
        kind="test",
        selector=AnyOf("version:default", ("1.0",)),
        target_selection=TargetSelection.CONTINUOUS,
        release_mode=ReleaseMode.NOTIFY,
    )
    job = await services.jobs.create_job(tenant, spec)
    await engine.tick()
    assert (await services.executions.get(job.id, ids[0])).status is S.QUEUED  # offline
    clock.advance(10)
    await services.registry.report_version(ids[2], "default", "1.0")
    await engine.tick()
    assert (await services.executions.get(job.id, ids[2])).status is S.QUEUED
    assert await released(services, job.id) == 2


async def test_only_later_matches_skips_current_matches(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 2)
    await services.registry.report_version(ids[0], "default", "1.0")
    spec = JobSpec(
        ref="dyn2",
        kind="test",
        selector=AnyOf("version:default", ("1.0",)),
        target_selection=TargetSelection.CONTINUOUS,
        release_mode=ReleaseMode.NOTIFY,
        only_later_matches=True,
    )
    job = await services.jobs.create_job(tenant, spec)
    clock.advance(120)
    await engine.tick()
    assert await released(services, job.id) == 0
    await services.registry.report_version(ids[1], "default", "1.0")
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.QUEUED: 1}


async def test_notify_mode_pushes_connected_devices_and_confirm_gates(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 3)
    job = await group_job(services, tenant, release_mode=ReleaseMode.NOTIFY, need_confirm=True)
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.CONFIRM: 3}
    assert await services.jobs.confirm(job.id, [ids[0], ids[1]]) == 2
    await services.registry.set_connected(ids[0], True)
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.CONFIRM: 1, S.NOTIFIED: 1, S.QUEUED: 1}
    await services.registry.set_connected(ids[1], True)
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.CONFIRM: 1, S.NOTIFIED: 2}


async def test_notify_mode_rate_meters_pushes(
    services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 5)
    for d in ids:
        await services.registry.set_connected(d, True)
    job = await group_job(
        services,
        tenant,
        release_mode=ReleaseMode.NOTIFY,
        policies=JobPolicies(RolloutPolicy(max_per_minute=2)),
    )
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.NOTIFIED: 2, S.QUEUED: 3}
    clock.advance(60)
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.NOTIFIED: 4, S.QUEUED: 1}


async def test_pull_only_job_releases_on_request(services: Services, engine: Engine) -> None:
    tenant, ids = await make_fleet(services, 1)
    await services.registry.set_connected(ids[0], True)
    job = await group_job(services, tenant, release_mode=ReleaseMode.NOTIFY, need_push=False)
    await engine.tick()
    assert await services.jobs.counts(job.id) == {S.QUEUED: 1}
    pending = await services.executions.pending_for_device(ids[0], include_unreleased=True)
    notified = await services.executions.mark_notified(pending[0].key)
    assert notified.status is S.NOTIFIED and notified.version == 2


@pytest.mark.parametrize(
    "outcome,state", [(S.SUCCEEDED, VerifyState.VERIFIED), (S.FAILED, VerifyState.FAILED)]
)
async def test_verify_job_decides_package(
    services: Services, engine: Engine, outcome: S, state: VerifyState
) -> None:
    tenant, ids = await make_fleet(services, 2)
    pkg = await services.packages.create_package(
        tenant,
        name="fw",
        version="2.0",
        need_verify=True,
        files=[PackageFile(ordinal=0, name="fw.bin", size=10, sha256="0" * 64)],
    )
    blocked = JobSpec(ref="batch", kind="test", device_ids=ids, package_id=pkg.id)
    with pytest.raises(InvalidStateTransition):
        await services.jobs.create_job(tenant, blocked)
    job = await services.jobs.create_job(
        tenant,
        JobSpec(ref="verify", kind="test", device_ids=ids, package_id=pkg.id, is_verify=True),
    )
    assert (
        await services.packages.get_package(tenant, pkg.ref)
    ).verify_state is VerifyState.VERIFYING
    with pytest.raises(InvalidStateTransition):  # one verification at a time
        await services.jobs.create_job(
            tenant,
            JobSpec(ref="verify2", kind="test", device_ids=ids, package_id=pkg.id, is_verify=True),
        )
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.SUCCEEDED))
    await services.executions.report(job.id, ids[1], Report(outcome))
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.COMPLETED
    assert (await services.packages.get_package(tenant, pkg.ref)).verify_state is state
    if state is VerifyState.VERIFIED:
        await services.jobs.create_job(tenant, blocked)


async def test_cancel_and_delete_job(services: Services, engine: Engine) -> None:
    tenant, ids = await make_fleet(services, 3)
    job = await group_job(services, tenant)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    with pytest.raises(InvalidStateTransition):
        await services.jobs.delete_job(tenant, job.ref)
    canceled = await services.jobs.cancel_job(tenant, job.ref, reason_code="OOPS", comment="c")
    assert canceled.status is JobStatus.CANCELED and not canceled.force_canceled
    assert await services.jobs.counts(job.id) == {S.IN_PROGRESS: 1, S.CANCELED: 2}
    forced = await services.jobs.cancel_job(tenant, job.ref, force=True)
    assert forced.force_canceled
    assert await services.jobs.counts(job.id) == {S.CANCELED: 3}
    await services.jobs.delete_job(tenant, job.ref)
    assert await services.jobs.list_jobs(tenant) == []


async def test_a_release_in_many_chunks_lets_the_loop_turn_between_them(
    services: Services, clock: FakeClock
) -> None:
    """SQLite's calls never suspend (otahub.store.sqlite_inline): were there no
    turn of the loop between chunks, device requests would wait for a whole
    rollout's release instead of one chunk."""
    tenant, _ = await make_fleet(services, 600)
    job = await group_job(services, tenant)
    engine = Engine(services.ctx.db, clock, EngineSettings(chunk=100))
    turns: list[int] = []
    busy = True

    async def other_work() -> None:
        while busy:
            turns.append(await released(services, job.id))
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    await engine.tick()
    busy = False
    await other
    assert await released(services, job.id) == 600
    # the other task saw the release in progress, chunk after chunk
    assert len({n for n in turns if 0 < n < 600}) >= 3, turns


def test_sqlite_releases_in_smaller_chunks(db: Database, clock: FakeClock) -> None:
    assert Engine(db, clock).chunk == (10_000 if db.is_sqlite else 50_000)
    assert Engine(db, clock, EngineSettings(chunk=7)).chunk == 7
