"""The blob store interface that every backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

DEFAULT_MAX_SIZE = 1000 * 1024 * 1024
"""Uploads above 1000 MiB are refused unless a store is configured otherwise."""

READ_CHUNK = 16 * 1024
"""The server queues what a response sends ahead of the socket, a dozen or more body
messages per connection, so the chunk size sets what a streamed download holds: 200
resumed downloads take +39 MiB of RSS in 16 KiB chunks, +154 MiB in 64 KiB and
+330 MiB in 256 KiB, at the same throughput (bench/download.py)."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a store knows about one blob.

    `etag` is the strong validator (unquoted) that downloads send; `version`
    identifies this content of the key: the S3 VersionId on a versioned bucket,
    otherwise the SHA-256.
    """

    key: str
    size: int
    sha256: str
    md5: str
    etag: str
    version: str


@runtime_checkable
class BlobStore(Protocol):
    max_size: int

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> BlobInfo:
        """Store the stream under `key`, hashing it on the way; atomic: readers see
        the old blob or the whole new one. Over `max_size` (default: the store's)
        raises BlobTooLarge and leaves nothing behind."""
        ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes [start, end) of the blob (end exclusive, None = to the end),
        in chunks of at most READ_CHUNK. Raises BlobNotFound on first iteration."""
        ...

    async def stat(self, key: str) -> BlobInfo:
        """Raises BlobNotFound."""
        ...

    async def delete(self, key: str) -> bool:
        """True if something was deleted."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file holding the blob when it is on a local disk (for zero-copy sends)."""
        ...

    def presigned_get_url(self, key: str, expires_s: int) -> str | None:
        """A URL of the backing store itself that lets a client download directly."""
        ...
