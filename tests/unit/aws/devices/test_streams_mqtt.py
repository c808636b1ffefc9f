"""MQTT file streams as AWS's device clients use them."""

from __future__ import annotations

import base64
import json
from typing import Any

import cbor2
import pytest

from otahub.aws.devices.streams_mqtt import StreamTopics
from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.domain.entities import Device
from otahub.gateway.recent import Recent

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


async def test_a_window_is_one_read_and_a_bitmap_one_read_per_run(services: Services) -> None:
    thing, _ = await setup(services)
    reads: list[tuple[int, int]] = []

    async def counting(key: str, start: int, length: int) -> bytes:
        reads.append((start, length))
        return FILE[start : start + length]

    streams = StreamTopics(services, counting)
    out = await streams.handle(thing, T + "get/cbor", cbor2.dumps({"f": 0, "l": 256, "o": 90}))
    assert [cb(o)["i"] for o in out] == list(range(90, 101))
    assert [cb(o)["p"] for o in out] == [FILE[i * 256 : (i + 1) * 256] for i in range(90, 101)]
    assert cb(out[-1])["l"] == 4  # the short last block
    assert reads == [(90 * 256, len(FILE) - 90 * 256)]
    reads.clear()
    # blocks 0, 1, 2 and 5, 6 of offset 10: two runs, two reads
    req = {"f": 0, "l": 256, "o": 10, "b": bytes([0b0110_0111]), "n": 32}
    out = await streams.handle(thing, T + "get/cbor", cbor2.dumps(req))
    assert [cb(o)["i"] for o in out] == [10, 11, 12, 15, 16]
    assert [cb(o)["p"] for o in out] == [
        FILE[i * 256 : (i + 1) * 256] for i in [10, 11, 12, 15, 16]
    ]
    assert reads == [(10 * 256, 3 * 256), (15 * 256, 2 * 256)]


async def test_blocks_go_at_the_qos_of_the_request_errors_at_qos_1(services: Services) -> None:
    thing, streams = await setup(services)
    req = cbor2.dumps({"f": 0, "l": 256, "n": 3})
    assert [o.qos for o in await streams.handle(thing, T + "get/cbor", req, 0)] == [0, 0, 0]
    assert [o.qos for o in await streams.handle(thing, T + "get/cbor", req, 1)] == [1, 1, 1]
    assert [o.qos for o in await streams.handle(thing, T + "get/cbor", req, 2)] == [1, 1, 1]
    assert [o.qos for o in await streams.handle(thing, T + "get/cbor", req)] == [1, 1, 1]
    [bad] = await streams.handle(thing, T + "get/cbor", cbor2.dumps({"f": 0, "l": 1}), 0)
    assert bad.topic.endswith("/rejected/cbor") and bad.qos == 1
    [desc] = await streams.handle(thing, T + "describe/cbor", b"", 0)
    assert desc.qos == 1


async def test_a_stream_is_read_once_for_a_run_of_requests_and_changes_seen_at_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    thing, streams = await setup(services)
    tenant = await services.accounts.tenant("123456789012")
    gets = 0
    get = services.streams.get

    async def counting(tenant_id: int, ref: str) -> Any:
        nonlocal gets
        gets += 1
        return await get(tenant_id, ref)

    monkeypatch.setattr(services.streams, "get", counting)
    for offset in range(0, 100, 10):
        req = cbor2.dumps({"f": 0, "l": 256, "o": offset, "n": 10})
        assert len(await streams.handle(thing, T + "get/cbor", req)) == 10
    assert gets == 1
    # a change through this process: the next request reads the stream again
    await services.streams.update(
        tenant.id, "s1", files=[StreamFile(0, "blobs/fw", 512, {})], description="short"
    )
    gets = 0  # (the update read it too)
    req = cbor2.dumps({"f": 0, "l": 256, "o": 0, "n": 10})
    assert [cb(o)["i"] for o in await streams.handle(thing, T + "get/cbor", req)] == [0, 1]
    assert gets == 1
    # a request naming another version than the one at hand reads it again too
    body = await code(streams, thing, {"s": 1, "f": 0, "l": 256})
    assert body == "VersionMismatch" and gets == 2
    # and a stream gone is gone at once
    await services.streams.delete(tenant.id, "s1")
    assert await code(streams, thing, {"f": 0, "l": 256}) == "ResourceNotFound"


async def code(streams: StreamTopics, thing: Device, request: dict[str, Any]) -> str:
    [out] = await streams.handle(thing, T + "get/cbor", cbor2.dumps(request))
    assert out.topic.endswith("/rejected/cbor")
    return str(cb(out)["o"])


def test_recent_values_expire_and_follow_their_tag() -> None:
    recent: Recent[str] = Recent(60, size=2)
    recent.put("a", "A", 1)
    assert recent.get("a", 1) == "A"
    assert recent.get("a", 2) is None  # changed since: dropped
    assert recent.get("a", 1) is None
    recent.put("a", "A")
    recent.put("b", "B")
    recent.put("c", "C")  # the oldest goes
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == (None, "B", "C")
    expired: Recent[str] = Recent(-1)
    expired.put("a", "A")
    assert expired.get("a") is None
