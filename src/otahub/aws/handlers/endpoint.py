"""DescribeEndpoint: where devices reach otahub."""

from __future__ import annotations

from typing import Any

from otahub.aws.handlers import handles
from otahub.aws.wire.app import AwsContext
from otahub.domain.errors import InvalidRequest


@handles("iot", "DescribeEndpoint")
async def describe_endpoint(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    kind = p.get("endpointType") or "iot:Data"
    if kind not in ctx.endpoints:
        raise InvalidRequest(f"endpointType {kind} is not served by otahub")
    return {"endpointAddress": ctx.endpoints[kind]}
