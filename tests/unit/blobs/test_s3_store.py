"""S3BlobStore against a real S3-compatible server process (moto_server)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
import pytest

from otahub.blobs import (
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidBlobKey,
    S3BlobStore,
    S3Settings,
    blob_store_from_url,
)
from otahub.blobs.download import make_download_app
from otahub.blobs.presign import PresignVerifier
from otahub.domain.clock import FakeClock

from .helpers import GeneratedStream, data_stream, stop, wait_for_port

PORT = 18140
ENDPOINT = f"http://127.0.0.1:{PORT}"
MiB = 1024 * 1024
MOTO = Path(sys.executable).parent / "moto_server"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", PORT, proc, timeout=30)
        yield ENDPOINT
    finally:
        stop(proc)


def _client() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(moto: str) -> str:
    name = f"fw-{uuid.uuid4().hex[:12]}"
    _client().create_bucket(Bucket=name)
    return name


def _url(bucket: str, prefix: str = "") -> str:
    return (
        f"s3://{bucket}/{prefix}?endpoint={ENDPOINT}&region=us-east-1"
        "&access_key=testing&secret_key=testing"
    )


@pytest.fixture
def store(bucket: str) -> S3BlobStore:
    return S3BlobStore(S3Settings.from_url(_url(bucket, "otahub")), part_size=5 * MiB)


def _objects(bucket: str) -> list[str]:
    listing = _client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _uploads(bucket: str) -> list[Any]:
    return list(_client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


async def _read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.open_range(key, start, end)])


async def test_small_put_stat_range_delete(store: S3BlobStore, bucket: str) -> None:
    data = os.urandom(10_000)
    info = await store.put_stream("pkg/fw.bin", data_stream(data, chunk=999))
    assert info.size == len(data)
    assert info.sha256 == info.etag == hashlib.sha256(data).hexdigest()
    assert info.md5 == hashlib.md5(data).hexdigest()
    assert _objects(bucket) == ["otahub/pkg/fw.bin"]
    assert await store.stat("pkg/fw.bin") == info
    assert await _read(store, "pkg/fw.bin") == data
    assert await _read(store, "pkg/fw.bin", 0, 1) == data[:1]
    assert await _read(store, "pkg/fw.bin", 9_999) == data[-1:]
    assert await _read(store, "pkg/fw.bin", 100, 4_200) == data[100:4_200]
    assert await _read(store, "pkg/fw.bin", 50_000) == b""
    assert store.local_path("pkg/fw.bin") is None
    assert await store.delete("pkg/fw.bin") is True
    assert await store.delete("pkg/fw.bin") is False
    with pytest.raises(BlobNotFound):
        await store.stat("pkg/fw.bin")
    with pytest.raises(BlobNotFound):
        await _read(store, "pkg/fw.bin")
    assert _objects(bucket) == []


async def test_multipart_put_hashes_and_leaves_no_temporary_object(
    store: S3BlobStore, bucket: str
) -> None:
    source = GeneratedStream(12 * MiB + 5, chunk=300_000)
    info = await store.put_stream("pkg/big.bin", source.stream())
    assert info.size == source.sent
    assert info.sha256 == source.sha256.hexdigest()
    assert info.md5 == source.md5.hexdigest()
    assert _objects(bucket) == ["otahub/pkg/big.bin"]
    assert _uploads(bucket) == []
    head = _client().head_object(Bucket=bucket, Key="otahub/pkg/big.bin")
    assert head["Metadata"] == {"sha256": info.sha256, "md5": info.md5}
    assert await store.stat("pkg/big.bin") == info
    body = await _read(store, "pkg/big.bin")
    assert hashlib.sha256(body).hexdigest() == info.sha256
    assert (
        await _read(store, "pkg/big.bin", 5 * MiB - 3, 5 * MiB + 3)
        == body[5 * MiB - 3 : 5 * MiB + 3]
    )


async def test_multipart_put_keeps_memory_bounded(store: S3BlobStore) -> None:
    source = GeneratedStream(40 * MiB, chunk=256 * 1024)
    tracemalloc.start()
    try:
        info = await store.put_stream("pkg/mem.bin", source.stream())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 40 * MiB
    # about three 5 MiB parts (the read buffer, the part cut from it, the one in
    # flight), not the 40 MiB
    assert peak < 24 * MiB, f"peak {peak / MiB:.1f} MiB"


async def test_over_the_limit_aborts_and_leaves_nothing(store: S3BlobStore, bucket: str) -> None:
    source = GeneratedStream(20 * MiB, chunk=MiB)
    with pytest.raises(BlobTooLarge):
        await store.put_stream("pkg/big.bin", source.stream(), max_size=11 * MiB)
    assert source.sent <= 12 * MiB
    assert _objects(bucket) == []
    assert _uploads(bucket) == []
    with pytest.raises(BlobTooLarge):
        await store.put_stream("pkg/small.bin", data_stream(b"x" * 101), max_size=100)
    assert _objects(bucket) == []


async def test_a_failing_stream_aborts_the_upload(store: S3BlobStore, bucket: str) -> None:
    async def broken() -> Any:
        yield b"x" * (6 * MiB)
        raise ConnectionResetError

    with pytest.raises(ConnectionResetError):
        await store.put_stream("pkg/fw.bin", broken())
    assert _objects(bucket) == []
    assert _uploads(bucket) == []


async def test_presigned_url_downloads_straight_from_s3(store: S3BlobStore) -> None:
    data = os.urandom(70_000)
    await store.put_stream("pkg/fw.bin", data_stream(data))
    url = store.presigned_get_url("pkg/fw.bin", 300)
    assert url is not None and url.startswith(ENDPOINT) and "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
        assert response.status_code == 200
        assert response.content == data
        ranged = await http.get(url, headers={"range": "bytes=10-19"})
        assert (ranged.status_code, ranged.content) == (206, data[10:20])


async def test_versioned_bucket_reports_version_ids(bucket: str) -> None:
    _client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = S3BlobStore(S3Settings.from_url(_url(bucket)), part_size=5 * MiB)
    first = await store.put_stream("fw.bin", data_stream(b"one"))
    second = await store.put_stream("fw.bin", GeneratedStream(6 * MiB).stream())
    assert first.version != second.version
    assert first.version != first.sha256  # a real S3 VersionId
    assert (await store.stat("fw.bin")).version == second.version


async def test_keys_are_checked(store: S3BlobStore) -> None:
    with pytest.raises(InvalidBlobKey):
        await store.put_stream("../x", data_stream(b"x"))
    with pytest.raises(InvalidBlobKey):
        store.presigned_get_url(".incoming/x", 60)


async def test_download_app_over_s3(bucket: str) -> None:
    store = blob_store_from_url(_url(bucket), "/unused")
    assert isinstance(store, S3BlobStore)
    data = os.urandom(300_000)
    await store.put_stream("fw.bin", data_stream(data))
    verifier = PresignVerifier(b"k" * 32, FakeClock())
    query = urlencode(verifier.sign("fw.bin", device_id="dev1"))
    for redirect in (False, True):
        app = make_download_app(store, verifier, redirect_to_store=redirect)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            response = await http.get(f"/fw.bin?{query}", headers={"range": "bytes=-1000"})
            if not redirect:
                assert response.status_code == 206
                assert response.content == data[-1000:]
                continue
            assert response.status_code == 307
            async with httpx.AsyncClient() as direct:
                fetched = await direct.get(response.headers["location"])
                assert fetched.content == data
            assert (await http.get("/fw.bin")).status_code == 403


async def test_job_documents_send_devices_to_the_stores_own_urls(
    bucket: str, services: Any
) -> None:
    from otahub.aws.devices.documents import DocumentRenderer
    from otahub.core.services import JobSpec
    from otahub.core.services.objects import ObjectService
    from otahub.gateway.download_urls import DeviceUrls

    store = blob_store_from_url(_url(bucket, "blobs"), "/unused")
    objects = ObjectService(services.ctx, store)
    tenant = await services.accounts.tenant("000000000042")
    await objects.create_bucket(tenant.id, "firmware")
    data = os.urandom(40_000)
    await objects.put(tenant.id, "firmware", "fw.bin", data_stream(data))
    thing = await services.registry.create_device(tenant.id, "dev-s3")
    document = '{"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/fw.bin}"}'
    job = await services.jobs.create_job(
        tenant.id,
        JobSpec(
            ref="s3-direct",
            kind="job",
            device_ids=[thing.id],
            document=document,
            data={"presignedUrlConfig": {"expiresInSec": 120}},
        ),
    )
    verifier = PresignVerifier(b"k" * 32, FakeClock())
    rendered = await DocumentRenderer(objects, DeviceUrls(store, verifier, "http://otahub:8080"))(
        job, thing, document
    )
    assert rendered is not None
    url = json.loads(rendered)["url"]
    assert url.startswith(f"{ENDPOINT}/{bucket}/blobs/") and "X-Amz-Expires=120" in url
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).content == data
