"""Tags on resources named by ARN (things are not taggable on AWS either)."""

from __future__ import annotations

from typing import Any

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import single_page
from otahub.aws.wire.app import AwsContext
from otahub.domain.errors import InvalidRequest
from otahub.domain.tags import MAX_TAGS, Tag

TAGGABLE = ("thinggroup/", "job/", "otaupdate/", "stream/", "cert/", "signing-profiles/")

__all__ = ["MAX_TAGS", "from_wire", "put_tags"]


def _check_arn(arn: str) -> None:
    if not any(f":{kind}" in arn or f":/{kind}" in arn for kind in TAGGABLE):
        raise InvalidRequest(f"{arn} is not a taggable resource")


def from_wire(tags: list[dict[str, str]] | None) -> list[Tag]:
    return [Tag(t["Key"], t.get("Value") or "") for t in tags or []]


async def put_tags(ctx: AwsContext, arn: str, new: list[dict[str, str]]) -> None:
    await ctx.services.tags.tag(ctx.tenant_id, arn, from_wire(new))


@handles("iot", "TagResource")
async def tag_resource(ctx: AwsContext, p: dict[str, Any]) -> None:
    _check_arn(p["resourceArn"])
    await put_tags(ctx, p["resourceArn"], p["tags"])


@handles("iot", "UntagResource")
async def untag_resource(ctx: AwsContext, p: dict[str, Any]) -> None:
    _check_arn(p["resourceArn"])
    await ctx.services.tags.untag(ctx.tenant_id, p["resourceArn"], p["tagKeys"])


@handles("iot", "ListTagsForResource")
async def list_tags(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    single_page(p)
    _check_arn(p["resourceArn"])
    found = await ctx.services.tags.list(ctx.tenant_id, p["resourceArn"])
    return {"tags": [{"Key": t.key, "Value": t.value} for t in found]}
