"""A version report settles the device's upgrades of that module (both databases)."""

from __future__ import annotations

from otahub.core.engine import Engine
from otahub.core.services import Report, Services
from otahub.core.services.version_reports import VersionOutcome, VersionReportService
from otahub.domain.entities import PackageFile
from otahub.domain.states import ExecutionStatus
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus


def _versions(services: Services) -> VersionReportService:
    return VersionReportService(services.ctx, services.registry, services.executions)


async def _upgrade_in_progress(services: Services, engine: Engine) -> tuple[int, list[int]]:
    """Two devices on mcu 1.0, a job to mcu 2.0; the first device's task IN_PROGRESS."""
    tenant, ids = await make_fleet(services, 2)
    for device_id in ids:
        await services.registry.report_version(device_id, "mcu", "1.0")
    pkg = await services.packages.create_package(
        tenant, name="fw", version="2.0", module="mcu",
        files=[PackageFile(ordinal=0, name="fw.bin", size=1)],
    )  # fmt: skip
    job = await group_job(services, tenant, package_id=pkg.id)
    await engine.tick()
    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS, progress=40))
    return job.id, ids


async def test_the_target_version_settles_the_task(services: Services, engine: Engine) -> None:
    job_id, ids = await _upgrade_in_progress(services, engine)
    outcome = await _versions(services).report(ids[0], "mcu", "2.0")
    assert [(e.job_id, e.status, e.progress) for e in outcome.succeeded] == [
        (job_id, S.SUCCEEDED, 100)
    ]
    assert outcome.failed == []
    assert (await services.executions.get(job_id, ids[0])).status is S.SUCCEEDED


async def test_neither_old_nor_target_fails_the_task_in_progress(
    services: Services, engine: Engine
) -> None:
    job_id, ids = await _upgrade_in_progress(services, engine)
    outcome = await _versions(services).report(ids[0], "mcu", "1.5")
    assert outcome.succeeded == []
    [failed] = outcome.failed
    assert (failed.job_id, failed.status) == (job_id, S.FAILED)
    assert failed.reason == "the device reported version 1.5, not 2.0"
    # A task not started yet is left alone, whatever the device reports.
    other = await _versions(services).report(ids[1], "mcu", "1.5")
    assert other.failed == [] and other.succeeded == []
    assert (await services.executions.get(job_id, ids[1])).status is not S.FAILED


async def test_the_old_version_again_or_another_module_changes_nothing(
    services: Services, engine: Engine
) -> None:
    job_id, ids = await _upgrade_in_progress(services, engine)
    assert await _versions(services).report(ids[0], "mcu", "1.0") == VersionOutcome()
    assert await _versions(services).report(ids[0], "wifi", "7") == VersionOutcome()
    # A device that never reported the module has no "before": nothing fails.
    assert await _versions(services).report(ids[0], "ble", "2.0") == VersionOutcome()
    assert (await services.executions.get(job_id, ids[0])).status is S.IN_PROGRESS
