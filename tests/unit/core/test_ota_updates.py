"""CreateOTAUpdate as a core use case: stored at once, built, resumed by the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from otahub.core.engine import Engine
from otahub.core.services import JobSpec
from otahub.core.services.ota_updates import (
    CLAIM,
    COMPLETE,
    FAILED,
    IN_PROGRESS,
    PENDING,
    OtaUpdateService,
)
from otahub.domain.clock import FakeClock
from otahub.store.db import Database
from otahub.store.tables import packages, streams
from tests.unit.core.ota_build_child import ACCOUNT, BUCKET, KEY, THING, new_update, ota_service


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def ota(db: Database, clock: FakeClock, tmp_path: Path) -> tuple[OtaUpdateService, int]:
    service = ota_service(db, clock, tmp_path / "blobs")
    tenant = (await service.services.accounts.tenant(ACCOUNT)).id
    await service.services.registry.create_device(tenant, THING)
    await service.objects.create_bucket(tenant, BUCKET)
    await service.objects.put(tenant, BUCKET, KEY, one(b"firmware"))
    return service, tenant


async def count(db: Database, table: Any) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_create_answers_pending_and_builds_the_update(
    ota: tuple[OtaUpdateService, int],
) -> None:
    service, tenant = ota
    created = await service.create(tenant, new_update("u1"), ACCOUNT)
    assert created.status == PENDING
    built = await service.get(tenant, "u1")
    assert built.status == COMPLETE and built.stream_id is not None
    job = await service.services.jobs.get_job_by_id(built.job_id or 0)
    assert job.ref == "AFR_OTA-u1" and job.kind == "ota"


async def test_a_build_that_stopped_is_resumed_by_the_engine_once_its_claim_lapses(
    ota: tuple[OtaUpdateService, int], db: Database, clock: FakeClock, monkeypatch: Any
) -> None:
    service, tenant = ota
    real_job = service._job

    async def unreachable(*_: Any) -> int:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(service, "_job", unreachable)
    await service.create(tenant, new_update("u1"), ACCOUNT)
    assert (await service.get(tenant, "u1")).status == IN_PROGRESS
    monkeypatch.setattr(service, "_job", real_job)
    engine = Engine(db, clock)
    engine.resumers.append(service.resume)
    await engine.tick()
    assert (await service.get(tenant, "u1")).status == IN_PROGRESS  # its builder may live
    clock.advance(CLAIM.total_seconds())
    await engine.tick()
    assert (await service.get(tenant, "u1")).status == COMPLETE
    # the resumed build found the stream and package the first attempt made
    assert await count(db, streams) == 1 and await count(db, packages) == 1


async def test_a_failed_build_removes_what_it_made_and_records_why(
    ota: tuple[OtaUpdateService, int], db: Database
) -> None:
    service, tenant = ota
    device = await service.services.registry.get_device(tenant, THING)
    await service.services.jobs.create_job(
        tenant, JobSpec(ref="AFR_OTA-u1", kind="custom", device_ids=[device.id])
    )
    await service.create(tenant, new_update("u1"), ACCOUNT)
    failed = await service.get(tenant, "u1")
    assert failed.status == FAILED and failed.job_id is None
    assert failed.error is not None and failed.error["code"] == "ResourceAlreadyExistsException"
    assert await count(db, streams) == 0 and await count(db, packages) == 0
    assert (await service.services.jobs.get_job(tenant, "AFR_OTA-u1")).kind == "custom"


async def test_an_update_deleted_while_it_is_built_leaves_nothing(
    ota: tuple[OtaUpdateService, int], db: Database, monkeypatch: Any
) -> None:
    service, tenant = ota
    real_job = service._job

    async def deleted_meanwhile(*args: Any) -> int:
        job_id = await real_job(*args)
        arn = new_update("u1").update_arn
        await service.delete(tenant, "u1", arn, force_job=False, delete_stream=False)
        return job_id

    monkeypatch.setattr(service, "_job", deleted_meanwhile)
    await service.create(tenant, new_update("u1"), ACCOUNT)
    assert await service.page(tenant, status=None, after_id=0, limit=10) == []
    assert await count(db, streams) == 0 and await count(db, packages) == 0
    assert await service.services.jobs.list_jobs(tenant) == []
