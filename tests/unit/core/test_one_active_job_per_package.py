"""A package has at most one active dynamic job: the database decides, so two
creations at once cannot both pass (both databases)."""

from __future__ import annotations

import asyncio

import pytest

from otahub.aliyun import jobspec
from otahub.core.services import JobSpec, Services
from otahub.core.services.jobs import ActiveJobExists
from otahub.domain import selectors as sel
from otahub.domain.entities import PackageFile
from otahub.domain.errors import AlreadyExists
from otahub.domain.states import TargetSelection
from otahub.store.job_rules import ONE_ACTIVE_JOB_KIND
from tests.unit.core.fleet import make_fleet


def _dynamic(ref: str, package_id: int, kind: str = ONE_ACTIVE_JOB_KIND) -> JobSpec:
    return JobSpec(
        ref=ref,
        kind=kind,
        package_id=package_id,
        selector=sel.Match("version:mcu", "1.0"),
        target_selection=TargetSelection.CONTINUOUS,
    )


async def _package(services: Services) -> tuple[int, int]:
    tenant, _ = await make_fleet(services, 1)
    pkg = await services.packages.create_package(
        tenant, name="fw", version="2.0", module="mcu",
        files=[PackageFile(ordinal=0, name="fw.bin", size=1)],
    )  # fmt: skip
    return tenant, pkg.id


def test_the_index_names_the_alibaba_dynamic_kind() -> None:
    assert jobspec.DYNAMIC_KIND == ONE_ACTIVE_JOB_KIND


async def test_two_creations_at_once_exactly_one_succeeds(services: Services) -> None:
    tenant, package_id = await _package(services)
    results = await asyncio.gather(
        *(services.jobs.create_job(tenant, _dynamic(f"d{i}", package_id)) for i in range(2)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 1
    assert len(refused) == 1 and isinstance(refused[0], ActiveJobExists)
    assert refused[0].details == {"package_id": package_id}
    assert [j.ref for j in await services.jobs.list_jobs(tenant)] == [created[0].ref]


async def test_a_canceled_job_frees_the_package_and_other_kinds_are_free(
    services: Services,
) -> None:
    tenant, package_id = await _package(services)
    await services.jobs.create_job(tenant, _dynamic("first", package_id))
    with pytest.raises(ActiveJobExists):
        await services.jobs.create_job(tenant, _dynamic("second", package_id))
    # Other kinds may have any number of active jobs on the package.
    await services.jobs.create_job(tenant, _dynamic("static1", package_id, kind="aliyun-static"))
    await services.jobs.create_job(tenant, _dynamic("static2", package_id, kind="aliyun-static"))
    await services.jobs.cancel_job(tenant, "first")
    await services.jobs.create_job(tenant, _dynamic("second", package_id))
    # A ref taken is still AlreadyExists, not this rule.
    with pytest.raises(AlreadyExists):
        await services.jobs.create_job(tenant, _dynamic("second", package_id, kind="test"))
