"""A lean MQTT 3.1.1 client for the benchmarks' load generators: an asyncio
Protocol that frames and parses packets itself and hands each PUBLISH to a plain
callback, with no task, future or queue per message. The device side of
bench/streams.py runs on it so that otahub and the raw loop are both measured
through the same cheap receivers, and the raw loop publishes with it.

Enough of MQTT for that and nothing more: CONNECT (clean session, no keepalive),
SUBSCRIBE, PUBLISH at QoS 0 or 1 both ways (PUBACKs of one read go out in one
write), PUBACK. No reconnects, no QoS 2, no retained messages.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import cast

from otahub.gateway.frames import remaining_length

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 0x10, 0x20, 0x30, 0x40, 0x80, 0x90

OnPublish = Callable[[str, bytes], None]


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    head = _string(topic) + (packet_id.to_bytes(2, "big") if qos else b"")
    first = bytes((PUBLISH | qos << 1,))
    return first + remaining_length(len(head) + len(payload)) + head + payload


class LeanClient(asyncio.Protocol):
    def __init__(self, on_publish: OnPublish) -> None:
        self.on_publish = on_publish
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: dict[int, asyncio.Future[None]] = {}  # CONNACK (0), SUBACKs
        self.unacked: set[int] = set()  # our QoS 1 publishes
        self.acked = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.next_id = 0

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        client_id: str,
        on_publish: OnPublish,
        *,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> LeanClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(on_publish), host, port, ssl=tls)
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password else 0)
        body = _string("MQTT") + bytes((4, flags)) + (0).to_bytes(2, "big") + _string(client_id)
        if username is not None:
            body += _string(username)
        if password:
            body += _string(password)
        await client._request(0, _packet(CONNECT, body))
        return client

    def _packet_id(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    async def _request(self, key: int, packet: bytes) -> None:
        future = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        self.write(packet)
        await asyncio.wait_for(future, 30)

    async def subscribe(self, topics: Sequence[str], qos: int) -> None:
        packet_id = self._packet_id()
        body = packet_id.to_bytes(2, "big") + b"".join(_string(t) + bytes((qos,)) for t in topics)
        await self._request(packet_id, _packet(SUBSCRIBE | 0x02, body))

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        packet_id = self._packet_id() if qos else 0
        if qos:
            self.unacked.add(packet_id)
        self.write(publish_packet(topic, payload, qos, packet_id))

    async def publish_all(
        self, messages: Sequence[tuple[str, bytes]], qos: int, in_flight: int, batch: int
    ) -> None:
        """Publish as fast as the connection takes it: `batch` packets per write; at
        QoS 1 at most `in_flight` unacknowledged."""
        for start in range(0, len(messages), batch):
            await self.writable.wait()
            while qos and len(self.unacked) + batch > in_flight:
                self.acked.clear()
                await asyncio.wait_for(self.acked.wait(), 60)
            parts = []
            for topic, payload in messages[start : start + batch]:
                packet_id = self._packet_id() if qos else 0
                if qos:
                    self.unacked.add(packet_id)
                parts.append(publish_packet(topic, payload, qos, packet_id))
            self.write(b"".join(parts))
        while self.unacked:
            self.acked.clear()
            await asyncio.wait_for(self.acked.wait(), 60)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("not connected")
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.write(b"\xe0\x00")  # DISCONNECT
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionError("connection closed")
        for future in [*self.waiting.values(), self.closed]:
            if not future.done():
                future.set_exception(error)
        self.closed.exception()  # retrieved: nobody need wait for it

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        pos, end = 0, len(buf)
        acks = []
        while end - pos >= 2:
            first = buf[pos]
            length, shift, at, whole = 0, 0, pos + 1, False
            while at < end:
                byte = buf[at]
                at += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    whole = True
                    break
            if not whole or at + length > end:
                break  # not all of it yet
            kind = first & 0xF0
            if kind == PUBLISH:
                qos = first >> 1 & 3
                tlen = buf[at] << 8 | buf[at + 1]
                topic_end = at + 2 + tlen
                topic = buf[at + 2 : topic_end].decode()
                if qos:
                    acks.append(b"\x40\x02" + bytes(buf[topic_end : topic_end + 2]))
                    topic_end += 2
                self.on_publish(topic, bytes(buf[topic_end : at + length]))
            elif kind == PUBACK:
                self.unacked.discard(buf[at] << 8 | buf[at + 1])
                self.acked.set()
            elif kind in (CONNACK, SUBACK):
                key = 0 if kind == CONNACK else buf[at] << 8 | buf[at + 1]
                code = buf[at + 2] if kind == SUBACK else buf[at + 1]
                ok = code < 0x80 if kind == SUBACK else code == 0
                future = self.waiting.pop(key, None)
                if future is not None and not future.done():
                    if ok:
                        future.set_result(None)
                    else:
                        future.set_exception(ConnectionError(f"refused: code {code}"))
            pos = at + length
        if pos:
            del buf[:pos]
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
