"""Running SHA-256 + MD5 + size of a stream, with its size limit."""

from __future__ import annotations

import hashlib

from otahub.blobs.errors import BlobTooLarge


class StreamDigest:
    def __init__(self, key: str, max_size: int) -> None:
        self._key = key
        self._max_size = max_size
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.accepted = 0

    def accept(self, chunk: bytes) -> None:
        """Count `chunk` against the limit before it is buffered or written;
        raise BlobTooLarge if it would pass it."""
        self.accepted += len(chunk)
        if self.accepted > self._max_size:
            raise BlobTooLarge(
                f"blob {self._key!r} is larger than the limit of {self._max_size} bytes",
                key=self._key,
                limit=self._max_size,
            )

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()
