"""The hot reads (device check-in, device by name) run as prepared statements on the
driver's own connections; they must answer exactly what SQLAlchemy and the generic
service path answer, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from otahub.aws.devices import jobs_view as view
from otahub.core.engine import Engine
from otahub.core.services import Report, Services
from otahub.core.services.executions import PENDING_FOR_THING, pending_for_ids
from otahub.core.services.registry import DEVICE_BY_NAME
from otahub.domain.clock import FakeClock
from otahub.domain.policies import JobPolicies, RolloutPolicy
from otahub.domain.states import ExecutionStatus, ReleaseMode
from otahub.store.db import Database
from otahub.store.prepared import IN_SIZES, PostgresReads, SqliteReads
from otahub.store.tables import devices
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus
NAMES = ["dev0000", "dev0001", "dev0002", "dev0003", "dev0004", "nosuch"]


async def generic_pending(svc: Services, tenant: int, name: str, key: str = "") -> Any:
    """What the check-in answered before it had a prepared query: the device by name,
    then its pending executions."""
    device = await svc.registry.find_device(tenant, name, key)
    if device is None:
        return None
    return await svc.executions.pending_for_device(device.id)


async def busy_fleet(services: Services, engine: Engine, clock: FakeClock) -> int:
    """Two tenants with the same device names; executions queued, in progress,
    finished and not yet released; one device with none."""
    tenant, ids = await make_fleet(services, 4)
    other = (await services.accounts.tenant("999988887777")).id
    await services.registry.create_devices_bulk(other, ["dev0000", "dev0001"])
    await services.registry.create_group(other, "fleet")
    await services.registry.add_group_members_from_query(other, "fleet")
    await group_job(services, other, ref="not-yours")
    first = await group_job(services, tenant, ref="first")
    await engine.tick()
    clock.advance(10)
    second = await group_job(services, tenant, ref="second")
    await engine.tick()
    clock.advance(10)
    await services.registry.set_connected(ids[0], True)  # NOTIFY releases to the online
    # Released one a minute: the rest of the fleet has it queued but not released.
    slow = JobPolicies(rollout=RolloutPolicy(max_per_minute=1))
    await group_job(services, tenant, ref="slow", policies=slow, release_mode=ReleaseMode.NOTIFY)
    await engine.tick()
    step = {"step": "download"}
    await services.executions.report(second.id, ids[0], Report(S.IN_PROGRESS, status_details=step))
    await services.executions.report(first.id, ids[1], Report(S.IN_PROGRESS))
    await services.executions.report(first.id, ids[1], Report(S.SUCCEEDED))
    await services.executions.report(first.id, ids[2], Report(S.REJECTED))
    await services.executions.report(second.id, ids[2], Report(S.IN_PROGRESS))
    # No executions; attributes, a type and a secret to read back.
    await services.registry.create_device(
        tenant, "dev0004", attributes={"a": "1"}, type_name="sensor", secret="s"
    )
    return tenant


async def test_checkin_answers_what_the_generic_path_answers(
    db: Database, services: Services, engine: Engine, clock: FakeClock
) -> None:
    assert await services.executions.pending_for_thing(1, "dev0000") is None  # empty fleet
    tenant = await busy_fleet(services, engine, clock)
    assert await db.direct_reads() is not None  # the prepared path, not SQLAlchemy's

    seen: set[S] = set()
    unreleased = 0
    for name in NAMES:
        fast = await services.executions.pending_for_thing(tenant, name)
        assert fast == await generic_pending(services, tenant, name), name
        if fast is None:
            continue
        device = await services.registry.find_device(tenant, name)
        assert device is not None
        everything = await services.executions.pending_for_device(
            device.id, include_unreleased=True
        )
        unreleased += len(everything) - len(fast)
        assert all(e.device_id == device.id for e in fast)
        seen.update(e.status for e in fast)
        # What the device gets, byte for byte.
        assert [view.summary(e) for e in fast] == [
            view.summary(e) for e in await generic_pending(services, tenant, name)
        ]
    assert seen == {S.QUEUED, S.NOTIFIED, S.IN_PROGRESS}
    assert unreleased > 0  # the fleet did hold executions the check-in must not show

    dev0 = await services.executions.pending_for_thing(tenant, "dev0000")
    assert dev0 is not None
    assert [(e.job_ref, e.status) for e in dev0] == [
        ("second", S.IN_PROGRESS),
        ("first", S.QUEUED),
        ("slow", S.NOTIFIED),  # the one device online
    ]
    assert dev0[0].status_details == {"step": "download"}
    assert await services.executions.pending_for_thing(tenant, "dev0004") == []
    assert await services.executions.pending_for_thing(tenant, "nosuch") is None
    assert await services.executions.pending_for_thing(tenant, "dev0000", "nokey") is None
    other = await services.accounts.tenant("999988887777")
    theirs = await services.executions.pending_for_thing(other.id, "dev0000")
    assert theirs is not None and [e.job_ref for e in theirs] == ["not-yours"]


async def test_checkin_sees_a_change_as_soon_as_it_commits(
    db: Database, services: Services, engine: Engine, clock: FakeClock
) -> None:
    tenant, ids = await make_fleet(services, 1)
    assert await services.executions.pending_for_thing(tenant, "dev0000") == []
    job = await group_job(services, tenant)
    await engine.tick()
    pending = await services.executions.pending_for_thing(tenant, "dev0000")
    assert pending is not None and [e.status for e in pending] == [S.QUEUED]
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    await services.executions.report(job.id, ids[0], Report(S.SUCCEEDED))
    assert await services.executions.pending_for_thing(tenant, "dev0000") == []


async def test_prepared_rows_are_sqlalchemy_rows(
    db: Database, services: Services, engine: Engine, clock: FakeClock
) -> None:
    """Same values of the same types (aware datetimes, decoded JSON, booleans)."""
    tenant = await busy_fleet(services, engine, clock)
    reads = await db.direct_reads()
    assert isinstance(reads, PostgresReads if db.is_postgres else SqliteReads)
    for statement in (PENDING_FOR_THING, DEVICE_BY_NAME):
        prepared = db.prepare(statement)
        for name in NAMES:
            params = {"tenant_id": tenant, "product_key": "", "name": name, "limit": 100}
            if statement is DEVICE_BY_NAME:
                del params["limit"]
            async with db.read() as conn:
                expected = [tuple(r) for r in await conn.execute(statement, params)]
            got = await prepared.all(**params)
            assert sorted(map(typed, got)) == sorted(map(typed, expected)), name


def typed(row: tuple[Any, ...]) -> list[tuple[str, str]]:
    return [(type(v).__name__, repr(v)) for v in row]


async def test_a_prepared_read_needs_every_parameter(db: Database) -> None:
    with pytest.raises(TypeError, match="'name'"):
        await db.prepare(DEVICE_BY_NAME).all(tenant_id=1, product_key="")


async def test_prepared_lists_answer_what_sqlalchemy_answers(
    db: Database, services: Services, engine: Engine, clock: FakeClock
) -> None:
    """A list of any length (padded to a prepared size, or in chunks past the largest)
    gives the rows the same select with the list bound at execution gives, once each."""
    await busy_fleet(services, engine, clock)
    async with db.read() as conn:
        ids = sorted((await conn.execute(select(devices.c.id))).scalars())
    missing = list(range(ids[-1] + 1, ids[-1] + 1 + IN_SIZES[-1]))
    prepared = db.prepare_in(pending_for_ids, "device")
    lists = [ids[:1], ids[:2], ids[:-1], [*ids, *missing], [*missing, *ids], [ids[-1], *missing]]
    assert any(len(v) > IN_SIZES[-1] for v in lists)  # one runs in two chunks
    for values in lists:
        async with db.read() as conn:
            expected = [tuple(r) for r in await conn.execute(pending_for_ids(values))]
        got = await prepared.all(values)
        assert sorted(map(typed, got)) == sorted(map(typed, expected)), len(values)
    assert await prepared.all([]) == []
    # The service's answer for many devices is each device's own.
    together = await services.executions.pending_for_devices([*ids, missing[0]])
    assert together[missing[0]] == []
    for d in ids:
        assert together[d] == await services.executions.pending_for_device(d)
