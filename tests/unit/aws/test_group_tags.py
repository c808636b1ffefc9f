"""Thing groups through the AWS face, on the core's rules: tags given at creation are
the group's (or the group is not made), and UpdateThingGroup's attribute semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from tests.unit.aws.harness import ACCOUNT, REGION, AwsConsole, aws_console, error_of

INVALID = (400, "InvalidRequestException")


@pytest.fixture
async def aws(services: Services, clock: FakeClock, tmp_path: Path) -> AsyncIterator[AwsConsole]:
    async with aws_console(services, clock, tmp_path) as console:
        yield console


async def test_groups_are_created_with_their_tags(aws: AwsConsole) -> None:
    made = await aws.ok(
        "iot", "CreateThingGroup", thingGroupName="g1", tags=[{"Key": "env", "Value": "prod"}]
    )
    assert made["thingGroupArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/g1"
    listed = await aws.ok("iot", "ListTagsForResource", resourceArn=made["thingGroupArn"])
    assert listed["tags"] == [{"Key": "env", "Value": "prod"}]
    dynamic = await aws.ok(
        "iot",
        "CreateDynamicThingGroup",
        thingGroupName="d1",
        queryString="attributes.site:A",
        tags=[{"Key": "team", "Value": "fw"}],
    )
    listed = await aws.ok("iot", "ListTagsForResource", resourceArn=dynamic["thingGroupArn"])
    assert listed["tags"] == [{"Key": "team", "Value": "fw"}]
    # A reserved key refuses the whole creation.
    reply = await aws.call(
        "iot", "CreateThingGroup", thingGroupName="g2", tags=[{"Key": "aws:x", "Value": "y"}]
    )
    assert error_of(reply) == INVALID
    groups = await aws.ok("iot", "ListThingGroups")
    assert [g["groupName"] for g in groups["thingGroups"]] == ["d1", "g1"]
    # A group made again under a deleted one's name starts with no tags.
    await aws.ok("iot", "DeleteThingGroup", thingGroupName="g1")
    await aws.ok("iot", "CreateThingGroup", thingGroupName="g1")
    listed = await aws.ok("iot", "ListTagsForResource", resourceArn=made["thingGroupArn"])
    assert listed["tags"] == []


async def test_update_thing_group_attributes(aws: AwsConsole) -> None:
    await aws.ok(
        "iot",
        "CreateThingGroup",
        thingGroupName="g",
        thingGroupProperties={
            "thingGroupDescription": "d",
            "attributePayload": {"attributes": {"a": "1", "b": "2"}},
        },
    )
    reply = await aws.ok(
        "iot",
        "UpdateThingGroup",
        thingGroupName="g",
        thingGroupProperties={
            "attributePayload": {"attributes": {"a": "", "c": "3"}, "merge": True}
        },
        expectedVersion=1,
    )
    assert reply["version"] == 2
    group = await aws.ok("iot", "DescribeThingGroup", thingGroupName="g")
    assert group["thingGroupProperties"] == {
        "thingGroupDescription": "d",
        "attributePayload": {"attributes": {"b": "2", "c": "3"}},
    }
    reply = await aws.call(
        "iot",
        "UpdateThingGroup",
        thingGroupName="g",
        thingGroupProperties={"thingGroupDescription": "x"},
        expectedVersion=1,
    )
    assert error_of(reply) == (409, "VersionConflictException")
    reply = await aws.call(
        "iot", "UpdateThingGroup", thingGroupName="absent", thingGroupProperties={}
    )
    assert error_of(reply) == (404, "ResourceNotFoundException")
