"""QoS 0 PUBLISH packets framed by otahub (gateway/frames.py) as MQTT frames them:
read back by paho's own parser's rules, for MQTT 3.1.1 and 5."""

from __future__ import annotations

import pytest

from otahub.gateway.frames import publish_frames, remaining_length
from otahub.gateway.messages import Outgoing


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def parse(data: bytes, v5: bool) -> list[tuple[int, str, bytes]]:
    out, at = [], 0
    while at < len(data):
        first = data[at]
        length, at = read_varint(data, at + 1)
        end = at + length
        tlen = int.from_bytes(data[at : at + 2], "big")
        topic = data[at + 2 : at + 2 + tlen].decode()
        body = at + 2 + tlen
        if v5:
            props, body = read_varint(data, body)
            assert props == 0
        out.append((first, topic, data[body:end]))
        at = end
    return out


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_152, b"\x80\x80\x80\x01"),
    ],
)
def test_remaining_length_is_mqtts_variable_byte_integer(n: int, encoded: bytes) -> None:
    assert remaining_length(n) == encoded


@pytest.mark.parametrize("v5", [False, True])
def test_a_window_is_framed_back_to_back_in_order(v5: bool) -> None:
    messages = [
        Outgoing("$aws/things/t/streams/s/data/cbor", bytes([i]) * (100 + 4000 * i), qos=0)
        for i in range(5)
    ] + [Outgoing("other/topic", b"", qos=0)]
    frames = publish_frames(messages, v5=v5)
    parsed = parse(frames, v5)
    assert [(f, t, p) for f, t, p in parsed] == [(0x30, m.topic, m.payload) for m in messages]
