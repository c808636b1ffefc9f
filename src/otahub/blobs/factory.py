"""Pick a blob store from a URL in the configuration."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from otahub.blobs.base import DEFAULT_MAX_SIZE, BlobStore
from otahub.blobs.fs import FilesystemBlobStore
from otahub.blobs.s3 import S3BlobStore


def blob_store_from_url(
    url: str | None, data_dir: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE
) -> BlobStore:
    """`""`/None: files under `data_dir/blobs`; `file:///abs/path` or `file://rel/path`
    (relative to `data_dir`): files there; `s3://bucket[/prefix]?endpoint=...`: S3."""
    if not url:
        return FilesystemBlobStore(Path(data_dir) / "blobs", max_size=max_size)
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = Path(unquote(parts.netloc + parts.path))
        return FilesystemBlobStore(Path(data_dir) / path, max_size=max_size)
    if parts.scheme == "s3":
        return S3BlobStore.from_url(url, max_size=max_size)
    raise ValueError(f"unsupported blob store URL {url!r}: use file://... or s3://bucket")
