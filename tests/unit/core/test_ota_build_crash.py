"""CreateOTAUpdate killed at random instants, then resumed by the engine.

Each trial's process is SIGKILLed before a random statement of the create and build
(tests/unit/core/ota_build_child.py). Half the trials meet a job that already holds
the name `AFR_OTA-<id>`, so their build fails after making a stream and a package and
must remove them. After the engine's tick every update that was stored ends
CREATE_COMPLETE or CREATE_FAILED, and no stream, package or job is left that no
complete update owns.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from otahub.core.engine import Engine
from otahub.core.services import JobSpec
from otahub.core.services.ota_updates import COMPLETE, FAILED, OtaUpdateService
from otahub.domain.clock import FakeClock
from otahub.domain.errors import NotFound
from otahub.store.db import Database
from otahub.store.tables import jobs, ota_updates, packages, streams
from tests.unit.core.ota_build_child import ACCOUNT, BUCKET, KEY, THING, new_update, ota_service

pytestmark = pytest.mark.slow

TRIALS = 20


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def statements_of_a_create(db: Database, service: OtaUpdateService, tenant: int) -> int:
    seen = 0

    def count(*_: Any) -> None:
        nonlocal seen
        seen += 1

    sync = db.engine.sync_engine
    event.listen(sync, "before_cursor_execute", count)
    event.listen(sync, "commit", count)
    try:
        await service.create(tenant, new_update("probe"), ACCOUNT)
    finally:
        event.remove(sync, "before_cursor_execute", count)
        event.remove(sync, "commit", count)
    return seen


async def test_a_killed_create_is_resumed_to_an_end_and_leaves_nothing_behind(
    db: Database, db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    service = ota_service(db, clock, blobs)
    tenant = (await service.services.accounts.tenant(ACCOUNT)).id
    device = await service.services.registry.create_device(tenant, THING)
    await service.objects.create_bucket(tenant, BUCKET)
    await service.objects.put(tenant, BUCKET, KEY, one(b"firmware"))
    most = await statements_of_a_create(db, service, tenant)

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    trials = [f"t{i}:{rng.randint(1, most + 2)}" for i in range(TRIALS)]
    doomed = {f"t{i}" for i in range(1, TRIALS, 2)}
    for ref in doomed:  # someone else's job holds the name the build needs
        await service.services.jobs.create_job(
            tenant, JobSpec(ref=f"AFR_OTA-{ref}", kind="custom", device_ids=[device.id])
        )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.unit.core.ota_build_child",
        db_url,
        str(blobs),
        clock.now().isoformat(),
        *trials,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert await asyncio.wait_for(child.wait(), 120) == 0

    async with db.read() as conn:
        cut_short = (
            await conn.execute(
                select(ota_updates.c.id).where(ota_updates.c.status.not_in([COMPLETE, FAILED]))
            )
        ).all()
    assert cut_short, f"seed {seed}: no kill left a build to resume"
    clock.advance(minutes=2)  # the killed builders' claims lapse
    engine = Engine(db, clock)
    engine.resumers.append(service.resume)
    await engine.tick()

    owned_streams, owned_packages, owned_jobs = set(), set(), set()
    for trial in [*trials, "probe:0"]:
        ref = trial.partition(":")[0]
        try:
            update = await service.get(tenant, ref)
        except NotFound:
            continue  # killed before the update was stored
        context = f"seed {seed}, trial {trial}: {update}"
        if ref in doomed:
            assert update.status == FAILED, context
            assert update.error is not None, context
            assert update.error["code"] == "ResourceAlreadyExistsException", context
            continue
        assert update.status == COMPLETE, context
        assert update.job_id is not None and update.stream_id is not None, context
        job = await service.services.jobs.get_job_by_id(update.job_id)
        owned_streams.add(update.stream_id)
        owned_jobs.add(job.id)
        owned_packages.add(job.package_id)
    async with db.read() as conn:
        assert (
            await conn.execute(
                select(ota_updates.c.id).where(ota_updates.c.status.not_in([COMPLETE, FAILED]))
            )
        ).all() == [], seed
        made_streams = set((await conn.execute(select(streams.c.id))).scalars())
        made_packages = set((await conn.execute(select(packages.c.id))).scalars())
        made_jobs = set(
            (await conn.execute(select(jobs.c.id).where(jobs.c.kind == "ota"))).scalars()
        )
    assert made_streams == owned_streams, seed
    assert made_packages == owned_packages, seed
    assert made_jobs == owned_jobs, seed
