"""A differential package fits only devices on its source version: checked in the
job's transaction by one query over the listed devices (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from otahub.core.services import JobSpec, Services
from otahub.core.services.jobs import DeviceOffSourceVersion
from otahub.domain.entities import PackageFile
from otahub.domain.states import ReleaseMode
from tests.unit.core.fleet import make_fleet


async def _diff_fleet(services: Services) -> tuple[int, list[int], int]:
    """dev0000 on mcu 1.0, dev0001 and dev0002 on 0.9, dev0003 never reported mcu;
    a diff package 1.0 -> 2.0."""
    tenant, ids = await make_fleet(services, 4)
    for device_id, version in zip(ids, ("1.0", "0.9", "0.9"), strict=False):
        await services.registry.report_version(device_id, "mcu", version)
    await services.registry.report_version(ids[3], "wifi", "0.9")
    pkg = await services.packages.create_package(
        tenant, name="fw", version="2.0", module="mcu", source_version="1.0",
        files=[PackageFile(ordinal=0, name="fw.bin", size=1)],
    )  # fmt: skip
    return tenant, ids, pkg.id


def _spec(ref: str, package_id: int, device_ids: list[int]) -> JobSpec:
    return JobSpec(
        ref=ref, kind="test", device_ids=device_ids, package_id=package_id,
        release_mode=ReleaseMode.NOTIFY,
    )  # fmt: skip


async def test_devices_on_the_source_version_or_without_one_fit(services: Services) -> None:
    tenant, ids, package_id = await _diff_fleet(services)
    job = await services.jobs.create_job(tenant, _spec("fits", package_id, [ids[0], ids[3]]))
    assert job.package_id == package_id


async def test_the_first_listed_device_on_another_version_refuses_the_job(
    services: Services,
) -> None:
    tenant, ids, package_id = await _diff_fleet(services)
    listed = [ids[0], ids[2], ids[1], ids[3]]
    statements: list[str] = []
    engine = services.ctx.db.engine.sync_engine

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with pytest.raises(DeviceOffSourceVersion) as raised:
            await services.jobs.create_job(tenant, _spec("refused", package_id, listed))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert raised.value.details["device_id"] == ids[2]
    assert sum("device_modules" in s for s in statements) == 1  # one query, not one per device
    assert await services.jobs.list_jobs(tenant) == []
