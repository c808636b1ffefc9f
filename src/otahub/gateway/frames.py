"""QoS 0 PUBLISH packets framed by otahub and written in one go on a paho client's
connection (the one aiomqtt holds).

paho frames and queues every publish on its own: a packet object, a wake-up write
to its socket pair, a `send` per packet and a callback after each. A stream window
is up to 32 blocks answering one request; framed here and queued as one buffer it
costs paho one queue entry and the connection one write. Only QoS 0 is framed so:
it has no packet identifier, so nothing of paho's session bookkeeping is bypassed.
The queue entry carries command 0, which paho writes without a callback.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

import aiomqtt
from paho.mqtt.client import MQTTv5

from otahub.gateway.messages import Outgoing

PUBLISH_QOS0 = 0x30


def remaining_length(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def publish_frames(messages: Sequence[Outgoing], *, v5: bool) -> bytes:
    """PUBLISH packets at QoS 0, not retained, back to back."""
    heads: dict[str, bytes] = {}
    parts: list[bytes] = []
    for out in messages:
        head = heads.get(out.topic)
        if head is None:
            topic = out.topic.encode()
            # MQTT 5 adds a property length: none
            head = heads[out.topic] = len(topic).to_bytes(2, "big") + topic + (b"\0" if v5 else b"")
        parts += (
            bytes((PUBLISH_QOS0,)) + remaining_length(len(head) + len(out.payload)),
            head,
            out.payload,
        )
    return b"".join(parts)


def no_delay(client: aiomqtt.Client) -> None:
    """Turn Nagle's algorithm off on the client's connection (paho leaves it on).
    With it on, the tail of a window written in one go waits for the broker to
    acknowledge what went before, and the broker's delayed ACK holds that for up to
    40 ms: a device fetching window after window would wait so for each."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket):  # ssl.SSLSocket too
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def queue_frames(client: aiomqtt.Client, messages: Sequence[Outgoing]) -> None:
    """Queue `messages` (QoS 0) on the client's connection, written as one buffer
    after what is already queued, before what is queued next."""
    paho = client._client
    frames = publish_frames(messages, v5=paho.protocol == MQTTv5)
    # a memoryview: paho slices what is left after a partial send, without a copy
    paho._packet_queue(0, memoryview(frames), 0, 0)  # type: ignore[arg-type]
