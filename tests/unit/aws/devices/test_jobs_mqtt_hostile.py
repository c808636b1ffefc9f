"""Hostile payloads on the Jobs MQTT topics (issue 18): each is answered on the
rejected topic with AWS's code, nothing is logged as a traceback, nothing is
stored, and the device is served normally afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import update

from otahub.aws.devices.jobs_mqtt import JobsTopics
from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Services
from otahub.domain.entities import Device
from otahub.domain.states import ExecutionStatus
from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.messages import Outgoing
from otahub.runtime import device_bridge
from otahub.store.tables import jobs

T = "$aws/things/thing-1/jobs/"
DEEP = b'{"status":"IN_PROGRESS","statusDetails":' + b'{"a":' * 5000 + b"1" + b"}" * 5001


async def no_blobs(key: str, start: int, length: int) -> bytes:
    return b"\x00" * length


async def setup(services: Services, engine: Engine) -> tuple[Device, DeviceBridge, int]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "thing-1")
    job = await services.jobs.create_job(
        tenant.id, JobSpec(ref="job-a", kind="job", device_ids=[thing.id], document="{}")
    )
    await engine.tick()
    bridge = device_bridge(services, services.ctx.clock, no_blobs, default_tenant=tenant.id)
    return thing, bridge, job.id


def body(out: Outgoing) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(out.payload)
    return parsed


async def rejected(bridge: DeviceBridge, thing: Device, topic: str, payload: bytes) -> Any:
    [out] = await bridge.on_message(thing, T + topic, payload)
    assert out.topic == T + topic + "/rejected", out
    answer = body(out)
    assert isinstance(answer["timestamp"], int) and answer["message"]
    return answer


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


@pytest.mark.parametrize("topic", ["get", "start-next", "$next/get", "job-a/get", "job-a/update"])
async def test_json_nested_5000_deep_is_invalid_json(
    services: Services, engine: Engine, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge, _ = await setup(services, engine)
    answer = await rejected(bridge, thing, topic, DEEP)
    assert answer["code"] == "InvalidJson" and "clientToken" not in answer
    no_traceback(caplog)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"status":"IN_PROGRESS","executionNumber":NaN}',
        b'{"status":"IN_PROGRESS","expectedVersion":Infinity}',
        b'{"status":"IN_PROGRESS","stepTimeoutInMinutes":-Infinity}',
        '{"status":"IN_PROGRESS","clientToken":"\ud800"}'.encode("utf-8", "surrogatepass"),
        b'{"status":"IN_PROGRESS"',
        b'["not", "an", "object"]',
        b"\xff\xfe{}",
    ],
)
async def test_what_is_not_json_is_invalid_json(
    services: Services, engine: Engine, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge, _ = await setup(services, engine)
    assert (await rejected(bridge, thing, "job-a/update", payload))["code"] == "InvalidJson"
    no_traceback(caplog)


@pytest.mark.parametrize(
    "request_body",
    [
        {"status": "IN_PROGRESS", "executionNumber": 2**63},
        {"status": "IN_PROGRESS", "executionNumber": str(2**63)},
        {"status": "IN_PROGRESS", "expectedVersion": 2**63},
        {"status": "IN_PROGRESS", "expectedVersion": -(2**64)},
        {"status": "IN_PROGRESS", "expectedVersion": "1_000"},
        {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 2**70},
        {"status": "IN_PROGRESS", "stepTimeoutInMinutes": "ten"},
        {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1.5},
        {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1e300},
        {"status": "IN_PROGRESS", "statusDetails": {"k": "a\u0000b"}},
        {"status": "IN_PROGRESS", "statusDetails": {"k\u0000": "v"}},
        {"status": "IN_PROGRESS", "statusDetails": {"k": "\u200b"}},
        {"status": "IN_PROGRESS", "statusDetails": {"k": 5}},
        {"status": "IN_PROGRESS", "statusDetails": {"k": {"nested": "map"}}},
        {"status": "IN_PROGRESS", "statusDetails": ["k", "v"]},
        {"status": "IN_PROGRESS", "statusDetails": {"k" * 129: "v"}},
        {"status": "IN_PROGRESS", "statusDetails": {"k": "v" * 1025}},
        {"status": "DANCING"},
        {"status": None},
        {"status": ["IN_PROGRESS"]},
        {"status": "IN_PROGRESS", "includeJobDocument": "yes"},
        {"status": "IN_PROGRESS", "clientToken": "t" * 65},
        {"status": "IN_PROGRESS", "clientToken": {"nested": True}},
        {"status": "IN_PROGRESS", "clientToken": "a\u0000b"},
        {"status": "IN_PROGRESS", "clientToken": "\ud800"},
    ],
)
async def test_values_out_of_limits_are_invalid_requests(
    services: Services,
    engine: Engine,
    request_body: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    thing, bridge, job_id = await setup(services, engine)
    payload = json.dumps(request_body).encode()
    answer = await rejected(bridge, thing, "job-a/update", payload)
    assert answer["code"] == "InvalidRequest", answer
    ex = await services.executions.get(job_id, thing.id)
    assert (ex.status, ex.version, ex.status_details) == (ExecutionStatus.QUEUED, 1, None)
    no_traceback(caplog)


@pytest.mark.parametrize(
    ("topic", "request_body"),
    [
        ("job-a/get", {"executionNumber": 2**63}),
        ("job-a/get", {"executionNumber": -(2**63) - 1}),
        ("job-a/get", {"includeJobDocument": 1}),
        ("start-next", {"statusDetails": {"k": "a\u0000"}}),
        ("start-next", {"stepTimeoutInMinutes": 2**64}),
        ("get", {"clientToken": "x" * 100}),
    ],
)
async def test_other_topics_refuse_values_too(
    services: Services,
    engine: Engine,
    topic: str,
    request_body: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    thing, bridge, _ = await setup(services, engine)
    answer = await rejected(bridge, thing, topic, json.dumps(request_body).encode())
    assert answer["code"] == "InvalidRequest", answer
    no_traceback(caplog)


async def test_numbers_within_64_bits_but_past_any_execution_are_not_found(
    services: Services, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A long the model allows, beyond what the store's column holds: no such execution."""
    thing, bridge, _ = await setup(services, engine)
    for number in (2**31, 2**63 - 1, -(2**63)):
        payload = json.dumps({"executionNumber": number, "clientToken": "c"}).encode()
        answer = await rejected(bridge, thing, "job-a/get", payload)
        assert (answer["code"], answer["clientToken"]) == ("ResourceNotFound", "c")
        update = json.dumps({"status": "IN_PROGRESS", "executionNumber": number}).encode()
        assert (await rejected(bridge, thing, "job-a/update", update))["code"] == (
            "ResourceNotFound"
        )
    no_traceback(caplog)


@pytest.mark.parametrize(
    "job_ref", ["a\u0000b", "x" * 65, "bad job", "é"], ids=["nul", "long", "space", "accent"]
)
async def test_job_ids_no_job_can_have_are_refused(
    services: Services, engine: Engine, job_ref: str, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge, _ = await setup(services, engine)
    for action in ("get", "update"):
        payload = b'{"status":"IN_PROGRESS","clientToken":"c"}'
        [out] = await bridge.on_message(thing, f"{T}{job_ref}/{action}", payload)
        assert out.topic == f"{T}{job_ref}/{action}/rejected"
        assert body(out)["code"] in ("InvalidRequest", "ResourceNotFound")
    no_traceback(caplog)


async def test_a_device_is_served_after_a_burst_of_bad_payloads(
    services: Services, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge, job_id = await setup(services, engine)
    burst = [
        DEEP,
        b'{"status":"IN_PROGRESS","executionNumber":9223372036854775808}',
        b'{"status":"IN_PROGRESS","expectedVersion":NaN}',
        b'{"status":"IN_PROGRESS","statusDetails":{"k":"\\u0000"}}',
        b"[" * 100_000,
    ]
    for payload in burst * 20:
        for topic in ("job-a/update", "start-next", "$next/get"):
            [out] = await bridge.on_message(thing, T + topic, payload)
            assert out.topic.endswith("/rejected")
    ex = await services.executions.get(job_id, thing.id)
    assert (ex.status, ex.version) == (ExecutionStatus.QUEUED, 1)
    [ok] = await bridge.on_message(
        thing, T + "job-a/update", b'{"status":"IN_PROGRESS","clientToken":"good"}'
    )
    assert ok.topic == T + "job-a/update/accepted" and body(ok)["clientToken"] == "good"
    assert (await services.executions.get(job_id, thing.id)).status is ExecutionStatus.IN_PROGRESS
    no_traceback(caplog)


async def test_a_document_stored_nested_thousands_deep_still_reaches_the_device(
    services: Services, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """One stored before CreateJob refused such documents: the device gets it as text."""
    thing, bridge, job_id = await setup(services, engine)
    deep = "[" * 5000 + "]" * 5000
    async with services.ctx.db.transaction() as conn:
        await conn.execute(update(jobs).where(jobs.c.id == job_id).values(document=deep))
    [out] = await bridge.on_message(thing, T + "$next/get", b"{}")
    assert out.topic == T + "$next/get/accepted"
    assert body(out)["execution"]["jobDocument"] == deep
    jobs_topics = JobsTopics(services, services.ctx.clock)
    [_, notify_next] = await jobs_topics.notifications(thing, ["released"])
    assert json.loads(notify_next.payload)["execution"]["jobDocument"] == deep
    no_traceback(caplog)
