"""Group updates as a core use case: versioned (optimistic concurrency), attributes
merged or replaced with "" removing one, and the hierarchy reads every face needs."""

from __future__ import annotations

import pytest

from otahub.core.services import Services
from otahub.domain import selectors as sel
from otahub.domain.entities import Group
from otahub.domain.errors import NotFound, VersionConflict


async def test_update_grows_the_version_and_keeps_what_is_not_given(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    made = await services.registry.create_group(
        tenant.id, "g", description="d", attributes={"site": "A"}
    )
    assert made.version == 1
    g = await services.registry.update_group(tenant.id, "g", attributes={"floor": "2"})
    assert (g.version, g.description, g.attributes) == (2, "d", {"floor": "2"})
    g = await services.registry.update_group(
        tenant.id, "g", attributes={"site": "B", "floor": ""}, merge=True, expected_version=2
    )
    assert (g.version, g.attributes) == (3, {"site": "B"})
    g = await services.registry.update_group(tenant.id, "g", attributes={"x": "1", "site": ""})
    assert g.attributes == {"x": "1"}
    g = await services.registry.update_group(tenant.id, "g", description=None)
    assert (g.version, g.description, g.attributes) == (5, None, {"x": "1"})
    assert await services.registry.get_group(tenant.id, "g") == g


@pytest.mark.parametrize("expected", [0, 2, 2**40, -1])
async def test_a_stale_expected_version_changes_nothing(services: Services, expected: int) -> None:
    tenant = await services.accounts.tenant("111111111111")
    before = await services.registry.create_group(tenant.id, "g", attributes={"a": "1"})
    with pytest.raises(VersionConflict) as raised:
        await services.registry.update_group(
            tenant.id, "g", description="new", attributes={}, expected_version=expected
        )
    assert raised.value.details["current"] == {"version": 1}
    assert await services.registry.get_group(tenant.id, "g") == before


async def test_update_of_a_missing_group(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    with pytest.raises(NotFound):
        await services.registry.update_group(tenant.id, "absent", description="d")


async def test_hierarchy_reads(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    root = await services.registry.create_group(tenant.id, "root")
    await services.registry.create_group(tenant.id, "mid", parent="root")
    leaf = await services.registry.create_group(tenant.id, "leaf", parent="mid")
    await services.registry.create_group(tenant.id, "mid2", parent="root")
    await services.registry.create_group(
        tenant.id, "dyn", selector=sel.Match("attr:a", "1"), query="attributes.a:1"
    )
    other = await services.accounts.tenant("222222222222")
    await services.registry.create_group(other.id, "root2")

    def names(groups: list[Group]) -> list[str]:
        return [g.name for g in groups]

    assert names(await services.registry.group_ancestors(leaf)) == ["root", "mid"]
    assert await services.registry.group_ancestors(root) == []
    assert names(await services.registry.list_groups(tenant.id)) == [
        "dyn", "leaf", "mid", "mid2", "root",
    ]  # fmt: skip
    assert names(await services.registry.list_groups(tenant.id, parent="root")) == [
        "mid", "mid2",
    ]  # fmt: skip
    assert names(await services.registry.list_groups(tenant.id, parent="root", recursive=True)) == [
        "leaf",
        "mid",
        "mid2",
    ]
    assert names(
        await services.registry.list_groups(tenant.id, parent="root", name_prefix="mid")
    ) == ["mid", "mid2"]
    assert names(await services.registry.list_groups(tenant.id, name_prefix="MID")) == []
    with pytest.raises(NotFound):
        await services.registry.list_groups(tenant.id, parent="absent")
