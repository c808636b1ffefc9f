"""Tags on resources named by ARN (things are not taggable on AWS either)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select

from otahub.aws.handlers import handles
from otahub.aws.handlers.common import check_length, single_page
from otahub.aws.wire.app import AwsContext
from otahub.domain.errors import InvalidRequest, LimitExceeded
from otahub.store.tables import tags

MAX_TAGS = 50
MAX_ARN = 2048  # what the tags table keeps of a resource's ARN
TAGGABLE = ("thinggroup/", "job/", "otaupdate/", "stream/", "cert/", "signing-profiles/")


def _check_arn(arn: str) -> None:
    check_length(arn, MAX_ARN, "resourceArn")
    if not any(f":{kind}" in arn or f":/{kind}" in arn for kind in TAGGABLE):
        raise InvalidRequest(f"{arn} is not a taggable resource")


async def put_tags(ctx: AwsContext, arn: str, new: list[dict[str, str]]) -> None:
    if any(t["Key"].startswith("aws:") for t in new):
        raise InvalidRequest("tag keys starting with aws: are reserved")
    async with ctx.services.ctx.db.transaction() as conn:
        keys = [t["Key"] for t in new]
        await conn.execute(
            delete(tags).where(
                tags.c.tenant_id == ctx.tenant_id, tags.c.resource == arn, tags.c.key.in_(keys)
            )
        )
        count = (
            await conn.execute(
                select(func.count()).where(
                    tags.c.tenant_id == ctx.tenant_id, tags.c.resource == arn
                )
            )
        ).scalar_one()
        if count + len(new) > MAX_TAGS:
            raise LimitExceeded(f"a resource has at most {MAX_TAGS} tags")
        if new:
            await conn.execute(
                insert(tags),
                [
                    {
                        "tenant_id": ctx.tenant_id,
                        "resource": arn,
                        "key": t["Key"],
                        "value": t.get("Value", ""),
                    }
                    for t in new
                ],
            )


@handles("iot", "TagResource")
async def tag_resource(ctx: AwsContext, p: dict[str, Any]) -> None:
    _check_arn(p["resourceArn"])
    await put_tags(ctx, p["resourceArn"], p["tags"])


@handles("iot", "UntagResource")
async def untag_resource(ctx: AwsContext, p: dict[str, Any]) -> None:
    _check_arn(p["resourceArn"])
    async with ctx.services.ctx.db.transaction() as conn:
        await conn.execute(
            delete(tags).where(
                tags.c.tenant_id == ctx.tenant_id,
                tags.c.resource == p["resourceArn"],
                tags.c.key.in_(p["tagKeys"]),
            )
        )


@handles("iot", "ListTagsForResource")
async def list_tags(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    single_page(p)
    _check_arn(p["resourceArn"])
    async with ctx.services.ctx.db.read() as conn:
        rows = await conn.execute(
            select(tags.c.key, tags.c.value)
            .where(tags.c.tenant_id == ctx.tenant_id, tags.c.resource == p["resourceArn"])
            .order_by(tags.c.key)
        )
        return {"tags": [{"Key": r.key, "Value": r.value} for r in rows]}
