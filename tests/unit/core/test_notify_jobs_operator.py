"""Operator controls of NOTIFY-mode jobs (Alibaba's tasks): paging, cancel by status,
re-run, one pending job per device, modules, package listing and deletion."""

from __future__ import annotations

import pytest

from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Report, Services
from otahub.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidStateTransition,
    LimitExceeded,
    NotFound,
)
from otahub.domain.policies import JobPolicies, RolloutPolicy
from otahub.domain.states import ExecutionStatus, JobStatus, ReleaseMode
from tests.unit.core.fleet import group_job, make_fleet

S = ExecutionStatus


async def test_page_cancel_and_rerun(services: Services, engine: Engine) -> None:
    tenant, ids = await make_fleet(services, 5)
    job = await group_job(services, tenant, release_mode=ReleaseMode.NOTIFY, need_push=False)
    await engine.tick()
    page, total = await services.executions.page_for_job(job.id, offset=2, limit=2)
    assert total == 5 and [e.device_id for e in page] == sorted(ids)[2:4]
    assert all(e.device_name for e in page)

    await services.executions.report(job.id, ids[0], Report(S.IN_PROGRESS))
    assert await services.executions.cancel_in_job(job.id, [S.QUEUED]) == 4
    counts = await services.jobs.counts(job.id)
    assert counts == {S.IN_PROGRESS: 1, S.CANCELED: 4}
    only, total = await services.executions.page_for_job(job.id, statuses=[S.IN_PROGRESS])
    assert total == 1 and only[0].device_id == ids[0]

    with pytest.raises(InvalidStateTransition):
        await services.executions.rerun(job.id, ids[0])  # still running
    await services.executions.report(job.id, ids[0], Report(S.FAILED))
    await engine.tick()
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.COMPLETED

    rerun = await services.executions.rerun(job.id, ids[0])
    assert (rerun.status, rerun.execution_number) == (S.QUEUED, 2)
    assert (await services.jobs.get_job_by_id(job.id)).status is JobStatus.IN_PROGRESS
    latest, total = await services.executions.page_for_job(job.id, device_ids=[ids[0]])
    assert total == 1 and latest[0].execution_number == 2
    unfinished = await services.executions.unfinished_for_device(ids[0])
    assert [(e.job_id, e.status) for e in unfinished] == [(job.id, S.QUEUED)]


async def test_skip_busy_leaves_devices_with_pending_work_out(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 4)
    first = await services.jobs.create_job(
        tenant,
        JobSpec(ref="first", kind="test", device_ids=ids[:2], release_mode=ReleaseMode.NOTIFY),
    )
    await engine.tick()
    assert sum((await services.jobs.counts(first.id)).values()) == 2
    policies = JobPolicies(rollout=RolloutPolicy(skip_busy=True))
    second = await group_job(
        services, tenant, ref="second", release_mode=ReleaseMode.NOTIFY, policies=policies
    )
    await engine.tick()
    page, total = await services.executions.page_for_job(second.id)
    assert total == 2 and {e.device_id for e in page} == set(ids[2:])


async def test_modules_and_packages(services: Services) -> None:
    tenant = (await services.accounts.tenant("111122223333")).id
    await services.registry.create_product(tenant, "pk1", "meters")
    mod = await services.modules.create_module(tenant, "pk1", "MCU", alias="mcu")
    assert (mod.name, mod.alias) == ("MCU", "mcu")
    with pytest.raises(AlreadyExists):
        await services.modules.create_module(tenant, "pk1", "mcu")
    await services.modules.create_module(tenant, "pk1", "WIFI", max_modules=2)
    with pytest.raises(LimitExceeded):
        await services.modules.create_module(tenant, "pk1", "BLE", max_modules=2)
    product = await services.registry.get_product(tenant, "pk1")
    pkg = await services.packages.create_package(
        tenant, name="fw", version="2.0", files=[], product_id=product.id, module="MCU"
    )
    with pytest.raises(Conflict):
        await services.modules.delete_module(tenant, "pk1", "MCU")
    found, total = await services.packages.list_packages(tenant, with_product=True)
    assert total == 1 and found[0].ref == pkg.ref
    renamed = await services.packages.update_package(tenant, pkg.ref, name="fw2", data={"udi": "x"})
    assert (renamed.name, renamed.data) == ("fw2", {"udi": "x"})
    await services.packages.delete_package(tenant, pkg.ref)
    with pytest.raises(NotFound):
        await services.packages.get_package(tenant, pkg.ref)
    await services.modules.delete_module(tenant, "pk1", "MCU")
    assert [m.name for m in await services.modules.list_modules(tenant, "pk1")] == ["WIFI"]


async def test_a_new_job_overrides_unstarted_work_elsewhere(
    services: Services, engine: Engine
) -> None:
    tenant, ids = await make_fleet(services, 3)
    first = await services.jobs.create_job(
        tenant, JobSpec(ref="first", kind="test", device_ids=ids, release_mode=ReleaseMode.NOTIFY)
    )
    await engine.tick()
    await services.executions.report(first.id, ids[0], Report(S.IN_PROGRESS))
    second = await group_job(services, tenant, ref="second", release_mode=ReleaseMode.NOTIFY)
    assert await services.jobs.cancel_unstarted_elsewhere(second.id, reason="overwritten") == 2
    assert await services.jobs.counts(first.id) == {S.IN_PROGRESS: 1, S.CANCELED: 2}
