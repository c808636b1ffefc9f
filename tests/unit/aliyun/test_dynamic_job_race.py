"""Two CreateOTADynamicUpgradeJob for one firmware at once: the database lets
exactly one through, the other gets iot.ota.DynamicJobExists (both databases)."""

from __future__ import annotations

import asyncio

from tests.unit.aliyun.test_rollout_inprocess import Console, _setup, console

__all__ = ["console"]  # the fixture, shared with the in-process rollout tests


async def test_two_dynamic_jobs_at_once_exactly_one_is_created(console: Console) -> None:
    pk, _, fid = await _setup(console, 1, need_to_verify=False)
    answers = await asyncio.gather(
        *(
            console.call(
                "CreateOTADynamicUpgradeJob",
                ProductKey=pk,
                FirmwareId=fid,
                SrcVersion=[f"1.{i}"],
            )
            for i in range(2)
        )
    )
    created = [a for a in answers if a["Success"]]
    refused = [a for a in answers if not a["Success"]]
    assert len(created) == 1
    assert [a["Code"] for a in refused] == ["iot.ota.DynamicJobExists"]
    listed = await console.ok("ListOTAJobByFirmware", FirmwareId=fid, PageSize=10, CurrentPage=1)
    jobs = listed["Data"]["SimpleOTAJobInfo"]
    assert [j["JobId"] for j in jobs] == [created[0]["Data"]["JobId"]]
