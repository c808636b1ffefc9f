from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otahub.blobs import (
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    FilesystemBlobStore,
    InvalidBlobKey,
    S3BlobStore,
    blob_store_from_url,
)
from otahub.blobs.errors import BlobError

from .helpers import GeneratedStream, data_stream

MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


async def _read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.open_range(key, start, end)])


async def test_streaming_put_of_50mb_keeps_memory_bounded(store: FilesystemBlobStore) -> None:
    source = GeneratedStream(50 * MiB, chunk=256 * 1024)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        info = await store.put_stream("big/fw.bin", source.stream())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
    assert peak < 8 * MiB  # one 1 MiB write batch plus its copy, not the file
    assert info.size == 50 * MiB == source.sent
    assert info.sha256 == source.sha256.hexdigest()
    assert info.md5 == source.md5.hexdigest()
    path = store.root / "big/fw.bin"
    assert path.stat().st_size == 50 * MiB
    assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
    assert await store.stat("big/fw.bin") == info


async def test_hashes_equal_hashlib_for_odd_chunking(store: FilesystemBlobStore) -> None:
    data = os.urandom(3 * MiB + 17)
    info = await store.put_stream("fw.bin", data_stream(data, chunk=4093))
    assert info.sha256 == info.etag == info.version == hashlib.sha256(data).hexdigest()
    assert info.md5 == hashlib.md5(data).hexdigest()
    assert info.size == len(data)
    assert await _read(store, "fw.bin") == data


async def test_over_the_limit_is_refused_and_leaves_nothing(store: FilesystemBlobStore) -> None:
    source = GeneratedStream(5 * MiB, chunk=MiB)
    with pytest.raises(BlobTooLarge) as refused:
        await store.put_stream("fw.bin", source.stream(), max_size=3 * MiB + 5)
    assert "limit" in refused.value.message
    assert source.sent <= 4 * MiB  # refused as the limit was passed, not at the end
    assert _files(store.root) == []
    with pytest.raises(BlobNotFound):
        await store.stat("fw.bin")


async def test_store_default_limit_applies(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, max_size=1000)
    with pytest.raises(BlobTooLarge):
        await store.put_stream("fw.bin", data_stream(b"x" * 1001))
    info = await store.put_stream("fw.bin", data_stream(b"x" * 1000))
    assert info.size == 1000


async def test_a_failing_stream_leaves_nothing_and_keeps_the_old_blob(
    store: FilesystemBlobStore,
) -> None:
    await store.put_stream("fw.bin", data_stream(b"old"))

    async def broken() -> AsyncIterator[bytes]:
        yield b"new" * 1000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream("fw.bin", broken())
    assert await _read(store, "fw.bin") == b"old"
    assert _files(store.root / ".incoming") == []


async def test_cancelled_put_leaves_nothing(store: FilesystemBlobStore) -> None:
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * (2 * MiB)
        started.set()
        await asyncio.sleep(30)
        yield b"never"

    task = asyncio.create_task(store.put_stream("fw.bin", slow()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _files(store.root) == []


async def test_overwrite_replaces_content_and_hashes(store: FilesystemBlobStore) -> None:
    first = await store.put_stream("a/b/fw.bin", data_stream(b"one"))
    second = await store.put_stream("a/b/fw.bin", data_stream(b"second"))
    assert first.sha256 != second.sha256
    assert await store.stat("a/b/fw.bin") == second
    assert await _read(store, "a/b/fw.bin") == b"second"


async def test_stat_rehashes_when_the_file_changed_behind_its_back(
    store: FilesystemBlobStore,
) -> None:
    await store.put_stream("fw.bin", data_stream(b"original"))
    path = store.root / "fw.bin"
    path.write_bytes(b"edited by hand, longer")
    info = await store.stat("fw.bin")
    assert info.sha256 == hashlib.sha256(b"edited by hand, longer").hexdigest()
    assert info.size == len(b"edited by hand, longer")


async def test_stat_survives_a_corrupt_metadata_file(store: FilesystemBlobStore) -> None:
    await store.put_stream("fw.bin", data_stream(b"payload"))
    (meta,) = (store.root / ".meta").rglob("*.json")
    meta.write_text("{not json")
    info = await FilesystemBlobStore(store.root).stat("fw.bin")  # as after a restart
    assert info.sha256 == hashlib.sha256(b"payload").hexdigest()
    assert json.loads(meta.read_text())["sha256"] == info.sha256


@pytest.mark.parametrize("page_cache_reads", [True, False])
async def test_open_range_bounds(
    store: FilesystemBlobStore, monkeypatch: pytest.MonkeyPatch, page_cache_reads: bool
) -> None:
    if not page_cache_reads:  # every read goes through the thread pool
        monkeypatch.setattr("otahub.blobs.fs._NOWAIT_FLAG", None)
    data = bytes(range(256)) * 4096  # 1 MiB, several read chunks
    await store.put_stream("fw.bin", data_stream(data))
    assert await _read(store, "fw.bin", 0, 1) == data[:1]
    assert await _read(store, "fw.bin", len(data) - 1) == data[-1:]
    assert await _read(store, "fw.bin", 1000, 300_000) == data[1000:300_000]
    assert await _read(store, "fw.bin", 5, 5) == b""
    assert await _read(store, "fw.bin", len(data) + 10) == b""
    chunks = [c async for c in store.open_range("fw.bin")]
    assert max(len(c) for c in chunks) <= 256 * 1024
    assert b"".join(chunks) == data


async def test_missing_blob(store: FilesystemBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.stat("nope.bin")
    with pytest.raises(BlobNotFound):
        await _read(store, "nope.bin")
    assert await store.delete("nope.bin") is False


async def test_delete_removes_file_metadata_and_empty_dirs(store: FilesystemBlobStore) -> None:
    await store.put_stream("t/1/fw.bin", data_stream(b"x"))
    await store.put_stream("t/2/fw.bin", data_stream(b"y"))
    assert await store.delete("t/1/fw.bin") is True
    assert not (store.root / "t/1").exists()
    assert (store.root / "t/2/fw.bin").exists()
    with pytest.raises(BlobNotFound):
        await store.stat("t/1/fw.bin")
    assert len(list((store.root / ".meta").rglob("*.json"))) == 1


async def test_traversal_keys_are_refused_everywhere(store: FilesystemBlobStore) -> None:
    with pytest.raises(InvalidBlobKey):
        await store.put_stream("../escape.bin", data_stream(b"x"))
    with pytest.raises(InvalidBlobKey):
        await store.stat("a/../../etc/passwd")
    with pytest.raises(InvalidBlobKey):
        store.local_path("/etc/passwd")
    assert not (store.root.parent / "escape.bin").exists()


async def test_a_key_clashing_with_a_directory_is_an_error(store: FilesystemBlobStore) -> None:
    await store.put_stream("a/b", data_stream(b"file"))
    with pytest.raises(BlobError):
        await store.put_stream("a/b/c", data_stream(b"under a file"))
    assert _files(store.root / ".incoming") == []


def test_local_path_and_no_presigned_url(store: FilesystemBlobStore) -> None:
    assert store.local_path("x/y.bin") == store.root / "x/y.bin"
    assert store.presigned_get_url("x/y.bin", 300) is None


def test_factory(tmp_path: Path) -> None:
    default = blob_store_from_url("", tmp_path)
    assert isinstance(default, FilesystemBlobStore)
    assert default.root == (tmp_path / "blobs").resolve()
    absolute = blob_store_from_url(f"file://{tmp_path}/elsewhere", "/unused")
    assert isinstance(absolute, FilesystemBlobStore)
    assert absolute.root == (tmp_path / "elsewhere").resolve()
    relative = blob_store_from_url("file://rel/dir", tmp_path, max_size=10)
    assert isinstance(relative, FilesystemBlobStore)
    assert relative.root == (tmp_path / "rel/dir").resolve()
    assert relative.max_size == 10
    s3 = blob_store_from_url(
        "s3://bucket/some/prefix?endpoint=http://127.0.0.1:1&region=eu-west-1"
        "&access_key=a&secret_key=b",
        tmp_path,
    )
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    assert isinstance(default, BlobStore) and isinstance(s3, BlobStore)
    with pytest.raises(ValueError):
        blob_store_from_url("ftp://x", tmp_path)
    with pytest.raises(ValueError):
        blob_store_from_url("s3://bucket?endpoint=x&colour=blue", tmp_path)
