"""The object catalog: S3 semantics over the blob store, on both databases."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def read(store: FilesystemBlobStore, key: str | None) -> bytes:
    assert key is not None
    return b"".join([c async for c in store.open_range(key)])


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
async def objs(services: Services, store: FilesystemBlobStore) -> ObjectService:
    return ObjectService(services.ctx, store)


async def test_put_get_replace_and_delete_unversioned(
    services: Services, objs: ObjectService, store: FilesystemBlobStore
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "fw-bucket")
    with pytest.raises(AlreadyExists) as err:
        await objs.create_bucket(t, "fw-bucket")
    assert err.value.details["code"] == "BucketAlreadyOwnedByYou"
    with pytest.raises(InvalidRequest):
        await objs.create_bucket(t, "Bad_Name")
    first = await objs.put(t, "fw-bucket", "a/fw.bin", chunks(b"one", b"two"))
    assert (first.size, first.version_id, first.md5) == (
        6,
        "null",
        hashlib.md5(b"onetwo").hexdigest(),
    )
    second = await objs.put(t, "fw-bucket", "a/fw.bin", chunks(b"three"))
    got = await objs.get(t, "fw-bucket", "a/fw.bin")
    assert await read(store, got.blob_key) == b"three" and got.blob_key == second.blob_key
    assert first.blob_key and not (store.root / first.blob_key).exists()  # old bytes gone
    with pytest.raises(Conflict):
        await objs.delete_bucket(t, "fw-bucket")
    await objs.delete(t, "fw-bucket", "a/fw.bin")
    with pytest.raises(NotFound) as nf:
        await objs.get(t, "fw-bucket", "a/fw.bin")
    assert nf.value.details["code"] == "NoSuchKey"
    await objs.delete_bucket(t, "fw-bucket")


async def test_versions_and_delete_markers(
    services: Services, objs: ObjectService, store: FilesystemBlobStore
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "vbucket")
    await objs.set_versioning(t, "vbucket", "Enabled")
    v1 = await objs.put(t, "vbucket", "fw.bin", chunks(b"v1"))
    v2 = await objs.put(t, "vbucket", "fw.bin", chunks(b"v2"))
    assert v1.version_id != v2.version_id != "null"
    assert (
        await read(store, (await objs.get(t, "vbucket", "fw.bin", v1.version_id)).blob_key) == b"v1"
    )
    assert (await objs.get(t, "vbucket", "fw.bin")).version_id == v2.version_id
    marker = await objs.delete(t, "vbucket", "fw.bin")
    assert marker is not None and marker.delete_marker
    with pytest.raises(NotFound):
        await objs.get(t, "vbucket", "fw.bin")
    assert (await objs.get(t, "vbucket", "fw.bin", v1.version_id)).size == 2
    await objs.delete(t, "vbucket", "fw.bin", marker.version_id)  # undelete
    assert (await objs.get(t, "vbucket", "fw.bin")).version_id == v2.version_id


async def test_listing_with_prefix_delimiter_and_pages(
    services: Services, objs: ObjectService
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "lbucket")
    for key in ("a/1", "a/2", "b/1", "c", "d"):
        await objs.put(t, "lbucket", key, chunks(b"x"))
    top = await objs.list(t, "lbucket", delimiter="/")
    assert [o.key for o in top.objects] == ["c", "d"] and top.prefixes == ["a/", "b/"]
    page = await objs.list(t, "lbucket", limit=2)
    assert [o.key for o in page.objects] == ["a/1", "a/2"] and page.truncated
    rest = await objs.list(t, "lbucket", after=page.next_marker)
    assert [o.key for o in rest.objects] == ["b/1", "c", "d"] and not rest.truncated
    assert [o.key for o in (await objs.list(t, "lbucket", prefix="a/")).objects] == ["a/1", "a/2"]


async def test_multipart_upload(
    services: Services, objs: ObjectService, store: FilesystemBlobStore
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "mbucket")
    big, small = b"A" * (5 * 1024 * 1024), b"tail"
    uid = await objs.start_multipart(t, "mbucket", "fw.bin")
    e1 = await objs.upload_part(t, "mbucket", "fw.bin", uid, 1, chunks(big))
    e2 = await objs.upload_part(t, "mbucket", "fw.bin", uid, 2, chunks(small))
    with pytest.raises(InvalidRequest) as bad:
        await objs.complete_multipart(t, "mbucket", "fw.bin", uid, [(2, e2), (1, e1)])
    assert bad.value.details["code"] == "InvalidPartOrder"
    done = await objs.complete_multipart(t, "mbucket", "fw.bin", uid, [(1, e1), (2, f'"{e2}"')])
    expected = hashlib.md5(bytes.fromhex(e1) + bytes.fromhex(e2)).hexdigest() + "-2"
    assert done.etag == expected and done.size == len(big) + 4
    assert done.sha256 == hashlib.sha256(big + small).hexdigest()
    assert await read(store, done.blob_key) == big + small
    with pytest.raises(NotFound):
        await objs.upload_part(t, "mbucket", "fw.bin", uid, 3, chunks(b"x"))
    small_first = await objs.start_multipart(t, "mbucket", "k2")
    s1 = await objs.upload_part(t, "mbucket", "k2", small_first, 1, chunks(b"x"))
    s2 = await objs.upload_part(t, "mbucket", "k2", small_first, 2, chunks(b"y"))
    with pytest.raises(InvalidRequest) as too_small:
        await objs.complete_multipart(t, "mbucket", "k2", small_first, [(1, s1), (2, s2)])
    assert too_small.value.details["code"] == "EntityTooSmall"
    await objs.abort_multipart(t, "mbucket", "k2", small_first)
    assert not (store.root / "uploads" / small_first).exists() or not any(
        (store.root / "uploads" / small_first).iterdir()
    )


async def test_get_names_what_is_missing(services: Services, objs: ObjectService) -> None:
    """The bucket (absent, or another tenant's), the key, or the version; a found
    object is what putting it returned."""
    t = (await services.accounts.tenant("1")).id
    other = (await services.accounts.tenant("2")).id
    await objs.create_bucket(t, "gbucket")
    await objs.set_versioning(t, "gbucket", "Enabled")
    put = await objs.put(t, "gbucket", "fw.bin", chunks(b"v1"), metadata={"m": "1"})
    assert await objs.get(t, "gbucket", "fw.bin") == put
    assert await objs.get(t, "gbucket", "fw.bin", put.version_id) == put
    cases = [
        ((t, "nobucket", "fw.bin"), "NoSuchBucket"),
        ((other, "gbucket", "fw.bin"), "NoSuchBucket"),
        ((other, "gbucket", "fw.bin", put.version_id), "NoSuchBucket"),
        ((t, "gbucket", "nokey"), "NoSuchKey"),
        ((t, "gbucket", "fw.bin", "noversion"), "NoSuchVersion"),
        ((t, "gbucket", "nokey", put.version_id), "NoSuchVersion"),
    ]
    for args, code in cases:
        with pytest.raises(NotFound) as nf:
            await objs.get(*args)
        assert nf.value.details["code"] == code, args
