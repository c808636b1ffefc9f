"""MQTT file delivery for AWS devices (`$aws/things/{thing}/streams/{id}/...`).

A device describes a stream, then asks for blocks of one of its files by offset
and count or by a bitmap; each block goes back as its own message. Requests and
responses are JSON or CBOR, following the request topic.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Any

import cbor2

from otahub.aws.devices.jobs_mqtt import json_refusal_code
from otahub.core.services import Services
from otahub.core.services.streams import Stream
from otahub.domain.entities import Device
from otahub.domain.errors import NotFound
from otahub.domain.limits import MAX_JSON_DEPTH, Refused, loads_json
from otahub.gateway.messages import Outgoing, ReadRange
from otahub.gateway.recent import Recent

MIN_BLOCK = 256
MAX_BLOCK = 131_072
MAX_PER_REQUEST = 131_072  # bytes of data one request may return
MAX_OFFSET = 98_304
MAX_BITMAP = 12_288
MAX_TOKEN = 64
STREAM_ID = re.compile(r"[a-zA-Z0-9_-]{1,128}")  # the control plane's StreamId


class StreamError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


STREAM_CACHE_S = 1.0  # how long a stream read for one request serves the next ones


class StreamTopics:
    def __init__(self, services: Services, read_range: ReadRange) -> None:
        self.services = services
        self.read_range = read_range
        # Streams read a moment ago: a change made through this process is seen at
        # once, one made by another otahub process within STREAM_CACHE_S.
        self._streams: Recent[Stream] = Recent(STREAM_CACHE_S)

    async def _stream(self, tenant_id: int, ref: str, *, fresh: bool = False) -> Stream:
        key, changes = (tenant_id, ref), self.services.streams.changes
        stream = None if fresh else self._streams.get(key, changes)
        if stream is None:
            try:
                stream = await self.services.streams.get(tenant_id, ref)
            except NotFound as exc:
                self._streams.forget(key)
                raise StreamError("ResourceNotFound", exc.message) from exc
            self._streams.put(key, stream, changes)
        return stream

    async def handle(
        self, device: Device, topic: str, payload: bytes, qos: int = 1
    ) -> list[Outgoing]:
        """The answers to one request; data blocks at the request's QoS (at most 1):
        a device asking at QoS 0 asks again for what it misses, as the OTA agent
        does, and nothing waits for acknowledgements."""
        base = f"$aws/things/{device.name}/streams/"
        if not topic.startswith(base):
            return []
        parts = topic[len(base) :].split("/")
        if (
            len(parts) != 3
            or parts[2] not in ("json", "cbor")
            or parts[1] not in ("describe", "get")
        ):
            if len(parts) >= 1 and parts[-1] in ("json", "cbor"):
                return [_error(base + parts[0], parts[-1], "InvalidTopic", "no such API", None)]
            return []
        stream_ref, action, fmt = parts
        prefix = base + stream_ref
        try:
            request = _decode(payload, fmt)
            if not STREAM_ID.fullmatch(stream_ref):
                raise StreamError("InvalidRequest", "stream id must be 1 to 128 of [a-zA-Z0-9_-]")
        except StreamError as exc:
            return [_error(prefix, fmt, exc.code, exc.message, None)]
        token = request.get("c")
        try:
            if token is not None and (
                not isinstance(token, str) or len(token.encode()) > MAX_TOKEN
            ):
                token = None
                raise StreamError("InvalidRequest", f"client token longer than {MAX_TOKEN} bytes")
            version = request.get("s")
            if version is not None:
                version = _int(version, "stream version")
            # A description is always read afresh; so is a stream whose version
            # differs from the one the request names.
            stream = await self._stream(device.tenant_id, stream_ref, fresh=action == "describe")
            if action == "describe":
                return [self._description(prefix, fmt, stream, token)]
            if version is not None and version != stream.version:
                stream = await self._stream(device.tenant_id, stream_ref, fresh=True)
            return await self._blocks(prefix, fmt, stream, request, token, min(qos, 1))
        except StreamError as exc:
            return [_error(prefix, fmt, exc.code, exc.message, token)]

    def _description(self, prefix: str, fmt: str, stream: Stream, token: Any) -> Outgoing:
        body: dict[str, Any] = {
            "s": stream.version,
            "r": [{"f": f.file_id, "z": f.size} for f in stream.files],
        }
        if stream.description:
            body["d"] = stream.description
        if token is not None:
            body["c"] = token
        return Outgoing(f"{prefix}/description/{fmt}", _encode(body, fmt))

    async def _blocks(
        self,
        prefix: str,
        fmt: str,
        stream: Stream,
        request: dict[str, Any],
        token: Any,
        qos: int,
    ) -> list[Outgoing]:
        version = request.get("s")
        if version is not None and _int(version, "s") != stream.version:
            raise StreamError("VersionMismatch", f"the stream is at version {stream.version}")
        file_id = _int(request.get("f"), "f")
        try:
            sfile = stream.file(file_id)
        except NotFound as exc:
            raise StreamError("ResourceNotFound", exc.message) from exc
        size = _int(request.get("l"), "l")
        if not MIN_BLOCK <= size <= MAX_BLOCK:
            raise StreamError(
                "BlockSizeOutOfBounds", f"block size must be between {MIN_BLOCK} and {MAX_BLOCK}"
            )
        offset = _int(request.get("o", 0), "o")
        if not 0 <= offset <= MAX_OFFSET:
            raise StreamError("OffsetOutOfBounds", f"offset must be between 0 and {MAX_OFFSET}")
        total_blocks = (sfile.size + size - 1) // size
        if offset >= max(total_blocks, 1) and sfile.size > 0:
            raise StreamError("OffsetOutOfBounds", "offset is past the end of the file")
        count = request.get("n")
        n = MAX_PER_REQUEST // size if count is None else _int(count, "n")
        if not 0 <= n <= MAX_OFFSET:
            raise StreamError("BlockCountLimitExceeded", f"n must be between 0 and {MAX_OFFSET}")
        n = min(n, MAX_PER_REQUEST // size)
        bitmap = _bitmap(request.get("b"), fmt)
        topic = f"{prefix}/data/{fmt}"
        cbor = fmt == "cbor"
        out = []
        # One read per run of consecutive blocks (a whole window, usually: at most
        # 128 KiB), cut into blocks without copying more than each block once.
        for first, last in _runs(_wanted(offset, n, bitmap, total_blocks)):
            start = first * size
            data = await self.read_range(
                sfile.blob_key, start, min((last + 1) * size, sfile.size) - start
            )
            with memoryview(data) as view:
                for index in range(first, last + 1):
                    at = (index - first) * size
                    block = bytes(view[at : at + size])
                    body: dict[str, Any] = {
                        "f": file_id,
                        "l": len(block),
                        "i": index,
                        "p": block if cbor else base64.b64encode(block).decode(),
                    }
                    if token is not None:
                        body["c"] = token
                    out.append(Outgoing(topic, _encode(body, fmt), qos=qos))
        return out


def _runs(indexes: Iterator[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive indexes, in order."""
    first = last = -2
    for index in indexes:
        if index != last + 1:
            if first >= 0:
                yield first, last
            first = index
        last = index
    if first >= 0:
        yield first, last


def _wanted(offset: int, n: int, bitmap: bytes | None, total: int) -> Iterator[int]:
    """Block indexes to send: `n` from `offset`, or the set bits of the bitmap (LSB
    first in each byte, relative to `offset`), at most `n` of them."""
    if bitmap is None:
        yield from range(offset, min(offset + n, total))
        return
    sent = 0
    for k, byte in enumerate(bitmap):
        for j in range(8):
            if sent >= n:
                return
            index = offset + 8 * k + j
            if index >= total:
                return
            if byte >> j & 1:
                sent += 1
                yield index


def _bitmap(value: Any, fmt: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        text = value[2:] if value[:2].lower() == "0x" else value
        if len(text) >= 2 * MAX_BITMAP:
            raise StreamError(
                "BlockBitmapLimitExceeded", f"bitmap must be under {MAX_BITMAP} bytes"
            )
        try:
            raw = binascii.unhexlify(text)
        except (binascii.Error, ValueError) as exc:
            raise StreamError("InvalidRequest", "bitmap must be hex in JSON") from exc
    else:
        raise StreamError("InvalidRequest", f"bitmap must be bytes in {fmt}")
    if len(raw) >= MAX_BITMAP:
        raise StreamError("BlockBitmapLimitExceeded", f"bitmap must be under {MAX_BITMAP} bytes")
    return raw


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StreamError("InvalidRequest", f"{name} must be an integer")
    return value


def _decode(payload: bytes, fmt: str) -> dict[str, Any]:
    if not payload:
        return {}
    if fmt == "json":
        try:
            data = loads_json(payload)
        except Refused as exc:
            code = json_refusal_code(payload)
            raise StreamError(code, f"payload is not a JSON request: {exc}") from None
    else:
        data = _loads_cbor(payload)
    if not isinstance(data, dict):
        raise StreamError("InvalidRequest", "payload must be a map")
    return data


def _refuse_tag(*_: Any) -> Any:
    raise cbor2.CBORDecodeError("a stream request carries no tagged values")


# Every tag cbor2 decodes by itself (shared references would build cycles, bignums
# unbounded integers, and a request needs none of them); others reach the tag hook.
_NO_TAGS = dict.fromkeys(
    [*range(6), 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004, 43000, 55799],
    _refuse_tag,
)


def _loads_cbor(payload: bytes) -> Any:
    """A request in CBOR, as deep as JSON may be, without tags, with keys that are
    text or bytes."""
    try:
        return cbor2.loads(
            payload,
            max_depth=MAX_JSON_DEPTH,
            strict_hashable_types=True,
            semantic_decoders=_NO_TAGS,
            tag_hook=_refuse_tag,
        )
    except (cbor2.CBORError, ValueError, EOFError, RecursionError) as exc:
        raise StreamError("InvalidCbor", f"payload is not a CBOR request: {exc}") from None


def _encode(body: dict[str, Any], fmt: str) -> bytes:
    if fmt == "cbor":
        return cbor2.dumps(body)
    return json.dumps(body, separators=(",", ":")).encode()


def _error(prefix: str, fmt: str, code: str, message: str, token: Any) -> Outgoing:
    body: dict[str, Any] = {"o": code, "m": message}
    if token is not None:
        body["c"] = token
    return Outgoing(f"{prefix}/rejected/{fmt}", _encode(body, fmt))
