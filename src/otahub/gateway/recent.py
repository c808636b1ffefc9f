"""What a gateway looked up a moment ago, kept for a moment: a device asks for a
stream window after window (hundreds of requests a second to a fleet), and each
would otherwise read its device and its stream from the database again."""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Recent(Generic[V]):
    """Values for up to `seconds`, at most `size` of them (the oldest go first);
    `tag` (e.g. a change counter) must match too for a value to count."""

    def __init__(self, seconds: float, size: int = 16_384) -> None:
        self.seconds = seconds
        self.size = size
        self._values: dict[Hashable, tuple[float, object, V]] = {}

    def get(self, key: Hashable, tag: object = None) -> V | None:
        found = self._values.get(key)
        if found is None:
            return None
        until, stored_tag, value = found
        if until < time.monotonic() or stored_tag != tag:
            del self._values[key]
            return None
        return value

    def put(self, key: Hashable, value: V, tag: object = None) -> None:
        if len(self._values) >= self.size:
            del self._values[next(iter(self._values))]
        self._values[key] = (time.monotonic() + self.seconds, tag, value)

    def forget(self, key: Hashable) -> None:
        self._values.pop(key, None)
