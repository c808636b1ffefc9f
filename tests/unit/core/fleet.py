"""Helpers that set up a tenant, a fleet and jobs through the services."""

from __future__ import annotations

from otahub.core.services import JobSpec, Services
from otahub.domain.entities import Job


async def make_fleet(svc: Services, n: int, *, group: str = "fleet") -> tuple[int, list[int]]:
    """A tenant with `n` devices dev0000… in one static group; returns (tenant, ids)."""
    tenant = await svc.accounts.tenant("111122223333")
    await svc.registry.create_devices_bulk(tenant.id, [f"dev{i:04d}" for i in range(n)])
    await svc.registry.create_group(tenant.id, group)
    await svc.registry.add_group_members_from_query(tenant.id, group)
    ids = await svc.registry.group_member_ids(tenant.id, group, limit=n)
    return tenant.id, ids


async def group_job(
    svc: Services, tenant_id: int, ref: str = "job1", group: str = "fleet", **spec: object
) -> Job:
    g = await svc.registry.get_group(tenant_id, group)
    return await svc.jobs.create_job(
        tenant_id,
        JobSpec(ref=ref, kind="test", group_ids=[g.id], document="{}", **spec),  # type: ignore[arg-type]
    )
