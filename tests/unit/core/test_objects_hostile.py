"""The object catalog's own rules for what it stores, whichever face calls it (the S3
endpoint, the OSS upload form): on both databases, a refused write stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService, check_bucket_name, check_object_key
from otahub.domain.errors import InvalidRequest, NotFound
from otahub.store.tables import objects


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
async def objs(services: Services, store: FilesystemBlobStore) -> ObjectService:
    return ObjectService(services.ctx, store)


def blobs_in(store: FilesystemBlobStore) -> list[Path]:
    return [p for p in (store.root / "objects").rglob("*") if p.is_file()]


@pytest.mark.parametrize("key", ["a\x00b", "\x01", "a\x1fb", "a\ud800b", "\ufffe", "x" * 1025])
def test_keys_no_listing_could_carry_are_refused(key: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        check_object_key(key)
    assert err.value.details["code"] in ("InvalidArgument", "KeyTooLongError")


@pytest.mark.parametrize("key", ["fw.bin", "a b/c\td\ne\rf", "固件/ü.bin", "\x7f", "x" * 1024])
def test_keys_s3_and_xml_allow_pass(key: str) -> None:
    assert check_object_key(key) == key


@pytest.mark.parametrize("name", ["192.168.1.1", "xn--a1b", "sthree-a", "a--ol-s3", "abc\n"])
def test_bucket_names_s3_reserves_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        check_bucket_name(name)
    assert err.value.details["code"] == "InvalidBucketName"


@pytest.mark.parametrize("key", ["ota/x/\x00.bin", "ota/\ud800.bin", "ota/\x02.bin"])
async def test_a_refused_key_stores_neither_row_nor_blob(
    services: Services, objs: ObjectService, store: FilesystemBlobStore, key: str
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "otahub-oss-1")
    with pytest.raises(InvalidRequest):
        await objs.put(t, "otahub-oss-1", key, chunks(b"image"))
    with pytest.raises(InvalidRequest):
        await objs.start_multipart(t, "otahub-oss-1", key)
    assert (await objs.list(t, "otahub-oss-1")).objects == []
    assert blobs_in(store) == []


async def test_nul_in_metadata_stores_neither_row_nor_blob(
    services: Services, objs: ObjectService, store: FilesystemBlobStore
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "fw-bucket")
    for metadata in ({"build\x00": "1"}, {"build": "\x00"}, {"build": "\udc80"}):
        with pytest.raises(InvalidRequest):
            await objs.put(t, "fw-bucket", "fw.bin", chunks(b"image"), metadata=metadata)
    with pytest.raises(InvalidRequest):
        await objs.put(t, "fw-bucket", "fw.bin", chunks(b"image"), content_type="a\x00")
    assert (await objs.list(t, "fw-bucket")).objects == []
    assert blobs_in(store) == []


async def test_nul_in_a_lookup_is_refused_before_the_database(
    services: Services, objs: ObjectService
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "fw-bucket")
    calls = [
        objs.get(t, "fw-bucket", "a\x00"),
        objs.get(t, "fw-bucket", "a", "v\x00"),
        objs.get(t, "fw\x00", "a"),
        objs.get_bucket(t, "fw\x00"),
        objs.delete(t, "fw-bucket", "a\x00"),
        objs.list(t, "fw-bucket", prefix="\x00"),
        objs.list(t, "fw-bucket", after="\ud800"),
        objs.abort_multipart(t, "fw-bucket", "a", "\x00"),
    ]
    for call in calls:
        with pytest.raises(InvalidRequest):
            await call


async def test_a_lookup_longer_than_any_stored_name_finds_nothing(
    services: Services, objs: ObjectService
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "fw-bucket")
    await objs.put(t, "fw-bucket", "fw.bin", chunks(b"image"))
    long_key, long_id = "k" * 1025, "v" * 65
    for call, code in [
        (objs.get(t, "fw-bucket", long_key), "NoSuchKey"),
        (objs.get(t, "fw-bucket", "fw.bin", long_id), "NoSuchVersion"),
        (objs.get(t, "no-bucket", long_key), "NoSuchBucket"),
        (objs.abort_multipart(t, "fw-bucket", "fw.bin", "u" * 65), "NoSuchUpload"),
        (objs.abort_multipart(t, "fw-bucket", long_key, "u1"), "NoSuchUpload"),
    ]:
        with pytest.raises(NotFound) as err:
            await call
        assert err.value.details["code"] == code
    assert await objs.delete(t, "fw-bucket", "fw.bin", long_id) is None
    assert (await objs.get(t, "fw-bucket", "fw.bin")).size == 5
    assert (await objs.list(t, "fw-bucket", prefix=long_key)).objects == []
    assert (await objs.list(t, "fw-bucket", after=long_key)).objects == []


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
async def test_deleting_a_key_too_long_to_store_writes_no_marker(
    services: Services, objs: ObjectService, versioned: bool
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "fw-bucket")
    if versioned:
        await objs.set_versioning(t, "fw-bucket", "Enabled")
    with pytest.raises(InvalidRequest) as err:
        await objs.delete(t, "fw-bucket", "k" * 1025)
    assert err.value.details["code"] == "KeyTooLongError"
    async with services.ctx.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(objects))).scalar_one() == 0


async def test_a_bucket_name_longer_than_any_bucket_is_invalid(
    services: Services, objs: ObjectService
) -> None:
    t = (await services.accounts.tenant("1")).id
    for call in (objs.get_bucket(t, "b" * 64), objs.get(t, "b" * 64, "fw.bin")):
        with pytest.raises(InvalidRequest) as err:
            await call
        assert err.value.details["code"] == "InvalidBucketName"


async def test_a_content_type_longer_than_its_column_stores_neither_row_nor_blob(
    services: Services, objs: ObjectService, store: FilesystemBlobStore
) -> None:
    t = (await services.accounts.tenant("1")).id
    await objs.create_bucket(t, "fw-bucket")
    long_type = "application/" + "x" * 250
    with pytest.raises(InvalidRequest):
        await objs.put(t, "fw-bucket", "fw.bin", chunks(b"image"), content_type=long_type)
    with pytest.raises(InvalidRequest):
        await objs.start_multipart(t, "fw-bucket", "fw.bin", content_type=long_type)
    assert (await objs.list(t, "fw-bucket")).objects == []
    assert blobs_in(store) == []
    await objs.put(t, "fw-bucket", "fw.bin", chunks(b"image"), content_type=long_type[:255])
