"""Alibaba device-side OTA messages: topics, inbound parsing, outbound payloads, and
the binary MQTT file-download frames (specs §5.3, §5.4, §5.6). Pure functions.

Inbound parsing is lenient on purpose: the C SDK leaves trailing commas in objects,
ids come as strings or numbers, and `step` as a string or a number (specs §7.11).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from otahub.domain import limits

DEFAULT_MODULE = "default"
MessageId = str | int | None

MAX_MESSAGE = 64 * 1024  # bytes of one device message; OTA messages are well under 1 KiB
MAX_ID = 64  # characters of a message id sent as a string (Alibaba's are decimal numbers)
MAX_TOKEN = 64  # characters of a download's fileToken (the C SDK sends "default")
MAX_VERSION = 64  # characters of a reported version, as a firmware's DestVersion
MODULE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")  # CreateOTAModule's ModuleName


class CodecError(ValueError):
    """The payload or topic is not a message this codec understands."""


# ---------------------------------------------------------------- lenient JSON

_CLOSERS = frozenset("}]")
_TRAILING_COMMA = re.compile(r",\s*[}\]]")


def strip_trailing_commas(text: str) -> str:
    """Drop a comma that is followed (after whitespace) by `}` or `]`, outside strings."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma: int | None = None
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in _CLOSERS and pending_comma is not None:
            del out[pending_comma]
        if ch == ",":
            pending_comma = len(out)
        elif not ch.isspace():
            pending_comma = None
        if ch == '"':
            in_string = True
        out.append(ch)
    return "".join(out)


def loads_lenient(payload: bytes | str) -> dict[str, Any]:
    """A device payload as a JSON object within `otahub.domain.limits`; tolerates
    trailing commas and a C string's NUL."""
    if len(payload) > MAX_MESSAGE:
        raise CodecError(f"payload is longer than {MAX_MESSAGE} bytes")
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CodecError(f"payload is not UTF-8: {e}") from None
    text = payload.strip().rstrip("\x00").strip()
    if _TRAILING_COMMA.search(text):  # the character walk only where it may find one
        text = strip_trailing_commas(text)
    try:
        value = limits.loads_json(text)
    except limits.Refused as e:
        raise CodecError(f"payload is not accepted JSON: {e}") from None
    if not isinstance(value, dict):
        raise CodecError("payload is not a JSON object")
    return value


# ---------------------------------------------------------------- topics

TopicKind = Literal[
    "inform",
    "upgrade",
    "progress",
    "firmware_get",
    "firmware_get_reply",
    "file_download",
    "file_download_reply",
]

_OTA_KINDS: dict[str, TopicKind] = {
    "inform": "inform",
    "upgrade": "upgrade",
    "progress": "progress",
}
_SYS_SUFFIXES: dict[str, TopicKind] = {
    "thing/ota/firmware/get": "firmware_get",
    "thing/ota/firmware/get_reply": "firmware_get_reply",
    "thing/file/download": "file_download",
    "thing/file/download_reply": "file_download_reply",
}
_SYS_BY_KIND = {kind: suffix for suffix, kind in _SYS_SUFFIXES.items()}

# What the server subscribes to (device -> cloud).
INBOUND_FILTERS = (
    "/ota/device/inform/+/+",
    "/ota/device/progress/+/+",
    "/sys/+/+/thing/ota/firmware/get",
    "/sys/+/+/thing/file/download",
)


@dataclass(frozen=True)
class Topic:
    kind: TopicKind
    product_key: str
    device_name: str

    def __str__(self) -> str:
        return build_topic(self.kind, self.product_key, self.device_name)


def _check_segment(value: str, what: str) -> None:
    if not value or any(c in value for c in "/+#\x00"):
        raise CodecError(f"{what} {value!r} cannot be a topic segment")


def build_topic(kind: TopicKind, product_key: str, device_name: str) -> str:
    _check_segment(product_key, "product key")
    _check_segment(device_name, "device name")
    if kind in _OTA_KINDS:
        return f"/ota/device/{kind}/{product_key}/{device_name}"
    return f"/sys/{product_key}/{device_name}/{_SYS_BY_KIND[kind]}"


def parse_topic(topic: str) -> Topic | None:
    """The OTA topic's kind and device, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 6 and parts[:3] == ["", "ota", "device"] and parts[3] in _OTA_KINDS:
        pk, dn = parts[4], parts[5]
        if pk and dn:
            return Topic(_OTA_KINDS[parts[3]], pk, dn)
        return None
    if len(parts) >= 6 and parts[:2] == ["", "sys"]:
        kind = _SYS_SUFFIXES.get("/".join(parts[4:]))
        if kind is not None and parts[2] and parts[3]:
            return Topic(kind, parts[2], parts[3])
    return None


# ---------------------------------------------------------------- inbound messages


def _message_id(message: Mapping[str, Any]) -> MessageId:
    value = message.get("id")
    if value is None or (isinstance(value, str) and len(value) <= MAX_ID):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # within 64 bits: loads_json saw to it
    raise CodecError(f"id must be an integer or a string of at most {MAX_ID} characters")


def request_id(payload: bytes | str) -> MessageId:
    """The id of a request refused for another reason, to answer it; None if none."""
    try:
        return _message_id(loads_lenient(payload))
    except CodecError:
        return None


def _params(message: Mapping[str, Any]) -> Mapping[str, Any]:
    params = message.get("params", {})
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise CodecError("params must be an object")
    return params


def _module(params: Mapping[str, Any]) -> str:
    module = params.get("module")
    if module is None or module == "":
        return DEFAULT_MODULE
    if not isinstance(module, str) or not MODULE_NAME.fullmatch(module):
        raise CodecError("module must be 1 to 64 of [A-Za-z0-9._-]")
    return module


def _int(value: Any, what: str) -> int:
    """An integer within 64 bits, sent as a number or as a decimal string."""
    try:
        if isinstance(value, str):
            return limits.parse_int(value, what)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return limits.check_int(value, what)
    except limits.Refused as e:
        raise CodecError(str(e)) from None
    raise CodecError(f"{what} must be an integer")


@dataclass(frozen=True)
class VersionReport:
    id: MessageId
    version: str
    module: str


def parse_inform(payload: bytes | str) -> VersionReport:
    """`/ota/device/inform`: `{"id":..,"params":{"version":"1.0.1","module":"MCU"}}`."""
    message = loads_lenient(payload)
    params = _params(message)
    version = params.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version:
        raise CodecError("params.version is missing")
    if len(version) > MAX_VERSION:
        raise CodecError(f"params.version is longer than {MAX_VERSION} characters")
    return VersionReport(_message_id(message), version, _module(params))


class ProgressFailure(IntEnum):
    UPGRADE_FAILED = -1
    DOWNLOAD_FAILED = -2
    VERIFY_FAILED = -3
    FLASH_FAILED = -4

    @property
    def meaning(self) -> str:
        return _FAILURE_MEANINGS[self]


_FAILURE_MEANINGS = {
    ProgressFailure.UPGRADE_FAILED: "upgrade failed",
    ProgressFailure.DOWNLOAD_FAILED: "download failed",
    ProgressFailure.VERIFY_FAILED: "verification failed",
    ProgressFailure.FLASH_FAILED: "flashing failed",
}


@dataclass(frozen=True)
class ProgressReport:
    id: MessageId
    step: int
    """0..100 percent done, or -1..-4 (see `failure`)."""
    desc: str
    module: str

    @property
    def failure(self) -> ProgressFailure | None:
        return ProgressFailure(self.step) if self.step < 0 else None

    @property
    def failed(self) -> bool:
        return self.step < 0


def parse_progress(payload: bytes | str) -> ProgressReport:
    """`/ota/device/progress`: `{"id":..,"params":{"step":"-1","desc":"..","module":".."}}`.

    Step 0 is accepted as "started" although Alibaba documents 1..100."""
    message = loads_lenient(payload)
    params = _params(message)
    if "step" not in params:
        raise CodecError("params.step is missing")
    step = _int(params["step"], "params.step")
    if not -4 <= step <= 100:
        raise CodecError(f"params.step {step} is outside -4..100")
    desc = params.get("desc")
    return ProgressReport(
        id=_message_id(message),
        step=step,
        desc=desc if isinstance(desc, str) else "" if desc is None else str(desc),
        module=_module(params),
    )


@dataclass(frozen=True)
class FirmwareQuery:
    id: MessageId
    module: str


def parse_firmware_get(payload: bytes | str) -> FirmwareQuery:
    """`thing/ota/firmware/get`: linkkit sends only `{"id":N,"params":{}}`."""
    message = loads_lenient(payload)
    return FirmwareQuery(_message_id(message), _module(_params(message)))


# ---------------------------------------------------------------- outbound payloads

_SIGN_METHODS = {"md5": ("Md5", 32), "sha256": ("SHA256", 64)}
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def device_sign_method(stored: str) -> str:
    """The spelling devices accept: `Md5` or `SHA256`, whatever the firmware stored."""
    try:
        return _SIGN_METHODS[stored.strip().lower().replace("-", "")][0]
    except KeyError:
        raise ValueError(f"unknown sign method {stored!r}") from None


def device_sign(stored_method: str, digest: str) -> str:
    """A lower-case hex digest of the right length for the method."""
    length = _SIGN_METHODS[stored_method.strip().lower().replace("-", "")][1]
    if len(digest) != length or not _HEX.match(digest):
        raise ValueError(f"{stored_method} digest must be {length} hex characters")
    return digest.lower()


@dataclass(frozen=True)
class PackageFile:
    name: str
    size: int
    url: str
    sign: str
    md5: str | None = None


@dataclass(frozen=True)
class UpgradeInfo:
    """What the push and the get_reply tell a device about one package."""

    version: str
    sign_method: str
    """As stored on the firmware (`MD5`, `SHA256`, any case)."""
    module: str = DEFAULT_MODULE
    url: str | None = None
    size: int | None = None
    sign: str | None = None
    md5: str | None = None
    is_diff: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    udi: str | None = None
    files: Sequence[PackageFile] = ()
    """Multi-file package: replaces url/size/sign/md5."""
    stream_id: int | None = None
    stream_file_id: int | None = None
    """MQTT download: replaces url."""


def upgrade_data(info: UpgradeInfo) -> dict[str, Any]:
    method = device_sign_method(info.sign_method)
    data: dict[str, Any] = {"version": info.version}
    if info.files:
        data["files"] = [_file_entry(info.sign_method, f) for f in info.files]
    else:
        if info.size is None or info.sign is None:
            raise ValueError("a single-file package needs size and sign")
        data["size"] = info.size
        if info.stream_id is not None:
            if info.stream_file_id is None:
                raise ValueError("MQTT download needs stream_id and stream_file_id")
            data["dProtocol"] = "mqtt"
            data["streamId"] = info.stream_id
            data["streamFileId"] = info.stream_file_id
        elif info.url:
            data["url"] = info.url
        else:
            raise ValueError("a single-file package needs a url or a stream")
        data["sign"] = device_sign(info.sign_method, info.sign)
        md5 = info.sign if method == "Md5" else info.md5
        if md5:
            data["md5"] = device_sign("md5", md5)
    data["signMethod"] = method
    if info.is_diff:
        data["isDiff"] = 1
    if info.module and info.module != DEFAULT_MODULE:
        data["module"] = info.module
    ext = dict(info.tags)
    if info.udi:
        ext["_package_udi"] = info.udi
    if ext:
        data["extData"] = ext
    return data


def _file_entry(sign_method: str, f: PackageFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "fileName": f.name,
        "fileSize": f.size,
        "fileUrl": f.url,
        "fileSign": device_sign(sign_method, f.sign),
    }
    if f.md5:
        entry["fileMd5"] = device_sign("md5", f.md5)
    return entry


def _dump(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def build_upgrade_push(info: UpgradeInfo, *, message_id: int) -> bytes:
    """`/ota/device/upgrade`: `code` is the string "1000"."""
    return _dump(
        {"code": "1000", "data": upgrade_data(info), "id": message_id, "message": "success"}
    )


def build_get_reply(request_id: MessageId, info: UpgradeInfo | None) -> bytes:
    """`thing/ota/firmware/get_reply`: `code` is the integer 200, `data` is `{}` with
    no task; the device's id is echoed as it came."""
    data = upgrade_data(info) if info is not None else {}
    return _dump({"id": request_id, "code": 200, "data": data})


# ---------------------------------------------------------------- MQTT file download

MIN_BLOCK = 256
MAX_BLOCK = 128 * 1024
MAX_OFFSET = 16 * 1024 * 1024


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected, init 0, no final XOR (`crcmod` 'crc-16')."""
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC16_TABLE[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True)
class DownloadRequest:
    id: MessageId
    file_token: str
    stream_id: int
    file_id: int
    size: int
    offset: int


def parse_download_request(
    payload: bytes | str,
    *,
    min_block: int = MIN_BLOCK,
    max_block: int = MAX_BLOCK,
    max_offset: int = MAX_OFFSET,
) -> DownloadRequest:
    """`thing/file/download`, including the C SDK's trailing comma in `fileInfo`."""
    message = loads_lenient(payload)
    params = _params(message)
    info, block = params.get("fileInfo"), params.get("fileBlock")
    if not isinstance(info, dict) or not isinstance(block, dict):
        raise CodecError("params.fileInfo and params.fileBlock are required")
    try:
        stream_id, file_id = info["streamId"], info["fileId"]
        size, offset = block["size"], block["offset"]
    except KeyError as e:
        raise CodecError(f"{e.args[0]} is missing") from None
    token = params.get("fileToken", "")
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise CodecError(f"params.fileToken must be a string of at most {MAX_TOKEN} characters")
    request = DownloadRequest(
        id=_message_id(message),
        file_token=token,
        stream_id=_int(stream_id, "streamId"),
        file_id=_int(file_id, "fileId"),
        size=_int(size, "fileBlock.size"),
        offset=_int(offset, "fileBlock.offset"),
    )
    if not min_block <= request.size <= max_block:
        raise CodecError(f"block size {request.size} is outside {min_block}..{max_block}")
    if not 0 <= request.offset <= max_offset:
        raise CodecError(f"offset {request.offset} is outside 0..{max_offset}")
    return request


def _frame(header: Mapping[str, Any], block: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    if len(head) > 0xFFFF:
        raise ValueError("header too long")
    # The device reads the CRC as a native uint16: little-endian on its CPUs.
    return struct.pack(">H", len(head)) + head + block + struct.pack("<H", crc16_arc(block))


def build_download_reply(request: DownloadRequest, *, file_length: int, block: bytes) -> bytes:
    """`thing/file/download_reply`: 2-byte big-endian header length, JSON header,
    the block, CRC-16/ARC of the block (little-endian)."""
    header = {
        "id": request.id,
        "code": 200,
        "data": {
            "fileToken": request.file_token,
            "fileLength": file_length,
            "bSize": len(block),
            "bOffset": request.offset,
        },
    }
    return _frame(header, block)


def build_download_error(request_id: MessageId, code: int, message: str) -> bytes:
    """A refusal in the same frame layout, with no block (the device checks `code`)."""
    return _frame({"id": request_id, "code": code, "msg": message[:200]}, b"")


@dataclass(frozen=True)
class DownloadReply:
    header: dict[str, Any]
    block: bytes


def parse_download_reply(frame: bytes) -> DownloadReply:
    """The device's reading of a reply frame (for the reference agent and tests)."""
    if len(frame) < 4:
        raise CodecError("frame too short")
    (head_len,) = struct.unpack(">H", frame[:2])
    if len(frame) < 2 + head_len + 2:
        raise CodecError("frame shorter than its header length")
    header = loads_lenient(frame[2 : 2 + head_len])
    block = frame[2 + head_len : -2]
    data = header.get("data") or {}
    if header.get("code") == 200 and data.get("bSize") != len(block):
        raise CodecError("bSize does not match the block")
    (crc,) = struct.unpack("<H", frame[-2:])
    if crc != crc16_arc(block):
        raise CodecError("CRC mismatch")
    return DownloadReply(header, block)
