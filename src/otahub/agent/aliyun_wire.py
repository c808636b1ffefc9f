"""The Alibaba OTA topics as a device speaks them: their names, the failure steps it
reports, and its reading of an MQTT download reply frame.

The device's own side of the protocol, written apart from the server's codec, so
that a reference device checks the server rather than agreeing with it by sharing
its code.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

DEFAULT_MODULE = "default"

TopicKind = Literal[
    "inform",
    "upgrade",
    "progress",
    "firmware_get",
    "firmware_get_reply",
    "file_download",
    "file_download_reply",
]

_SYS_SUFFIXES: dict[TopicKind, str] = {
    "firmware_get": "thing/ota/firmware/get",
    "firmware_get_reply": "thing/ota/firmware/get_reply",
    "file_download": "thing/file/download",
    "file_download_reply": "thing/file/download_reply",
}


class FrameError(ValueError):
    """A download reply frame the device cannot use."""


class ProgressFailure(IntEnum):
    """The negative steps of `/ota/device/progress`."""

    UPGRADE_FAILED = -1
    DOWNLOAD_FAILED = -2
    VERIFY_FAILED = -3
    FLASH_FAILED = -4


def ota_topic(kind: TopicKind, product_key: str, device_name: str) -> str:
    for value, what in ((product_key, "product key"), (device_name, "device name")):
        if not value or any(c in value for c in "/+#\x00"):
            raise ValueError(f"{what} {value!r} cannot be a topic segment")
    suffix = _SYS_SUFFIXES.get(kind)
    if suffix is None:
        return f"/ota/device/{kind}/{product_key}/{device_name}"
    return f"/sys/{product_key}/{device_name}/{suffix}"


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected, init 0, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True)
class DownloadReply:
    header: dict[str, Any]
    block: bytes


def parse_download_reply(frame: bytes) -> DownloadReply:
    """`thing/file/download_reply`: 2-byte big-endian header length, JSON header,
    the block, and its CRC-16/ARC as the device's native (little-endian) uint16."""
    if len(frame) < 4:
        raise FrameError("frame too short")
    (head_len,) = struct.unpack(">H", frame[:2])
    if len(frame) < 2 + head_len + 2:
        raise FrameError("frame shorter than its header length")
    try:
        header = json.loads(frame[2 : 2 + head_len])
    except ValueError as exc:
        raise FrameError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError("header is not a JSON object")
    block = frame[2 + head_len : -2]
    data = header.get("data")
    size = data.get("bSize") if isinstance(data, dict) else None
    if header.get("code") == 200 and size != len(block):
        raise FrameError("bSize does not match the block")
    (crc,) = struct.unpack("<H", frame[-2:])
    if crc != crc16_arc(block):
        raise FrameError("CRC mismatch")
    return DownloadReply(header, block)
