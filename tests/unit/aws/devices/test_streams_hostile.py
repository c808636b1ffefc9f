"""Hostile requests on the MQTT file stream topics (issue 18): each is answered on
`rejected/{fmt}` with the Streams code, in the request's encoding, without a
traceback, and the device still gets its blocks afterwards."""

from __future__ import annotations

import json
import logging
from typing import Any

import cbor2
import pytest

from otahub.aws.devices.streams_mqtt import MAX_BITMAP
from otahub.core.services import Services
from otahub.core.services.streams import StreamFile
from otahub.domain.entities import Device
from otahub.gateway.bridge import DeviceBridge
from otahub.runtime import device_bridge

FILE = bytes(range(256)) * 8
T = "$aws/things/t1/streams/s1/"


async def read_range(key: str, start: int, length: int) -> bytes:
    return FILE[start : start + length]


async def setup(services: Services) -> tuple[Device, DeviceBridge]:
    tenant = await services.accounts.tenant("123456789012")
    thing = await services.registry.create_device(tenant.id, "t1")
    await services.streams.create(tenant.id, "s1", [StreamFile(0, "fw", len(FILE), {})])
    bridge = device_bridge(services, services.ctx.clock, read_range, default_tenant=tenant.id)
    return thing, bridge


def decode(topic: str, payload: bytes) -> dict[str, Any]:
    body: dict[str, Any] = cbor2.loads(payload) if topic.endswith("cbor") else json.loads(payload)
    return body


async def code(bridge: DeviceBridge, thing: Device, topic: str, payload: bytes) -> str:
    [out] = await bridge.on_message(thing, topic, payload)
    fmt = topic.rsplit("/", 1)[1]
    assert out.topic == T + "rejected/" + fmt, out.topic
    body = decode(out.topic, out.payload)
    assert body["m"]
    return str(body["o"])


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def nested_cbor(depth: int) -> bytes:
    return cbor2.dumps({"f": 0, "l": 256}).replace(b"\x00", b"\x81" * depth + b"\x00", 1)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"f":0,"l":256,"c":' + b"[" * 5000 + b"]" * 5000 + b"}", "InvalidJson"),
        (b'{"f":0,"l":256,"c":' + b"[" * 100 + b"]" * 100 + b"}", "InvalidJson"),
        (b'{"f":0,"l":NaN}', "InvalidJson"),
        (b'{"f":0,"l":Infinity}', "InvalidJson"),
        (b'{"f":0,"l":256,"o":' + str(2**64).encode() + b"}", "InvalidRequest"),
        (b'{"f":0,"l":' + str(2**70).encode() + b"}", "InvalidRequest"),
        (b'{"f":0,"l":256,"c":"a\\u0000b"}', "InvalidRequest"),
        (b'{"f":0,"l":1e400}', "InvalidRequest"),
        (b'{"f":0,"l":256,"b":"0x' + b"ff" * MAX_BITMAP + b'"}', "BlockBitmapLimitExceeded"),
        (b'{"f":0,"l":256,"b":"\xc3\xa9\xc3\xa9"}', "InvalidRequest"),
        (b'{"f":0,"l":256,"b":"0x1"}', "InvalidRequest"),
    ],
    ids=lambda case: case[:24].decode("ascii", "replace") if isinstance(case, bytes) else None,
)
async def test_json_requests_out_of_limits(
    services: Services, payload: bytes, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge = await setup(services)
    assert await code(bridge, thing, T + "get/json", payload) == expected
    no_traceback(caplog)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x81" * 5000 + b"\x00", "InvalidCbor"),
        (b"\xa1\x61c" + b"\x81" * 300 + b"\x00", "InvalidCbor"),
        (nested_cbor(100), "InvalidCbor"),
        (b"\xc6" * 5000 + b"\x00", "InvalidCbor"),
        # a map that holds itself (shared references): a cycle nothing may walk
        (b"\xa1\x61c\xd8\x1c\x81\xd8\x1d\x00", "InvalidCbor"),
        (cbor2.dumps({"f": 0, "l": 2**70}), "InvalidCbor"),  # a bignum (tag 2)
        (cbor2.dumps({"f": 0, "l": -(2**70)}), "InvalidCbor"),
        (cbor2.dumps({"f": 0, "l": 256, "c": cbor2.CBORTag(1, 10**30)}), "InvalidCbor"),
        (cbor2.dumps({"f": 0, "l": 256, "c": cbor2.CBORTag(9999, 1)}), "InvalidCbor"),
        (b"\xa1\x80\x00", "InvalidCbor"),  # an array as a key
        (b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff", "InvalidCbor"),  # a length past the data
        (cbor2.dumps({"f": 0, "l": 2**64 - 1}), "BlockSizeOutOfBounds"),
        (cbor2.dumps({"f": 0, "l": 256, "o": 2**64 - 1}), "OffsetOutOfBounds"),
        (cbor2.dumps({"f": 0, "l": 256, "n": -(2**64)}), "BlockCountLimitExceeded"),
        (cbor2.dumps({"f": 2**64 - 1, "l": 256}), "ResourceNotFound"),
        (cbor2.dumps({"f": 0, "l": float("nan")}), "InvalidRequest"),
        (cbor2.dumps({"f": 0, "l": 256, "b": "not bytes"}), "InvalidRequest"),
        (cbor2.dumps({"f": 0, "l": 256, "b": b"\x01" * MAX_BITMAP}), "BlockBitmapLimitExceeded"),
        (cbor2.dumps({"f": 0, "l": 256, "c": "t" * 65}), "InvalidRequest"),
        (cbor2.dumps([1, 2, 3]), "InvalidRequest"),
    ],
    ids=lambda case: case[:12].hex() if isinstance(case, bytes) else None,
)
async def test_cbor_requests_out_of_limits(
    services: Services, payload: bytes, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge = await setup(services)
    assert await code(bridge, thing, T + "get/cbor", payload) == expected
    no_traceback(caplog)


async def test_no_tag_is_decoded(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    """Every tag, cbor2's own semantic ones included, is refused."""
    thing, bridge = await setup(services)
    for tag in [*range(300), 1004, 43000, 55799, 2**32, 2**64 - 1]:
        payload = cbor2.dumps({"f": 0, "l": 256, "c": cbor2.CBORTag(tag, 0)})
        assert await code(bridge, thing, T + "get/cbor", payload) == "InvalidCbor", tag
    no_traceback(caplog)


@pytest.mark.parametrize(
    "stream_ref", ["a\u0000b", "s" * 129, "bad id", "é"], ids=["nul", "long", "space", "accent"]
)
async def test_stream_ids_no_stream_can_have_are_refused(
    services: Services, stream_ref: str, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge = await setup(services)
    topic = f"$aws/things/t1/streams/{stream_ref}/describe/json"
    [out] = await bridge.on_message(thing, topic, b"{}")
    assert out.topic == f"$aws/things/t1/streams/{stream_ref}/rejected/json"
    assert json.loads(out.payload)["o"] == "InvalidRequest"
    no_traceback(caplog)


async def test_blocks_are_served_after_a_burst_of_bad_requests(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    thing, bridge = await setup(services)
    burst = [
        (T + "get/cbor", b"\x81" * 100_000),
        (T + "get/cbor", b"\xa1\x61c\xd8\x1c\x81\xd8\x1d\x00"),
        (T + "get/json", b"[" * 100_000),
        (T + "get/json", b'{"f":0,"l":' + str(2**64).encode() + b"}"),
        (T + "describe/json", b'{"c":NaN}'),
    ]
    for topic, payload in burst * 20:
        [out] = await bridge.on_message(thing, topic, payload)
        assert "/rejected/" in out.topic
    good = cbor2.dumps({"c": "ok", "f": 0, "l": 256})
    blocks = await bridge.on_message(thing, T + "get/cbor", good)
    assert [decode(o.topic, o.payload)["i"] for o in blocks] == list(range(8))
    assert all(o.topic == T + "data/cbor" for o in blocks)
    no_traceback(caplog)


@pytest.mark.parametrize("version", [float("inf"), float("nan"), 1.5, "1", True])
async def test_a_stream_version_that_is_no_integer_is_refused(
    services: Services, version: Any, caplog: pytest.LogCaptureFixture
) -> None:
    thing, bridge = await setup(services)
    payload = cbor2.dumps({"s": version})
    assert await code(bridge, thing, T + "describe/cbor", payload) == "InvalidRequest"
    no_traceback(caplog)
