"""MQTT file streams (specs/aws.md §5): the limits, defaults and formats the first
tests do not reach — block size and count bounds, the bitmap limit, JSON hex
bitmaps, the 128 KiB cap on a large file, versions after UpdateStream, topics."""

from __future__ import annotations

import base64
import json
from typing import Any

import cbor2

from otahub.aws.devices.streams_mqtt import StreamTopics
from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.domain.entities import Device

BIG = bytes(i % 251 for i in range(300 * 1024 + 100))  # over one request's 128 KiB
T = "$aws/things/t2/streams/big/"


async def read_range(key: str, start: int, length: int) -> bytes:
    assert key == "blobs/big"
    return BIG[start : start + length]


async def setup(services: Services) -> tuple[Device, StreamTopics]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "t2")
    await services.streams.create(tenant.id, "big", [StreamFile(3, "blobs/big", len(BIG), {})])
    return thing, StreamTopics(services, read_range)


def cb(out: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = cbor2.loads(out.payload)
    return decoded


async def rejected(streams: StreamTopics, thing: Device, topic: str, req: Any) -> dict[str, Any]:
    payload = cbor2.dumps(req) if topic.endswith("cbor") else json.dumps(req).encode()
    [o] = await streams.handle(thing, topic, payload)
    fmt = topic.rsplit("/", 1)[1]
    assert o.topic == T + f"rejected/{fmt}", o.topic
    body: dict[str, Any] = cb(o) if fmt == "cbor" else json.loads(o.payload)
    return body


async def test_bounds(services: Services) -> None:
    thing, streams = await setup(services)
    get = T + "get/json"
    assert (await rejected(streams, thing, get, {"f": 3, "l": 131_073}))["o"] == (
        "BlockSizeOutOfBounds"
    )
    assert (await rejected(streams, thing, get, {"f": 3, "l": 255}))["o"] == (
        "BlockSizeOutOfBounds"
    )
    assert (await rejected(streams, thing, get, {"f": 3, "l": 256, "n": 98_305}))["o"] == (
        "BlockCountLimitExceeded"
    )
    assert (await rejected(streams, thing, get, {"f": 3, "l": 256, "o": -1}))["o"] == (
        "OffsetOutOfBounds"
    )
    big_bitmap = {"c": "k", "f": 3, "l": 256, "b": b"\xff" * 12_288}
    body = await rejected(streams, thing, T + "get/cbor", big_bitmap)
    assert (body["o"], body["c"]) == ("BlockBitmapLimitExceeded", "k")  # token echoed
    assert (await rejected(streams, thing, get, {"f": "3", "l": 256}))["o"] == "InvalidRequest"
    [bad] = await streams.handle(thing, T + "fetch/json", b"{}")
    assert bad.topic == T + "rejected/json" and json.loads(bad.payload)["o"] == "InvalidTopic"


async def test_one_request_returns_at_most_128_kib(services: Services) -> None:
    thing, streams = await setup(services)
    out = await streams.handle(thing, T + "get/json", b'{"f":3,"l":4096,"o":0,"n":100}')
    assert len(out) == 32  # 32 x 4096 = 128 KiB; the device asks again from block 32
    last = json.loads(out[-1].payload)
    assert last["i"] == 31 and base64.b64decode(last["p"]) == BIG[31 * 4096 : 32 * 4096]
    # Without n or b: as many blocks as fit in 128 KiB.
    assert len(await streams.handle(thing, T + "get/json", b'{"f":3,"l":65536}')) == 2
    # The last block is short and says so in `l`.
    tail = await streams.handle(thing, T + "get/cbor", cbor2.dumps({"f": 3, "l": 4096, "o": 74}))
    assert [(cb(o)["i"], cb(o)["l"]) for o in tail] == [(74, 4096), (75, len(BIG) - 75 * 4096)]
    assert isinstance(cb(tail[0])["p"], bytes) and cb(tail[0])["f"] == 3


async def test_bitmaps(services: Services) -> None:
    thing, streams = await setup(services)
    # JSON carries the bitmap as hex (AWS's doc example, 0x-prefixed or not).
    for b in ("0x130080", "130080"):
        req = json.dumps({"f": 3, "l": 256, "o": 20, "b": b, "n": 10}).encode()
        out = await streams.handle(thing, T + "get/json", req)
        assert [json.loads(o.payload)["i"] for o in out] == [20, 21, 24, 43]
    # FreeRTOS's OTA agent: every missing block marked, one block a request.
    missing = bytes([0b11111100]) + b"\xff" * 9  # blocks 0 and 1 already received
    req = {"c": "rdy", "f": 3, "l": 4096, "o": 0, "b": missing, "n": 1}
    [one] = await streams.handle(thing, T + "get/cbor", cbor2.dumps(req))
    assert (cb(one)["i"], cb(one)["c"]) == (2, "rdy")
    # The bitmap never reaches past the file's last block.
    req = {"f": 3, "l": 131_072, "o": 0, "b": b"\xff", "n": 8}
    out = await streams.handle(thing, T + "get/cbor", cbor2.dumps(req))
    assert [cb(o)["i"] for o in out] == [0]  # 128 KiB cap: one 128 KiB block


async def test_version_follows_update_stream(services: Services) -> None:
    thing, streams = await setup(services)
    tenant = await services.accounts.tenant("123456789012")
    [d] = await streams.handle(thing, T + "describe/cbor", b"")
    assert cb(d)["s"] == 1 and cb(d)["r"] == [{"f": 3, "z": len(BIG)}]
    await services.streams.update(tenant.id, "big", description="v2")
    [d] = await streams.handle(thing, T + "describe/json", b"{}")
    assert json.loads(d.payload)["s"] == 2 and json.loads(d.payload)["d"] == "v2"
    body = await rejected(streams, thing, T + "get/json", {"s": 1, "f": 3, "l": 256})
    assert body["o"] == "VersionMismatch"
    ok = await streams.handle(thing, T + "get/json", b'{"s":2,"f":3,"l":256,"n":1}')
    assert json.loads(ok[0].payload)["i"] == 0
