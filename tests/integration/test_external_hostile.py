"""Hostile payloads from a device through the real Mosquitto (issue 18): otahub,
a client of that broker, answers each on the rejected topics, stays subscribed,
and answers the device's next good request."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import aiomqtt
import cbor2
import pytest

from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Services
from otahub.core.services.streams import StreamFile
from otahub.runtime import device_bridge
from tests.conftest import need_service
from tests.integration.mosquitto import gateway_on_mosquitto

pytestmark = pytest.mark.mosquitto

BIG = str(2**64).encode()
DEEP = b"[" * 5000 + b"]" * 5000


async def read_range(key: str, start: int, length: int) -> bytes:
    return bytes(length)


async def answers(device: aiomqtt.Client, count: int) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(15):
        async for message in device.messages:
            assert isinstance(message.payload, bytes)
            got.append((str(message.topic), message.payload))
            if len(got) == count:
                return got
    raise AssertionError("unreachable")


async def test_a_burst_of_bad_payloads_then_a_good_request(
    services: Services, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    need_service("Mosquitto", "127.0.0.1", 1883)
    caplog.set_level(logging.INFO)
    tenant = await services.accounts.tenant("111111111111")
    name = f"thing-{uuid.uuid4().hex[:8]}"
    thing = await services.registry.create_device(tenant.id, name)
    await services.jobs.create_job(
        tenant.id, JobSpec(ref="j1", kind="job", device_ids=[thing.id], document="{}")
    )
    await services.streams.create(tenant.id, "s1", [StreamFile(0, "fw", 1024, {})])
    await engine.tick()
    bridge = device_bridge(services, services.ctx.clock, read_range, default_tenant=tenant.id)
    jobs, streams = f"$aws/things/{name}/jobs/", f"$aws/things/{name}/streams/s1/"
    burst: list[tuple[str, bytes]] = [
        (jobs + "j1/update", b'{"status":"IN_PROGRESS","statusDetails":' + DEEP + b"}"),
        (jobs + "j1/update", b'{"status":"IN_PROGRESS","executionNumber":' + BIG + b"}"),
        (jobs + "start-next", b'{"statusDetails":{"k":"\\u0000"}}'),
        (jobs + "$next/get", b'{"executionNumber":NaN}'),
        (streams + "get/json", b'{"f":0,"l":' + BIG + b"}"),
        (streams + "get/cbor", b"\xa1\x61c" + b"\x81" * 300 + b"\x00"),
        (streams + "get/cbor", b"\xa1\x61c\xd8\x1c\x81\xd8\x1d\x00"),
    ]
    async with (
        gateway_on_mosquitto(bridge),
        aiomqtt.Client("127.0.0.1", 1883, identifier=name) as device,
    ):
        for answer in ("j1/update/+", "start-next/+", "$next/get/+"):
            await device.subscribe(jobs + answer, qos=1)
        for answer in ("rejected/+", "data/+"):
            await device.subscribe(streams + answer, qos=1)
        for _ in range(5):
            for topic, payload in burst:
                await device.publish(topic, payload, qos=1)
        got = await answers(device, 5 * len(burst))
        assert all("/rejected" in topic for topic, _ in got), got
        codes = {json.loads(p)["code"] if "/jobs/" in t else _stream_code(t, p) for t, p in got}
        assert codes == {"InvalidJson", "InvalidRequest", "InvalidCbor"}

        await device.publish(jobs + "j1/update", b'{"status":"IN_PROGRESS","clientToken":"ok"}')
        [(topic, payload)] = await answers(device, 1)
        assert topic == jobs + "j1/update/accepted" and json.loads(payload)["clientToken"] == "ok"
        await device.publish(streams + "get/cbor", cbor2.dumps({"f": 0, "l": 256, "n": 1}))
        [(topic, payload)] = await answers(device, 1)
        assert topic == streams + "data/cbor" and cbor2.loads(payload)["i"] == 0
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def _stream_code(topic: str, payload: bytes) -> Any:
    body = cbor2.loads(payload) if topic.endswith("cbor") else json.loads(payload)
    return body["o"]
