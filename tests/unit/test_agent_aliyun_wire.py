"""The reference device's own side of the Alibaba protocol reads what the server's
codec writes, and the RPC client signs as the server checks: written apart, they
agree."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import get_args

import pytest

from otahub.agent.aliyun_rpc import signature
from otahub.agent.aliyun_wire import (
    FrameError,
    ProgressFailure,
    TopicKind,
    crc16_arc,
    ota_topic,
    parse_download_reply,
)
from otahub.aliyun.devices import codec
from otahub.aliyun.protocol.signature import sign, string_to_sign

REQUEST = codec.DownloadRequest(
    id="7", file_token="default", stream_id=1, file_id=1, size=256, offset=512
)


@pytest.mark.parametrize("kind", get_args(TopicKind))
def test_the_device_names_the_topics_the_server_parses(kind: TopicKind) -> None:
    topic = ota_topic(kind, "a1Prod", "dev-1")
    assert topic == codec.build_topic(kind, "a1Prod", "dev-1")
    assert codec.parse_topic(topic) == codec.Topic(kind, "a1Prod", "dev-1")


def test_a_name_that_cannot_be_a_topic_segment_is_refused() -> None:
    with pytest.raises(ValueError, match="topic segment"):
        ota_topic("inform", "a1Prod", "dev/1")


def test_the_failure_steps_are_the_servers() -> None:
    assert {f.name: f.value for f in ProgressFailure} == {
        f.name: f.value for f in codec.ProgressFailure
    }


@pytest.mark.parametrize("size", [0, 1, 255, 5120])
def test_the_crc_is_the_servers(size: int) -> None:
    data = os.urandom(size)
    assert crc16_arc(data) == codec.crc16_arc(data)
    assert crc16_arc(b"123456789") == 0xBB3D  # CRC-16/ARC's check value


def test_the_device_reads_the_servers_reply_and_refusal_frames() -> None:
    block = os.urandom(256)
    reply = parse_download_reply(codec.build_download_reply(REQUEST, file_length=9000, block=block))
    assert reply.block == block
    assert reply.header["data"] == {
        "fileToken": "default",
        "fileLength": 9000,
        "bSize": 256,
        "bOffset": 512,
    }
    refusal = parse_download_reply(codec.build_download_error("7", 404, "no such file"))
    assert (refusal.header, refusal.block) == ({"id": "7", "code": 404, "msg": "no such file"}, b"")


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f[:3],  # too short
        lambda f: f[:40],  # shorter than its header length
        lambda f: f[:-1] + bytes([f[-1] ^ 1]),  # CRC
        lambda f: f[:-3] + f[-2:],  # a byte of the block lost: bSize
        lambda f: f[:2] + b"[" + f[3:],  # header not JSON
    ],
)
def test_a_damaged_frame_is_refused(damage: Callable[[bytes], bytes]) -> None:
    frame = codec.build_download_reply(REQUEST, file_length=9000, block=b"x" * 256)
    with pytest.raises(FrameError):
        parse_download_reply(damage(frame))


def test_the_client_signs_as_the_server_checks() -> None:
    params = {
        "Action": "CreateOTAFirmware",
        "SignatureType": "",
        "Name": "fw 1.0 ü/中*~",
        "Signature": "left out",
    }
    expected = sign(string_to_sign("POST", params), "secret")
    assert signature("POST", params, "secret") == expected
    assert signature("post", params, "secret") == expected
