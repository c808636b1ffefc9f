"""What the device topics of either cloud hand to the transports: messages to
publish, and how the blocks of a stored file are read for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    to_requester: bool = True  # a response: deliver to the client that asked
    qos: int = 1  # stream blocks go at the QoS of the request that asked for them


# (blob key, start, length) -> those bytes of the stored file
ReadRange = Callable[[str, int, int], Awaitable[bytes]]
