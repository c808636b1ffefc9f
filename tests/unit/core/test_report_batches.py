"""Device reports that arrive together are written together (one transaction per
batch), and each is still checked on its own, in arrival order: expected versions,
the state machine, unknown jobs and executions, the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from otahub.core.engine import Engine
from otahub.core.outbox import Notification, OutboxPublisher
from otahub.core.services import Report, Services
from otahub.core.services.batching import ReportWriter, SingleFlight
from otahub.domain.errors import InvalidStateTransition, NotFound, VersionConflict
from otahub.domain.states import ExecutionStatus
from otahub.store.db import Database
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus


def count_writes(db: Database) -> list[int]:
    """A one-element list counting the write transactions begun from now on."""
    seen = [0]

    @event.listens_for(db.engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if not options.get("otahub_read_only") and options.get("isolation_level") != "AUTOCOMMIT":
            seen[0] += 1

    return seen


async def delivered(svc: Services) -> list[Notification]:
    sent: list[Notification] = []

    async def sink(batch: Sequence[Notification]) -> None:
        sent.extend(batch)

    await OutboxPublisher(svc.ctx.db, svc.ctx.clock, sink).drain()
    return sent


async def test_many_devices_report_at_once_in_one_transaction(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 60)
    job = await group_job(services, tenant)
    await engine.tick()
    await delivered(services)
    writes = count_writes(services.ctx.db)
    started = await asyncio.gather(
        *(
            services.executions.report(
                job.id, d, Report(S.IN_PROGRESS, expected_version=1, status_details={"n": str(d)})
            )
            for d in ids
        )
    )
    assert writes[0] == 1  # sixty reports, one transaction
    assert [(e.device_id, e.status, e.version) for e in started] == [
        (d, S.IN_PROGRESS, 2) for d in ids
    ]
    assert all(e.status_details == {"n": str(e.device_id)} for e in started)
    assert await services.jobs.counts(job.id) == {S.IN_PROGRESS: 60}

    # Half succeed, half fail, by reference; each terminal report writes its outbox row.
    done = await asyncio.gather(
        *(
            services.executions.report_by_ref(
                tenant, "job1", d, Report(S.SUCCEEDED if i % 2 else S.FAILED, expected_version=2)
            )
            for i, d in enumerate(ids)
        )
    )
    assert {e.version for e in done} == {3}
    assert await services.jobs.counts(job.id) == {S.SUCCEEDED: 30, S.FAILED: 30}
    changed = await delivered(services)
    assert sorted(n.device_id for n in changed) == sorted(ids)
    assert {n.kind for n in changed} == {"changed"}


async def test_versions_and_transitions_are_checked_in_arrival_order(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 3)
    job = await group_job(services, tenant)
    await engine.tick()
    a, b, c = ids
    await services.executions.report(job.id, c, Report(S.REJECTED))
    ex = services.executions
    results = await asyncio.gather(
        ex.report(job.id, a, Report(S.IN_PROGRESS, expected_version=1, status_details={"k": "1"})),
        ex.report(job.id, a, Report(S.IN_PROGRESS, expected_version=1)),  # stale by now
        ex.report(job.id, a, Report(S.IN_PROGRESS, expected_version=2, status_details={"k": "3"})),
        ex.report(job.id, b, Report(S.SUCCEEDED)),
        ex.report(job.id, b, Report(S.IN_PROGRESS)),  # b has just succeeded
        ex.report(job.id, c, Report(S.IN_PROGRESS)),  # c was rejected before
        ex.report(job.id, 10**9, Report(S.IN_PROGRESS)),  # no such execution
        ex.report_by_ref(tenant, "nope", a, Report(S.IN_PROGRESS)),  # no such job
        ex.report(job.id, a, Report(S.IN_PROGRESS, step_timeout_minutes=0)),  # invalid
        return_exceptions=True,
    )
    first, stale, third, b_done, b_again, c_again, missing, no_job, invalid = results
    assert not isinstance(first, BaseException) and first.version == 2
    assert isinstance(stale, VersionConflict) and stale.details["current"]["version"] == 2
    assert not isinstance(third, BaseException) and third.version == 3
    assert third.status_details == {"k": "3"}
    assert not isinstance(b_done, BaseException) and b_done.status is S.SUCCEEDED
    assert isinstance(b_again, InvalidStateTransition)
    assert b_again.details["current"]["status"] == "SUCCEEDED"
    assert isinstance(c_again, InvalidStateTransition)
    assert isinstance(missing, NotFound) and "execution" in missing.message
    assert isinstance(no_job, NotFound) and no_job.message == "job nope not found"
    assert type(invalid).__name__ == "InvalidRequest"

    stored = await ex.get(job.id, a)
    assert (stored.status, stored.version, stored.status_details) == (
        S.IN_PROGRESS,
        3,
        {"k": "3"},
    )
    assert stored.started_at is not None
    assert (await ex.get(job.id, b)).version == 2
    assert (await ex.get(job.id, c)).status is S.REJECTED


async def test_racing_writers_with_one_expected_version_one_wins(
    services: Services, engine: Engine
) -> None:
    """Forty copies of the same update with expectedVersion 1: one is accepted."""
    tenant, ids = await make_fleet(services, 1)
    job = await group_job(services, tenant)
    await engine.tick()
    results = await asyncio.gather(
        *(
            services.executions.report(
                job.id, ids[0], Report(S.IN_PROGRESS, expected_version=1, progress=i)
            )
            for i in range(40)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1 and won[0].version == 2
    assert all(isinstance(r, VersionConflict) for r in results if r is not won[0])
    assert (await services.executions.get(job.id, ids[0])).progress == won[0].progress


class _Item:
    def __init__(self, n: int) -> None:
        self.n = n
        self.result: Any = None
        self.error: BaseException | None = None


class _Orig(Exception):
    sqlstate = "40P01"


async def test_writer_retries_a_lost_deadlock_and_fails_every_item_on_error() -> None:
    calls: list[list[int]] = []

    async def write(batch: list[_Item]) -> None:
        calls.append([i.n for i in batch])
        if len(calls) == 1:
            raise DBAPIError("UPDATE", {}, _Orig("deadlock detected"))
        for i in batch:
            if i.n == 2:
                i.error = ValueError("two")
            else:
                i.result = i.n * 10

    writer: ReportWriter[_Item] = ReportWriter(write)
    results = await asyncio.gather(
        *(writer.submit(_Item(n)) for n in range(4)), return_exceptions=True
    )
    assert calls == [[0, 1, 2, 3], [0, 1, 2, 3]]  # one batch, run again once
    assert results[:2] == [0, 10] and results[3] == 30
    assert isinstance(results[2], ValueError)

    async def broken(batch: list[_Item]) -> None:
        raise RuntimeError("database gone")

    writer = ReportWriter(broken)
    failed = await asyncio.gather(
        *(writer.submit(_Item(n)) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in failed)
    # The writer is not stuck: the next report is written.
    writer.write = write
    assert await writer.submit(_Item(5)) == 50


async def test_a_lone_report_is_written_at_once(services: Services, engine: Engine) -> None:
    tenant, ids = await make_fleet(services, 1)
    job = await group_job(services, tenant)
    await engine.tick()
    writes = count_writes(services.ctx.db)
    ex = await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    assert ex.version == 2 and writes[0] == 1


async def test_lookups_that_arrive_together_share_one_query(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 30)
    job = await group_job(services, tenant)
    await engine.tick()
    statements = [0]

    @event.listens_for(services.ctx.db.engine.sync_engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements[0] += 1

    # Prepared reads run on the database's direct connection where it has one.
    direct = await services.ctx.db.direct_reads()
    if direct is not None:
        fetch = direct.fetch

        async def counted(sql: str, args: Any) -> Any:
            statements[0] += 1
            return await fetch(sql, args)

        direct.fetch = counted  # type: ignore[method-assign]

    # (Devices by name are a prepared read of their own: test_prepared_reads.py.)
    pending = await asyncio.gather(
        *(services.executions.pending_for_device(d) for d in [*ids, ids[0]])
    )
    assert statements[0] == 1
    assert all(p[0].job_id == job.id and p[0].status is S.QUEUED for p in pending)

    # A lookup asked after a write sees it.
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    [head] = await services.executions.pending_for_device(ids[0], limit=1)
    assert head.status is S.IN_PROGRESS

    statements[0] = 0
    jobs = await asyncio.gather(*(services.jobs.get_job_by_id(job.id) for _ in range(20)))
    assert statements[0] == 1 and {j.ref for j in jobs} == {"job1"}


async def test_single_flight_shares_one_call_and_its_error() -> None:
    calls: list[int] = []
    gate = asyncio.Event()

    async def load(key: int) -> int:
        calls.append(key)
        await gate.wait()
        if key < 0:
            raise KeyError(key)
        return key * 2

    flight: SingleFlight[int, int] = SingleFlight(load)
    gate.set()
    # Every caller asks before any load has run: the tasks start in order.
    waiting = [asyncio.ensure_future(flight.get(k)) for k in (1, 1, 1, 2, -1, -1)]
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert sorted(calls) == [-1, 1, 2]
    assert results[:4] == [2, 2, 2, 4]
    assert all(isinstance(r, KeyError) for r in results[4:])
    assert await flight.get(1) == 2 and calls.count(1) == 2  # done calls are not kept


async def test_a_batch_finds_its_executions_by_the_key_on_sqlite(
    services: Services, engine: Engine
) -> None:
    """SQLite scans a whole table for a bare `(a, b) IN (VALUES …)`: at 10,000
    devices that scan was most of a report's cost. The batch's SELECT must search the
    executions' key, by job id and by job reference alike."""
    db = services.ctx.db
    if not db.is_sqlite:
        return  # PostgreSQL plans by table size; its key is used at fleet sizes
    tenant, ids = await make_fleet(services, 40)
    job = await group_job(services, tenant)
    await engine.tick()
    seen: list[tuple[str, Any]] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _keep(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "executions" in statement:
            seen.append((statement, params))

    await asyncio.gather(
        *(services.executions.report(job.id, d, Report(S.IN_PROGRESS)) for d in ids[:20]),
        *(
            services.executions.report_by_ref(tenant, "job1", d, Report(S.IN_PROGRESS))
            for d in ids[20:]
        ),
    )
    event.remove(db.engine.sync_engine, "before_cursor_execute", _keep)
    assert seen
    async with db.read() as conn:
        for statement, params in seen:
            plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)).all()
            details = [row[-1] for row in plan]
            assert not [d for d in details if d.startswith("SCAN executions")], details
    assert await services.jobs.counts(job.id) == {S.IN_PROGRESS: 40}
