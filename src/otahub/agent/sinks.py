"""Where a downloaded image goes: a file on the device's disk, or (for simulated
devices, thousands per process) nowhere but a running SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol


class Sink(Protocol):
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def reset(self) -> None: ...

    def sha256(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def write(self, data: bytes) -> None:
        with self.path.open("ab") as out:
            out.write(data)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    async def chunks(self) -> AsyncIterator[bytes]:
        with self.path.open("rb") as f:
            while block := f.read(1 << 20):
                yield block


class DigestSink:
    """Keeps only the length and the running hash: bytes arrive in order (HTTP with
    Range resume, or MQTT blocks joined in order), so the hash can run along.

    `hashing=False` keeps the length only (`sha256()` is then ""): a simulated
    device that checks no signature has no use for the hash, and hashing every
    device's image would make the simulator, not the server, the limit of a run."""

    def __init__(self, *, hashing: bool = True) -> None:
        self.hashing = hashing
        self.reset()

    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        self._size += len(data)

    def reset(self) -> None:
        self._hash = hashlib.sha256() if self.hashing else None
        self._size = 0

    def sha256(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""

    async def chunks(self) -> AsyncIterator[bytes]:
        return
        yield b""


class Pacer:
    """Holds a download to `bits_per_second`, as a slow link would."""

    def __init__(self, bits_per_second: int | None) -> None:
        self.bps = bits_per_second
        self._start: float | None = None
        self._bytes = 0

    async def took(self, n: int) -> None:
        if not self.bps:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self._bytes += n
        ahead = self._bytes * 8 / self.bps - (now - self._start)
        if ahead > 0:
            await asyncio.sleep(ahead)
