from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from otahub.blobs import BlobInfo, FilesystemBlobStore
from otahub.blobs.download import BlobDownload, make_download_app
from otahub.blobs.presign import PresignVerifier
from otahub.domain.clock import FakeClock

from .helpers import data_stream

SECRET = b"download-secret-0123456789abcdef"
SIZE = 600 * 1024 + 123  # several 256 KiB chunks and a ragged end
KEY = "pkg/fw-1.0.bin"


@pytest.fixture
async def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture
async def blob(store: FilesystemBlobStore) -> tuple[bytes, BlobInfo]:
    data = os.urandom(SIZE)
    info = await store.put_stream(KEY, data_stream(data))
    return data, info


@pytest.fixture
def verifier(clock: FakeClock) -> PresignVerifier:
    return PresignVerifier(SECRET, clock)


@pytest.fixture
async def client(
    store: FilesystemBlobStore, verifier: PresignVerifier
) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Mount("/dl", app=make_download_app(store, verifier))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://otahub") as http:
        yield http


def url(verifier: PresignVerifier, key: str = KEY, **kwargs: Any) -> str:
    kwargs.setdefault("device_id", "dev1")
    return f"/dl/{key}?{urlencode(verifier.sign(key, **kwargs))}"


def assert_common(response: httpx.Response, info: BlobInfo) -> None:
    assert response.headers["etag"] == f'"{info.sha256}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/octet-stream"


async def test_full_get(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo]
) -> None:
    data, info = blob
    response = await client.get(url(verifier))
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(SIZE)
    assert "content-range" not in response.headers
    assert_common(response, info)


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),  # first byte
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE),  # last byte
        ("bytes=-100", SIZE - 100, SIZE),  # suffix
        (f"bytes=-{SIZE * 2}", 0, SIZE),  # suffix longer than the file
        ("bytes=300000-", 300000, SIZE),  # open-ended, across chunks
        (f"bytes=4096-{SIZE + 999}", 4096, SIZE),  # end past the end: clamped
        ("bytes=262140-262150", 262140, 262151),  # straddles a read chunk
    ],
)
async def test_single_range(
    client: httpx.AsyncClient,
    verifier: PresignVerifier,
    blob: tuple[bytes, BlobInfo],
    header: str,
    start: int,
    stop: int,
) -> None:
    data, info = blob
    response = await client.get(url(verifier), headers={"range": header})
    assert response.status_code == 206
    assert response.content == data[start:stop]
    assert response.headers["content-length"] == str(stop - start)
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert_common(response, info)


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"])
async def test_unsatisfiable_range_is_416_without_bytes(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo], header: str
) -> None:
    response = await client.get(url(verifier), headers={"range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "bytes=9-5", "pages=1-2", "bytes=x-"])
async def test_multi_or_malformed_range_gets_the_whole_file(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo], header: str
) -> None:
    data, _ = blob
    response = await client.get(url(verifier), headers={"range": header})
    assert response.status_code == 200
    assert response.content == data


async def test_if_range(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo]
) -> None:
    data, info = blob
    etag = f'"{info.sha256}"'
    matching = await client.get(url(verifier), headers={"range": "bytes=10-19", "if-range": etag})
    assert matching.status_code == 206
    assert matching.content == data[10:20]
    for stale in ('"0000"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        response = await client.get(
            url(verifier), headers={"range": "bytes=10-19", "if-range": stale}
        )
        assert response.status_code == 200, stale
        assert response.content == data


async def test_head(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo]
) -> None:
    _, info = blob
    response = await client.head(url(verifier))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(SIZE)
    assert_common(response, info)
    ranged = await client.head(url(verifier), headers={"range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.content == b""
    assert ranged.headers["content-length"] == "100"


async def test_if_none_match(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo]
) -> None:
    data, info = blob
    for header in (f'"{info.sha256}"', f'W/"{info.sha256}"', f'"x", "{info.sha256}"', "*"):
        response = await client.get(url(verifier), headers={"if-none-match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == f'"{info.sha256}"'
    other = await client.get(url(verifier), headers={"if-none-match": '"other"'})
    assert other.status_code == 200
    assert other.content == data


async def test_tampered_expired_or_missing_signature_is_403_without_bytes(
    client: httpx.AsyncClient,
    verifier: PresignVerifier,
    clock: FakeClock,
    blob: tuple[bytes, BlobInfo],
) -> None:
    data, _ = blob
    good = url(verifier, expires_in=60)
    refused = [
        good.replace("device=dev1", "device=dev2"),
        good.replace(f"/dl/{KEY}", "/dl/pkg/other.bin"),
        good.split("?")[0],
        good[:-2],
    ]
    clock.advance(60)
    refused.append(good)
    for target in refused:
        for method in ("GET", "HEAD"):
            response = await client.request(method, target, headers={"range": "bytes=0-9"})
            assert response.status_code == 403, (method, target)
            assert data[:10] not in response.content


async def test_version_pins_the_content(
    client: httpx.AsyncClient,
    verifier: PresignVerifier,
    store: FilesystemBlobStore,
    blob: tuple[bytes, BlobInfo],
) -> None:
    _, info = blob
    pinned = url(verifier, version=info.version)
    assert (await client.get(pinned)).status_code == 200
    await store.put_stream(KEY, data_stream(b"a newer build"))
    assert (await client.get(pinned)).status_code == 404


async def test_missing_blob_bad_key_and_method(
    client: httpx.AsyncClient, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo]
) -> None:
    assert (await client.get(url(verifier, key="pkg/none.bin"))).status_code == 404
    assert (await client.get(url(verifier, key="pkg/.hidden"))).status_code == 404
    assert (await client.post(url(verifier))).status_code == 405


async def test_empty_blob(
    client: httpx.AsyncClient, verifier: PresignVerifier, store: FilesystemBlobStore
) -> None:
    info = await store.put_stream("empty.bin", data_stream(b""))
    response = await client.get(url(verifier, key="empty.bin"))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"
    assert response.headers["etag"] == f'"{hashlib.sha256(b"").hexdigest()}"' == f'"{info.etag}"'
    ranged = await client.get(url(verifier, key="empty.bin"), headers={"range": "bytes=0-"})
    assert ranged.status_code == 416


async def test_async_verifier_and_no_verifier(
    store: FilesystemBlobStore, verifier: PresignVerifier, blob: tuple[bytes, BlobInfo]
) -> None:
    data, _ = blob

    async def async_verifier(key: str, params: Any) -> Any:
        await asyncio.sleep(0)
        return verifier(key, params)

    for v, target in ((async_verifier, url(verifier)[3:]), (None, f"/{KEY}")):
        app = make_download_app(store, v)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            assert (await http.get(target)).content == data


class Recorder:
    def __init__(self, disconnect_after: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.disconnect_after = disconnect_after
        self.gone = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        bodies = sum(1 for m in self.messages if m["type"] == "http.response.body")
        if self.disconnect_after is not None and bodies >= self.disconnect_after:
            self.gone.set()
        await asyncio.sleep(0)

    async def receive(self) -> dict[str, Any]:
        if self.disconnect_after is None:
            await asyncio.Event().wait()
        await self.gone.wait()
        return {"type": "http.disconnect"}


def scope(
    key: str, *, extensions: dict[str, Any] | None = None, headers: Any = ()
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": f"/{key}",
        "query_string": b"",
        "headers": list(headers),
        "path_params": {"key": key},
        "extensions": extensions or {},
    }


async def test_full_get_uses_pathsend_when_the_server_offers_it(
    store: FilesystemBlobStore, blob: tuple[bytes, BlobInfo]
) -> None:
    app = BlobDownload(store, None)
    recorder = Recorder()
    await app(
        scope(KEY, extensions={"http.response.pathsend": {}}), recorder.receive, recorder.send
    )
    start, pathsend = recorder.messages
    assert start["status"] == 200
    assert (b"content-length", str(SIZE).encode()) in start["headers"]
    assert pathsend == {"type": "http.response.pathsend", "path": str(store.root / KEY)}

    ranged = Recorder()
    headers = [(b"range", b"bytes=0-9")]
    offered = {"http.response.pathsend": {}}
    await app(scope(KEY, extensions=offered, headers=headers), ranged.receive, ranged.send)
    assert [m["type"] for m in ranged.messages][-1] == "http.response.body"
    assert ranged.messages[0]["status"] == 206


async def test_streaming_stops_when_the_client_disconnects(store: FilesystemBlobStore) -> None:
    reads = 0

    class EndlessStore(FilesystemBlobStore):
        async def stat(self, key: str) -> BlobInfo:
            return BlobInfo(key, 1 << 40, "ab", "cd", "ab", "ab")

        async def open_range(
            self, key: str, start: int = 0, end: int | None = None
        ) -> AsyncIterator[bytes]:
            nonlocal reads
            while True:
                reads += 1
                yield b"x" * 1024
                await asyncio.sleep(0)

    app = BlobDownload(EndlessStore(store.root), None)
    recorder = Recorder(disconnect_after=5)
    await asyncio.wait_for(app(scope(KEY), recorder.receive, recorder.send), timeout=5)
    assert reads < 50
