"""Generated streams and process helpers shared by the blob tests."""

from __future__ import annotations

import hashlib
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator


class GeneratedStream:
    """`total` pseudo-random bytes in `chunk`-sized pieces, never held whole;
    records the hashes of what it yielded."""

    def __init__(self, total: int, chunk: int = 1024 * 1024, seed: int = 7) -> None:
        self.total = total
        self.chunk = chunk
        self.seed = seed
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        rng = random.Random(self.seed)
        while self.sent < self.total:
            piece = rng.randbytes(min(self.chunk, self.total - self.sent))
            self.sha256.update(piece)
            self.md5.update(piece)
            self.sent += len(piece)
            yield piece

    def stream(self) -> AsyncIterator[bytes]:
        return self.__aiter__()


def data_stream(data: bytes, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    return gen()


def wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
