"""Issue 18: one job cannot stop the engine. A job whose pass raises is marked with
its error and backs off; every other job goes on, in the same tick and later ones.
Rows stored before the policy rules (simulated with raw SQL) cannot overflow the
ramp's arithmetic."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from sqlalchemy import update

from otahub.core.engine import FAILURE_BACKOFF_FIRST, Engine, failure_text
from otahub.core.services import Report, Services
from otahub.domain.clock import FakeClock
from otahub.domain.policies import (
    MAX_RATE_PER_MINUTE,
    ExponentialRate,
    JobPolicies,
    RolloutPolicy,
)
from otahub.domain.states import ExecutionStatus, JobStatus
from otahub.store.db import Database
from otahub.store.tables import jobs
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus


async def store_policies(db: Database, job_id: int, policies: dict[str, Any]) -> None:
    """Write a job's policies as an old row could hold them, past the core's checks."""
    async with db.transaction() as conn:
        await conn.execute(update(jobs).where(jobs.c.id == job_id).values(policies=policies))


def stalling_policies(db: Database) -> dict[str, Any]:
    """The issue's numberOfNotifiedThings: NaN. PostgreSQL's JSONB cannot hold a NaN,
    so there the old row holds a string instead, which breaks the same arithmetic."""
    bad: Any = math.nan if db.is_sqlite else "NaN"
    ramp = {"base_per_minute": 1, "increment_factor": 2.0, "every_notified": bad}
    return {"rollout": {"exponential": ramp}}


async def released(svc: Services, job_id: int) -> int:
    return sum((await svc.jobs.counts(job_id)).values())


async def finish_all(svc: Services, job_id: int) -> None:
    for ex in await svc.executions.list_for_job(job_id):
        await svc.executions.report(job_id, ex.device_id, Report(S.SUCCEEDED))


def engine_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "otahub.engine" and r.levelno >= logging.ERROR]


async def test_a_failing_job_is_marked_and_later_jobs_still_roll_out(
    services: Services,
    engine: Engine,
    clock: FakeClock,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant, _ = await make_fleet(services, 5)
    stuck = await group_job(services, tenant, ref="stuck")
    await store_policies(db, stuck.id, stalling_policies(db))
    healthy = await group_job(services, tenant, ref="healthy")

    await engine.tick()

    # The stuck job is marked, with the time; the one created after it rolls out.
    marked = await services.jobs.get_job(tenant, "stuck")
    assert marked.status is JobStatus.IN_PROGRESS
    assert marked.engine_error is not None
    assert marked.engine_error.startswith(("ValueError", "TypeError"))
    assert marked.engine_error_at == clock.now()
    assert await released(services, stuck.id) == 0
    assert await released(services, healthy.id) == 5
    await finish_all(services, healthy.id)
    await engine.tick()
    assert (await services.jobs.get_job(tenant, "healthy")).status is JobStatus.COMPLETED
    assert (await services.jobs.get_job(tenant, "healthy")).engine_error is None

    # Logged once, however many ticks follow; retried only after its backoff.
    clock.advance(FAILURE_BACKOFF_FIRST.total_seconds() * 10)
    for _ in range(5):
        await engine.tick()
        clock.advance(FAILURE_BACKOFF_FIRST.total_seconds())
    assert len(engine_errors(caplog)) == 1
    assert (await services.jobs.get_job(tenant, "stuck")).engine_error_at == marked.engine_error_at

    # A third job, created while the first is still failing, rolls out and completes.
    later = await group_job(services, tenant, ref="later")
    await engine.tick()
    assert await released(services, later.id) == 5
    await finish_all(services, later.id)
    await engine.tick()
    assert (await services.jobs.get_job(tenant, "later")).status is JobStatus.COMPLETED

    # It can still be canceled, and the cancel clears its error.
    canceled = await services.jobs.cancel_job(tenant, "stuck", reason_code="BROKEN")
    assert canceled.status is JobStatus.CANCELED
    assert canceled.engine_error is None


async def test_a_failing_job_backs_off_and_an_update_lets_it_go_on(
    services: Services, engine: Engine, clock: FakeClock, db: Database
) -> None:
    tenant, _ = await make_fleet(services, 4)
    stuck = await group_job(services, tenant, ref="stuck")
    await store_policies(db, stuck.id, stalling_policies(db))

    await engine.tick()
    await engine.tick()  # within the backoff: not tried again
    async with db.read() as conn:
        failures = (
            await conn.execute(jobs.select().with_only_columns(jobs.c.engine_failures))
        ).scalar_one()
    assert failures == 1

    fixed = JobPolicies(RolloutPolicy(max_per_minute=10))
    updated = await services.jobs.update_job(tenant, "stuck", policies=fixed)
    assert updated.engine_error is None
    await engine.tick()
    assert await released(services, stuck.id) == 4
    assert (await services.jobs.get_job(tenant, "stuck")).engine_error is None


async def test_a_passing_failure_heals_by_itself(
    services: Services,
    engine: Engine,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant, _ = await make_fleet(services, 3)
    job = await group_job(services, tenant)
    real = Engine._release_chunk

    async def lost_connection(self: Engine, job_id: int) -> bool:
        raise ConnectionError("server closed the connection\nSELECT secret FROM x")

    monkeypatch.setattr(Engine, "_release_chunk", lost_connection)
    await engine.tick()
    error = (await services.jobs.get_job(tenant, job.ref)).engine_error
    # One line, no statement text.
    assert error == "ConnectionError: server closed the connection"

    monkeypatch.setattr(Engine, "_release_chunk", real)
    clock.advance(FAILURE_BACKOFF_FIRST.total_seconds())
    await engine.tick()
    assert await released(services, job.id) == 3
    assert (await services.jobs.get_job(tenant, job.ref)).engine_error is None


def test_failure_text_is_one_printable_bounded_line() -> None:
    text = failure_text(ValueError("bad\x00\u2028value\x1b[31m" + "x" * 5000))
    assert text.isprintable()
    assert text.startswith("ValueError: bad")
    assert len(text) <= 500
    assert failure_text(RuntimeError()) == "RuntimeError"


async def test_an_overflowing_ramp_in_an_old_row_does_not_break_the_tick(
    services: Services, engine: Engine, clock: FakeClock, db: Database
) -> None:
    tenant, _ = await make_fleet(services, 12)
    job = await group_job(services, tenant)
    # A factor far past 5 and a cap past int64: 1e300 ** 3 overflows a float.
    ramp = {"base_per_minute": 1, "increment_factor": 1e300, "every_notified": 1}
    await store_policies(db, job.id, {"rollout": {"max_per_minute": 2, "exponential": ramp}})
    seen = []
    for _ in range(4):
        await engine.tick()
        seen.append(await released(services, job.id))
        clock.advance(60)
    assert seen == [1, 3, 5, 7]
    assert (await services.jobs.get_job(tenant, job.ref)).engine_error is None

    huge = {"max_per_minute": 2**80, "exponential": {**ramp, "increment_factor": 1e308}}
    await store_policies(db, job.id, {"rollout": huge})
    await engine.tick()
    assert await released(services, job.id) == 12
    assert (await services.jobs.get_job(tenant, job.ref)).engine_error is None


@pytest.mark.parametrize("factor", [1e300, math.inf, 5.0])
@pytest.mark.parametrize("cap", [None, 2, 2**80])
def test_the_ramp_rate_stays_within_the_cap(factor: float, cap: int | None) -> None:
    ramp = ExponentialRate(base_per_minute=1, increment_factor=factor, every_notified=1)
    policy = RolloutPolicy(max_per_minute=cap, exponential=ramp)
    for notified in (0, 1, 3, 100, 10**30):
        rate = policy.rate_per_minute(notified, 0)
        assert rate is not None
        assert 1 <= rate <= MAX_RATE_PER_MINUTE
    assert json.dumps(policy.rate_per_minute(10**30, 0))  # a plain int, fit for SQL
