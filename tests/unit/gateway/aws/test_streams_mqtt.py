"""MQTT file streams as AWS's device clients use them."""

from __future__ import annotations

import base64
import json
from typing import Any

import cbor2

from otahub.core.entities import Device
from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.gateway.aws.streams_mqtt import StreamTopics

FILE = bytes(range(256)) * 100 + b"tail"  # 100 blocks of 256 bytes and a short one


async def read_range(key: str, start: int, length: int) -> bytes:
    assert key == "blobs/fw"
    return FILE[start : start + length]


async def setup(services: Services) -> tuple[Device, StreamTopics]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "t1")
    await services.streams.create(
        tenant.id, "s1", [StreamFile(0, "blobs/fw", len(FILE), {})], description="fw 2"
    )
    return thing, StreamTopics(services, read_range)


T = "$aws/things/t1/streams/s1/"


def cb(out: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = cbor2.loads(out.payload)
    return decoded


async def test_describe_json_and_cbor(services: Services) -> None:
    thing, streams = await setup(services)
    [d] = await streams.handle(thing, T + "describe/json", b'{"c":"tok"}')
    assert d.topic == T + "description/json"
    assert json.loads(d.payload) == {
        "c": "tok",
        "s": 1,
        "d": "fw 2",
        "r": [{"f": 0, "z": len(FILE)}],
    }
    [d] = await streams.handle(thing, T + "describe/cbor", cbor2.dumps({"c": "x"}))
    assert cb(d)["r"] == [{"f": 0, "z": len(FILE)}]


async def test_get_by_offset_and_count_json(services: Services) -> None:
    thing, streams = await setup(services)
    out = await streams.handle(thing, T + "get/json", b'{"s":1,"f":0,"l":256,"o":99,"n":5}')
    assert [o.topic for o in out] == [T + "data/json"] * 2  # block 99 and the short 100
    blocks = [json.loads(o.payload) for o in out]
    assert [(b["i"], b["l"]) for b in blocks] == [(99, 256), (100, 4)]
    assert base64.b64decode(blocks[1]["p"]) == b"tail"


async def test_bitmap_lsb_first_and_n_caps_it(services: Services) -> None:
    thing, streams = await setup(services)
    req = {"c": "rdy", "f": 0, "l": 256, "o": 20, "b": bytes([0x13, 0x00, 0x80]), "n": 10}
    out = await streams.handle(thing, T + "get/cbor", cbor2.dumps(req))
    got = [cb(o) for o in out]
    assert [g["i"] for g in got] == [20, 21, 24, 43]
    assert got[0]["p"] == FILE[20 * 256 : 21 * 256] and got[0]["c"] == "rdy"
    # The embedded C client sends junk "MQ==" with n=1: exactly block o comes back.
    junk = {"c": "rdy", "f": 0, "l": 256, "o": 7, "b": b"MQ==", "n": 1}
    [one] = await streams.handle(thing, T + "get/cbor", cbor2.dumps(junk))
    assert cb(one)["i"] == 7


async def test_request_caps_at_128_kib(services: Services) -> None:
    thing, streams = await setup(services)
    out = await streams.handle(thing, T + "get/json", b'{"f":0,"l":256,"o":0,"n":1000}')
    assert len(out) == 101  # the whole file is under 128 KiB


async def test_rejections(services: Services) -> None:
    thing, streams = await setup(services)

    async def code(topic: str, payload: bytes) -> str:
        [o] = await streams.handle(thing, topic, payload)
        assert "/rejected/" in o.topic
        body = cbor2.loads(o.payload) if topic.endswith("cbor") else json.loads(o.payload)
        return str(body["o"])

    assert await code(T + "get/json", b'{"f":0,"l":100}') == "BlockSizeOutOfBounds"
    assert await code(T + "get/json", b'{"f":0,"l":256,"o":99999}') == "OffsetOutOfBounds"
    assert await code(T + "get/json", b'{"f":0,"l":256,"o":101}') == "OffsetOutOfBounds"
    assert await code(T + "get/json", b'{"s":2,"f":0,"l":256}') == "VersionMismatch"
    assert await code(T + "get/json", b'{"f":9,"l":256}') == "ResourceNotFound"
    assert await code(T + "get/json", b"{nope") == "InvalidJson"
    assert await code(T + "get/cbor", b"\xff\xff") == "InvalidCbor"
    assert (
        await code(T + "get/json", json.dumps({"c": "x" * 65, "f": 0, "l": 256}).encode())
        == "InvalidRequest"
    )
    assert await code("$aws/things/t1/streams/zz/describe/json", b"{}") == "ResourceNotFound"
    assert await code(T + "get/json", b'{"f":0,"l":256,"b":"zz"}') == "InvalidRequest"
