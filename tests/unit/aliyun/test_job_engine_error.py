"""Issue 18: a job the engine fails on says why in QueryOTAJob (`JobDesc`, the only
text its answer has)."""

from __future__ import annotations

from sqlalchemy import update

from otahub.core.engine import Engine
from otahub.core.services import Services
from otahub.store.tables import jobs
from tests.unit.aliyun.test_rollout_inprocess import (  # noqa: F401 (the fixture)
    Console,
    _setup,
    console,
)


async def test_query_ota_job_shows_the_engine_error(
    console: Console,  # noqa: F811
    services: Services,
    engine: Engine,
) -> None:
    pk, _, fid = await _setup(console, 2, need_to_verify=False)
    batch = {"FirmwareId": fid, "ProductKey": pk, "TargetSelection": "ALL", "NeedPush": "false"}
    stuck = await console.ok("CreateOTAStaticUpgradeJob", **batch, MaximumPerMinute=10)
    stuck_id = stuck["Data"]["JobId"]
    async with services.ctx.db.transaction() as conn:
        # An old row's rate the engine cannot compute with.
        await conn.execute(
            update(jobs)
            .where(jobs.c.ref == stuck_id)
            .values(policies={"rollout": {"max_per_minute": "ten"}})
        )
    await engine.tick()

    info = (await console.ok("QueryOTAJob", JobId=stuck_id))["Data"]
    assert info["JobStatus"] == "IN_PROGRESS"
    assert info["JobDesc"].startswith("[engine error: TypeError: ")
