"""The AWS control plane, the Jobs HTTP data plane and the signer, fuzzed from
botocore's models: every operation otahub implements, inputs that mix valid values
with what the model or otahub's limits forbid, sent as the model's protocol carries
them and signed validly, so that they reach the wire layer and the handlers."""

from __future__ import annotations

from typing import Any

import botocore.model
import pytest

from otahub.aws.handlers import all_handlers
from otahub.aws.wire.model import service_model
from tests.fuzz.harness import (
    INTERNAL_CODES,
    Campaign,
    LogWatch,
    RawRequest,
    Server,
    Verdict,
    examples_per_case,
    seed_world,
)
from tests.fuzz.strategies import (
    NEW,
    aws_base,
    aws_inputs,
    aws_violation,
    fill,
    fresh_label,
    hostile_bodies,
    rest_request,
)

pytestmark = pytest.mark.fuzz
EXAMPLES = examples_per_case(4)  # random inputs per operation
FAULTS = examples_per_case(4) // 4  # drawn hostile values per member, one member at a time
SURFACE = {"iot": "AWS iot", "iot-jobs-data": "AWS iot-jobs-data", "signer": "AWS signer"}
DESTRUCTIVE = ("Delete", "Cancel", "Revoke", "Remove", "Detach", "Untag")


def implemented(service: str) -> list[botocore.model.OperationModel]:
    """The operations otahub serves, the destructive ones last (they delete the world)."""
    model = service_model(service)
    names = sorted(op for s, op in all_handlers() if s == service)
    names.sort(key=lambda n: n.startswith(DESTRUCTIVE))
    return [model.operation_model(n) for n in names]


def modelled_5xx(op: botocore.model.OperationModel) -> frozenset[str]:
    """The 5xx errors an operation's model declares, less the internal failures."""
    return frozenset(
        e.name
        for e in op.error_shapes
        if e.metadata.get("error", {}).get("httpStatusCode", 400) >= 500
        and e.name not in INTERNAL_CODES
    )


def has_body(op: botocore.model.OperationModel) -> bool:
    shape = op.input_shape
    return shape is not None and any(
        "location" not in m.serialization for m in shape.members.values()
    )


async def fuzz_operation(
    campaign: Campaign, service: str, op: botocore.model.OperationModel, names: dict[str, str]
) -> None:
    server = campaign.server
    allowed = modelled_5xx(op)

    async def send(params: Any, body: bytes | None = None, refuse: str | None = None) -> Any:
        campaign.fresh += 1
        filled = fill(params, {**names, NEW: f"fznew{campaign.fresh}"})
        wire = rest_request(op, filled)
        verdict = Verdict(refuse or aws_violation(op.input_shape, filled), allowed)
        raw = wire.body if body is None else body
        request = RawRequest(wire.method, wire.target, wire.headers, raw)
        return await campaign.http(server.aws_signed(service, request), verdict)

    base, *rest = aws_inputs(op, FAULTS, EXAMPLES, fresh_label(op))
    answer = await send(base)
    if answer is not None and answer.status >= 400:  # faults then stop short of the handler
        campaign.tally.answers[f"minimal input refused: {op.name} {answer.status}"] += 1
    for params in rest:
        await send(params)
    if has_body(op):
        base = aws_base(op, fresh_label(op))
        for label, body in hostile_bodies():
            await send(base, body, label)


@pytest.mark.parametrize("service", ["iot", "iot-jobs-data", "signer"])
async def test_aws_operations(service: str, fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    names = await seed_world(server)
    campaign = Campaign(server, SURFACE[service], watch)
    operations = implemented(service)
    for i, op in enumerate(operations):
        if op.name.startswith(DESTRUCTIVE) and not operations[i - 1].name.startswith(DESTRUCTIVE):
            # Before the world is deleted: a job poisoned by an input is still active here.
            await campaign.check_still_serving()
        await fuzz_operation(campaign, service, op, names)
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()
