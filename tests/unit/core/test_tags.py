"""Tags as a core use case: the limits every face gets alike, one transaction each."""

from __future__ import annotations

import pytest

from otahub.core.services import JobSpec, Services
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, LimitExceeded
from otahub.domain.tags import MAX_KEY, MAX_RESOURCE, MAX_TAGS, MAX_VALUE, Tag

RESOURCE = "arn:aws:iot:us-east-1:111111111111:thinggroup/g1"


async def test_tag_replace_untag_and_list(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    await services.tags.tag(tenant.id, RESOURCE, [Tag("env", "prod"), Tag("team", "fw")])
    await services.tags.tag(tenant.id, RESOURCE, [Tag("env", "dev"), Tag("empty")])
    assert await services.tags.list(tenant.id, RESOURCE) == [
        Tag("empty", ""),
        Tag("env", "dev"),
        Tag("team", "fw"),
    ]
    await services.tags.untag(tenant.id, RESOURCE, ["team", "absent"])
    assert [t.key for t in await services.tags.list(tenant.id, RESOURCE)] == ["empty", "env"]
    # Another tenant's resource of the same name has its own tags.
    other = await services.accounts.tenant("222222222222")
    assert await services.tags.list(other.id, RESOURCE) == []
    await services.tags.untag_all(tenant.id, RESOURCE)
    assert await services.tags.list(tenant.id, RESOURCE) == []


@pytest.mark.parametrize(
    "bad",
    [
        [Tag("aws:x", "y")],
        [Tag("AWS:x", "y")],
        [Tag("", "v")],
        [Tag("k" * (MAX_KEY + 1), "v")],
        [Tag("k", "v" * (MAX_VALUE + 1))],
        [Tag("a*b", "v")],
        [Tag("k", "a\x00b")],
        [Tag("k", "\ud800")],
        [Tag("k", "1"), Tag("k", "2")],
    ],
)
async def test_tags_a_resource_cannot_take(services: Services, bad: list[Tag]) -> None:
    tenant = await services.accounts.tenant("111111111111")
    await services.tags.tag(tenant.id, RESOURCE, [Tag("kept", "v")])
    with pytest.raises(InvalidRequest):
        await services.tags.tag(tenant.id, RESOURCE, [Tag("good", "v"), *bad])
    assert await services.tags.list(tenant.id, RESOURCE) == [Tag("kept", "v")]


async def test_keys_of_any_script_and_the_longest_values(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    given = [Tag("Größe 1/2:=+-@_.", "v" * MAX_VALUE), Tag("k" * MAX_KEY, "")]
    await services.tags.tag(tenant.id, RESOURCE, given)
    assert sorted(await services.tags.list(tenant.id, RESOURCE), key=lambda t: t.key) == sorted(
        given, key=lambda t: t.key
    )


async def test_at_most_fifty_tags_and_nothing_half_written(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    with pytest.raises(LimitExceeded):
        await services.tags.tag(tenant.id, RESOURCE, [Tag(f"k{i}") for i in range(MAX_TAGS + 1)])
    first = [Tag(f"k{i}", "old") for i in range(MAX_TAGS - 1)]
    await services.tags.tag(tenant.id, RESOURCE, first)
    # Replacing a key does not count it twice; one new key fills the resource.
    await services.tags.tag(tenant.id, RESOURCE, [Tag("k0", "new"), Tag("last")])
    assert len(await services.tags.list(tenant.id, RESOURCE)) == MAX_TAGS
    # One more fails whole: the replaced value stays as it was.
    with pytest.raises(LimitExceeded):
        await services.tags.tag(tenant.id, RESOURCE, [Tag("k1", "new"), Tag("one-too-many")])
    now = {t.key: t.value for t in await services.tags.list(tenant.id, RESOURCE)}
    assert len(now) == MAX_TAGS and now["k0"] == "new" and now["k1"] == "old"


async def test_a_resource_name_past_what_the_store_keeps(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    for name in ("", "x" * (MAX_RESOURCE + 1)):
        with pytest.raises(InvalidRequest):
            await services.tags.tag(tenant.id, name, [Tag("k", "v")])
        with pytest.raises(InvalidRequest):
            await services.tags.list(tenant.id, name)


async def test_a_group_is_created_with_its_tags_or_not_at_all(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    await services.registry.create_group(
        tenant.id, "g1", tags=[Tag("env", "prod")], tagged_as=RESOURCE
    )
    assert await services.tags.list(tenant.id, RESOURCE) == [Tag("env", "prod")]
    # Refused tags: no group.
    with pytest.raises(InvalidRequest):
        await services.registry.create_group(
            tenant.id, "g2", tags=[Tag("aws:x")], tagged_as=f"{RESOURCE}-2"
        )
    assert await services.registry.list_groups(tenant.id) == [
        await services.registry.get_group(tenant.id, "g1")
    ]
    # A group that exists: its tags are left as they were.
    with pytest.raises(AlreadyExists):
        await services.registry.create_group(
            tenant.id, "g1", tags=[Tag("env", "dev")], tagged_as=RESOURCE
        )
    assert await services.tags.list(tenant.id, RESOURCE) == [Tag("env", "prod")]


async def test_a_deleted_group_takes_its_tags_along(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    parent = f"{RESOURCE}-parent"
    await services.registry.create_group(tenant.id, "p", tags=[Tag("k", "v")], tagged_as=parent)
    await services.registry.create_group(tenant.id, "c", parent="p")
    # A group with children stays, with its tags.
    with pytest.raises(Conflict):
        await services.registry.delete_group(tenant.id, "p", tagged_as=parent)
    assert await services.tags.list(tenant.id, parent) == [Tag("k", "v")]
    await services.registry.delete_group(tenant.id, "c")
    await services.registry.delete_group(tenant.id, "p", tagged_as=parent)
    assert await services.tags.list(tenant.id, parent) == []


async def test_a_job_is_created_with_its_tags_or_not_at_all(services: Services) -> None:
    tenant = await services.accounts.tenant("111111111111")
    device = await services.registry.create_device(tenant.id, "t1")
    arn = "arn:aws:iot:us-east-1:111111111111:job/j1"
    refused = JobSpec(
        ref="j1", kind="job", device_ids=[device.id], tags=[Tag("aws:x", "y")], tagged_as=arn
    )
    with pytest.raises(InvalidRequest):
        await services.jobs.create_job(tenant.id, refused)
    assert await services.jobs.list_jobs(tenant.id) == []
    spec = JobSpec(ref="j1", kind="job", device_ids=[device.id], tags=[Tag("env")], tagged_as=arn)
    await services.jobs.create_job(tenant.id, spec)
    assert await services.tags.list(tenant.id, arn) == [Tag("env", "")]
    await services.jobs.delete_job(tenant.id, "j1", force=True, tagged_as=arn)
    assert await services.tags.list(tenant.id, arn) == []
