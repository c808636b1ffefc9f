"""Malformed device payloads on every inbound AWS topic: answered in the protocol's
rejected shape or dropped, never an exception out of the bridge."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import cbor2
import pytest

from otahub.core.engine import Engine
from otahub.core.services import JobSpec, Services
from otahub.core.services.streams import StreamFile
from otahub.runtime import device_bridge

GARBAGE: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"42",
    b'"text"',
    b"{",
    b"\xff\xfe\x00",
    b"{}" * 10,
    json.dumps({"status": 5, "statusDetails": [1], "expectedVersion": {"a": 1}}).encode(),
    json.dumps({"clientToken": {"nested": True}, "executionNumber": "x"}).encode(),
    json.dumps({"status": "SUCCEEDED", "statusDetails": {"k": "v" * 5000}}).encode(),
    json.dumps({"f": "zero", "l": None, "o": -1, "n": 10**12, "b": 12}).encode(),
    cbor2.dumps({"f": 0, "l": 256, "b": b"\x00" * 20000}),
    cbor2.dumps([1, 2, 3]),
    b"x" * 300_000,
]


async def no_blobs(key: str, start: int, length: int) -> bytes:
    return b"\x00" * length


async def test_garbage_never_escapes_the_bridge(services: Services, engine: Engine) -> None:
    tenant = await services.accounts.tenant("1")
    thing = await services.registry.create_device(tenant.id, "t1")
    await services.jobs.create_job(
        tenant.id, JobSpec(ref="j1", kind="job", device_ids=[thing.id], document="{}")
    )
    await services.streams.create(tenant.id, "s1", [StreamFile(0, "k", 4096, {})])
    await engine.tick()
    bridge = device_bridge(services, services.ctx.clock, no_blobs, default_tenant=tenant.id)
    base = "$aws/things/t1/"
    topics = [
        base + "jobs/get",
        base + "jobs/start-next",
        base + "jobs/$next/get",
        base + "jobs/j1/get",
        base + "jobs/j1/update",
        base + "jobs/nope/update",
        base + "jobs/j1/update/extra",
        base + "streams/s1/describe/json",
        base + "streams/s1/get/json",
        base + "streams/s1/get/cbor",
        base + "streams/s1/describe/cbor",
        base + "streams/zz/get/cbor",
    ]
    rng = random.Random(1)
    payloads = GARBAGE + [os.urandom(rng.randint(1, 64)) for _ in range(20)]
    for topic in topics:
        for payload in payloads:
            out = await bridge.on_message(thing, topic, payload)
            for message in out:
                assert (
                    "/rejected" in message.topic
                    or "/accepted" in message.topic
                    or ("/description/" in message.topic or "/data/" in message.topic)
                ), (topic, payload[:40], message.topic)
                if message.topic.endswith("/rejected"):
                    body: dict[str, Any] = json.loads(message.payload)
                    assert body["code"] and isinstance(body["timestamp"], int)
    # The device is still served normally afterwards.
    [ok] = await bridge.on_message(thing, base + "jobs/get", b'{"clientToken":"c"}')
    assert ok.topic.endswith("get/accepted")


@pytest.mark.parametrize(
    "topic", ["$aws/things/ghost/jobs/get", "/ota/device/inform/pk/dn", "not/a/device/topic"]
)
async def test_unknown_devices_are_dropped(services: Services, topic: str) -> None:
    tenant = await services.accounts.tenant("1")
    bridge = device_bridge(services, services.ctx.clock, no_blobs, default_tenant=tenant.id)
    assert await bridge.on_message(None, topic, b"{}") == []
