"""Stream windows through the real Mosquitto (otahub as its client): a window of
blocks answered completely and in order, at the QoS of the request; bitmap
requests; an error answer for a bad request."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import cbor2
import pytest

from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.runtime import device_bridge
from tests.conftest import need_service
from tests.integration.mosquitto import gateway_on_mosquitto

pytestmark = pytest.mark.mosquitto

BLOCK = 4096
FILE = os.urandom(100 * BLOCK + 123)  # 100 blocks and a short one


async def read_range(key: str, start: int, length: int) -> bytes:
    assert key == "blobs/fw"
    return FILE[start : start + length]


@pytest.fixture
async def thing(services: Services) -> AsyncIterator[str]:
    """A thing and a stream `fw` of FILE, otahub on Mosquitto; yields the thing."""
    need_service("Mosquitto", "127.0.0.1", 1883)
    tenant = await services.accounts.tenant("111111111111")
    name = f"thing-{uuid.uuid4().hex[:8]}"
    await services.registry.create_device(tenant.id, name)
    await services.streams.create(tenant.id, "fw", [StreamFile(0, "blobs/fw", len(FILE), {})])
    bridge = device_bridge(services, services.ctx.clock, read_range, default_tenant=tenant.id)
    async with gateway_on_mosquitto(bridge):
        yield name


async def answers(device: aiomqtt.Client, count: int) -> list[tuple[str, int, dict[str, Any]]]:
    """The next `count` messages: (topic's last two levels, QoS, decoded body)."""
    out = []
    async with asyncio.timeout(10):
        async for message in device.messages:
            assert isinstance(message.payload, bytes)
            topic = "/".join(str(message.topic).split("/")[-2:])
            out.append((topic, message.qos, cbor2.loads(message.payload)))
            if len(out) == count:
                return out
    raise AssertionError("unreachable")


def block(i: int) -> bytes:
    return FILE[i * BLOCK : (i + 1) * BLOCK]


@pytest.mark.parametrize("qos", [0, 1])
async def test_windows_arrive_whole_and_in_order_at_the_requests_qos(thing: str, qos: int) -> None:
    prefix = f"$aws/things/{thing}/streams/fw"
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=thing) as device:
        await device.subscribe(f"{prefix}/data/cbor", qos=1)
        await device.subscribe(f"{prefix}/rejected/cbor", qos=1)
        # window after window, the last one past the end of the file: all of FILE
        for offset in range(0, 101, 32):
            request = {"c": "rdy", "f": 0, "l": BLOCK, "o": offset, "n": 32}
            await device.publish(f"{prefix}/get/cbor", cbor2.dumps(request), qos=qos)
            wanted = list(range(offset, min(offset + 32, 101)))
            got = await answers(device, len(wanted))
            assert [(t, q) for t, q, _ in got] == [("data/cbor", qos)] * len(wanted)
            assert [b["i"] for _, _, b in got] == wanted
            assert [b["p"] for _, _, b in got] == [block(i) for i in wanted]
            assert [b["l"] for _, _, b in got] == [len(block(i)) for i in wanted]
            assert {(b["f"], b["c"]) for _, _, b in got} == {(0, "rdy")}


async def test_a_bitmap_request_gets_exactly_its_blocks(thing: str) -> None:
    prefix = f"$aws/things/{thing}/streams/fw"
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=thing) as device:
        await device.subscribe(f"{prefix}/data/cbor", qos=0)
        # blocks 20, 21, 24 and 43 (AWS's own example), the OTA agent's request
        request = {"c": "rdy", "f": 0, "l": BLOCK, "o": 20, "b": b"\x13\x00\x80", "n": 32}
        await device.publish(f"{prefix}/get/cbor", cbor2.dumps(request), qos=0)
        got = await answers(device, 4)
        assert [b["i"] for _, _, b in got] == [20, 21, 24, 43]
        assert [b["p"] for _, _, b in got] == [block(i) for i in [20, 21, 24, 43]]
        # `n` caps what the bitmap asks for
        request = {"c": "rdy", "f": 0, "l": BLOCK, "o": 7, "b": b"MQ==", "n": 1}
        await device.publish(f"{prefix}/get/cbor", cbor2.dumps(request), qos=0)
        [(_, _, only)] = await answers(device, 1)
        assert only["i"] == 7 and only["p"] == block(7)


async def test_a_bad_request_gets_its_error_after_good_ones(thing: str) -> None:
    prefix = f"$aws/things/{thing}/streams/fw"
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=thing) as device:
        await device.subscribe(f"{prefix}/data/cbor", qos=1)
        await device.subscribe(f"{prefix}/rejected/cbor", qos=1)
        good = cbor2.dumps({"f": 0, "l": BLOCK, "o": 0, "n": 2})
        await device.publish(f"{prefix}/get/cbor", good, qos=0)
        bad = cbor2.dumps({"c": "bad", "f": 0, "l": 10, "o": 0, "n": 2})
        await device.publish(f"{prefix}/get/cbor", bad, qos=0)
        got = await answers(device, 3)
        assert sorted(b.get("i", -1) for t, _, b in got if t == "data/cbor") == [0, 1]
        [error] = [b for t, _, b in got if t == "rejected/cbor"]
        assert error["o"] == "BlockSizeOutOfBounds" and error["c"] == "bad"
