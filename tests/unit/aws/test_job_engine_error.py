"""Issue 18: a job the engine fails on says why in DescribeJob (`reasonCode`
ENGINE_ERROR, the error in `comment`), and can still be canceled."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from otahub.core.engine import Engine
from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from otahub.store.tables import jobs
from tests.unit.aws.harness import ACCOUNT, REGION, aws_console


async def test_describe_job_shows_the_engine_error_and_cancel_still_works(
    services: Services, engine: Engine, clock: FakeClock, tmp_path: Path
) -> None:
    async with aws_console(services, clock, tmp_path) as aws:
        await aws.ok("iot", "CreateThing", thingName="t1")
        arn = f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/t1"
        await aws.ok("iot", "CreateJob", jobId="stuck", targets=[arn], document="{}")
        async with services.ctx.db.transaction() as conn:
            # An old row's policy the engine cannot compute with.
            ramp = {"base_per_minute": 1, "increment_factor": 2.0, "every_notified": "x"}
            await conn.execute(
                update(jobs)
                .where(jobs.c.ref == "stuck")
                .values(policies={"rollout": {"exponential": ramp}})
            )
        await aws.ok("iot", "CreateJob", jobId="healthy", targets=[arn], document="{}")
        await engine.tick()

        stuck = (await aws.ok("iot", "DescribeJob", jobId="stuck"))["job"]
        assert stuck["status"] == "IN_PROGRESS"
        assert stuck["reasonCode"] == "ENGINE_ERROR"
        assert stuck["comment"].startswith("TypeError: ")
        healthy = (await aws.ok("iot", "DescribeJob", jobId="healthy"))["job"]
        assert healthy["jobProcessDetails"]["numberOfQueuedThings"] == 1
        assert "reasonCode" not in healthy and "comment" not in healthy

        await aws.ok("iot", "CancelJob", jobId="stuck", reasonCode="BROKEN_POLICY")
        canceled = (await aws.ok("iot", "DescribeJob", jobId="stuck"))["job"]
        assert (canceled["status"], canceled["reasonCode"]) == ("CANCELED", "BROKEN_POLICY")
        assert "comment" not in canceled
