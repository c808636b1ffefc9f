"""The S3 endpoint fuzzed from botocore's s3 model: every operation otahub serves,
buckets and keys that S3 refuses, hostile headers and query values, and XML bodies
that are truncated, nested thousands deep or not XML at all."""

from __future__ import annotations

import functools
from typing import Any

import botocore.model
import botocore.session
import pytest

from otahub.aws.s3 import OPERATIONS
from tests.fuzz.harness import Campaign, LogWatch, RawRequest, Server, Verdict, examples_per_case
from tests.fuzz.harness import seed_world as seed
from tests.fuzz.strategies import (
    HOSTILE_BUCKETS,
    HOSTILE_KEYS,
    NEW,
    XML_BODIES,
    aws_base,
    aws_inputs,
    fill,
    rest_request,
    s3_violation,
    text_is_bad,
    to_xml,
)

pytestmark = pytest.mark.fuzz
EXAMPLES = examples_per_case(4)
FAULTS = max(1, examples_per_case(4) // 4)
S3_NOT_SERVED = frozenset({"NotImplemented"})


@functools.cache
def s3_model() -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model("s3")


def operations() -> list[botocore.model.OperationModel]:
    names = sorted(OPERATIONS, key=lambda n: (n.startswith(("Delete", "Abort")), n))
    return [s3_model().operation_model(n) for n in names]


def payload(op: botocore.model.OperationModel) -> Any:
    def encode(name: str, value: Any) -> bytes:
        member = op.input_shape.members[name]
        if member.type_name == "structure":
            root = member.serialization.get("name", name)
            return to_xml(root, value) if value else b""
        return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")

    return encode


async def fuzz_operation(
    campaign: Campaign, op: botocore.model.OperationModel, names: dict[str, str]
) -> None:
    server = campaign.server
    fresh = "Bucket" if op.name == "CreateBucket" else None

    async def send(params: Any, body: bytes | None = None, refuse: str | None = None) -> None:
        campaign.fresh += 1
        filled = fill(params, {**names, NEW: f"fznew{campaign.fresh}"})
        wire = rest_request(op, filled, payload(op))
        judged = Verdict(s3_violation(op, filled))
        request = RawRequest(wire.method, wire.target, wire.headers, body or wire.body)
        signed = server.aws_signed("s3", request, s3=True)
        # S3 answers calls it does not serve with its own documented 501 NotImplemented.
        await campaign.http(signed, Verdict(refuse or judged.refuse, S3_NOT_SERVED))

    base = aws_base(op, fresh)
    for params in aws_inputs(op, FAULTS, EXAMPLES, fresh):
        await send(params)
    members = op.input_shape.members if op.input_shape else {}
    if "Bucket" in members:
        for bucket in HOSTILE_BUCKETS:
            await send({**base, "Bucket": bucket})
    if "Key" in members:
        for key in HOSTILE_KEYS:
            await send({**base, "Key": key}, refuse="NUL in the key" if text_is_bad(key) else None)
    payload_name = op.input_shape.serialization.get("payload") if op.input_shape else None
    if payload_name and members[payload_name].type_name == "structure":
        for label, body in XML_BODIES:
            if body:
                await send(base, body, refuse=label)


async def test_s3_operations(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    names = await seed(server)
    campaign = Campaign(server, "AWS s3", watch)
    for op in operations():
        await fuzz_operation(campaign, op, names)
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()
